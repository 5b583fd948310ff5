"""The benchmark's judgement and metrics (bench/): pure functions, no benchmark is run here."""

from __future__ import annotations

import math

import pytest

from bench.build_dataset import _python_page, _rst_headings
from bench.dataset import judge, normalize, split_sentences
from bench.metrics import bootstrap, is_noise, paired_difference, score_query


def test_normalize_ignores_markup_quotes_and_case() -> None:
    assert normalize("Don’t use `settings.DEBUG`!") == normalize("don't use settings.DEBUG")
    assert normalize("  A\n b  ") == "a b"


def test_split_sentences_keeps_abbreviations_inside_words() -> None:
    text = "Django scales. It runs e.g. on many sites! Why? Because 3.2 is stable."
    assert split_sentences(text) == [
        "Django scales.",
        "It runs e.g. on many sites!",
        "Why?",
        "Because 3.2 is stable.",
    ]


def test_judge_needs_a_whole_sentence() -> None:
    answer = [
        normalize("the login cookie is not being set correctly"),
        normalize("set SESSION_COOKIE_DOMAIN to your domain"),
    ]
    judged = judge(
        ["Intro. The login cookie is NOT being set correctly, so", "the login cookie is", "x"], answer
    )
    assert judged == [frozenset({0}), frozenset(), frozenset()]


def test_scores_of_a_ranked_list() -> None:
    # Four answer sentences: rank 2 holds two of them, rank 4 one more (and a repeat).
    judged = [frozenset(), frozenset({0, 1}), frozenset(), frozenset({1, 2})]
    scores = score_query(judged, answer_size=4)
    assert scores.mrr == pytest.approx(0.5)
    assert scores.recall == pytest.approx(0.75)
    assert scores.ndcg == pytest.approx(0.5 / math.log2(3) + 0.25 / math.log2(5))
    assert score_query([frozenset({0})], 1).ndcg == pytest.approx(1.0)
    assert score_query([frozenset()] * 10 + [frozenset({0})], 1).mrr == 0.0  # rank 11 is past @10


def test_paired_difference_tells_noise_from_a_gain() -> None:
    better = [1.0, 0.9, 0.8, 1.0, 0.7] * 20
    worse = [0.2, 0.3, 0.1, 0.4, 0.2] * 20
    gain = paired_difference(better, worse)
    assert gain.low > 0 and not is_noise(gain)
    assert is_noise(paired_difference(better, list(reversed(better))))
    estimate = bootstrap(better)
    assert estimate.low <= estimate.mean <= estimate.high


def test_rst_question_heading_is_removed_and_its_prose_kept() -> None:
    page = "\n".join([
        "Programming FAQ", "===============", "",
        "How do I make a tuple?", "-----------------------", "",
        "Write the items separated by commas inside parentheses always.", "",
        "   code = (1, 2)", "",
        "Next question?", "--------------", "", "Another answer sentence with enough words here.",
    ])  # fmt: skip
    assert [h[3] for h in _rst_headings(page.splitlines())] == [
        "Programming FAQ",
        "How do I make a tuple?",
        "Next question?",
    ]
    text, sections = _python_page(page, "faq/programming.rst")
    assert "How do I make a tuple?" not in text and "Write the items" in text
    assert [s.query for s in sections] == ["How do I make a tuple?", "Next question?"]
    assert sections[0].sentences == [
        normalize("Write the items separated by commas inside parentheses always.")
    ]


def test_similarity_floor_keeps_every_answerable_question_with_a_margin() -> None:
    from bench.relevance import MARGIN, choose

    answerable = [(0.31, 0.0), (0.5, 0.0), (0.7, 1.0)]  # the weakest is 0.31
    off_topic = {"small_talk": [(0.1, 0.0), (0.2, 1.0), (0.4, 0.0)]}
    result = choose(answerable, off_topic)
    assert result["all_kept_up_to"] == 0.31
    assert result["chosen"]["floor"] == round(0.31 - MARGIN, 2)
    row = {r["floor"]: r for r in result["rows"]}[0.25]
    assert row["kept"] == 1.0
    assert row["rejected"]["small_talk"] == pytest.approx(2 / 3)  # 0.1 and 0.2 are below 0.25
    assert row["rejected_with_words"]["small_talk"] == pytest.approx(1 / 3)  # 0.2 holds the words
