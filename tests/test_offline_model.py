"""The offline model's quoting: which sentences it shows, and how the answer is streamed."""

from __future__ import annotations

from simple_agents.offline_model import NO_LLM_NOTICE, _pieces, excerpt, quote_answer

FILLER = "Nothing to see in this sentence at all. " * 20


def test_excerpt_starts_near_the_sentence_with_most_question_words() -> None:
    text = FILLER + "The installer asks for the port during setup. It defaults to 8080. " + FILLER
    shown = excerpt(text, {"installer", "port"}, limit=200)
    assert "The installer asks for the port" in shown
    assert shown.startswith("… ") and shown.endswith(" …")  # cut on both sides
    assert len(shown) <= 200 + 4


def test_excerpt_matches_words_in_any_case_even_when_lowering_changes_the_length() -> None:
    # "İ" lower-cases to two code points, which would shift offsets found in lower-cased text.
    text = "İİİİ " * 50 + FILLER + "PORT numbers are chosen by the INSTALLER. " + FILLER
    shown = excerpt(text, {"installer", "port"}, limit=120)
    assert "PORT numbers are chosen by the INSTALLER." in shown


def test_short_text_is_quoted_whole() -> None:
    assert excerpt("Short text.", {"short"}) == "Short text."


def test_quote_answer_quotes_at_most_three_passages_after_the_notice() -> None:
    output = "\n\n".join(
        f"[{n}] Guide {n} — docs/g{n}.md\nPassage number {n} about ports." for n in range(1, 6)
    )
    answer = quote_answer("Which ports?", [output])
    assert answer.startswith(NO_LLM_NOTICE)
    assert [f"[{n}] Guide {n}" in answer for n in range(1, 6)] == [True, True, True, False, False]
    assert "> Passage number 1 about ports." in answer


def test_answer_streams_one_piece_per_block_and_loses_nothing() -> None:
    answer = quote_answer("ports", ["[1] A — a.md\nPorts one.\n\n[2] B — b.md\nPorts two."])
    pieces = _pieces(answer)
    assert "".join(pieces) == answer
    assert len(pieces) == answer.count("\n\n") + 1
    assert pieces[0].startswith(NO_LLM_NOTICE)
