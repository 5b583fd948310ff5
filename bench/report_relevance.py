"""The report's section on questions the documents don't cover (the similarity floor)."""

from __future__ import annotations

from pathlib import Path

from bench.plots import plot_similarities
from bench.quality import load

SHOWN_FLOORS = (0.15, 0.2, 0.25, 0.3, 0.35)
OFF_TOPIC_LABELS = {"debian_faq": "Debian FAQ", "small_talk": "small talk"}


def relevance_section(out: list[str], figures: Path) -> float | None:
    """Append the section; returns the chosen floor (None before the part has run)."""
    data = load("relevance")
    if not data or "off_topic_counts" not in data:
        out.append("_No relevance results yet: run `python -m bench --parts relevance,report`._\n")
        return None
    chosen = data["chosen"]
    names = list(data["off_topic_counts"])
    on = [
        m[0]
        for d in data["sets"].values()
        for m, ok in zip(d["on_topic"], d["answerable"], strict=True)
        if ok
    ]
    off = {OFF_TOPIC_LABELS.get(n, n): [m[0] for d in data["sets"].values() for m in d[n]] for n in names}
    plot_similarities(on, off, chosen["floor"], figures / "similarity.png")
    rows = {r["floor"]: r for r in data["rows"]}
    shown = [f for f in sorted({*SHOWN_FLOORS, chosen["floor"]}) if f in rows]
    header = " | ".join(f"{OFF_TOPIC_LABELS.get(n, n)} stopped" for n in names)
    out += [
        f"Measured {data.get('saved_utc', '?')}. The fused search score is normalised per question, so "
        "on its own it cannot tell that the documents don't cover a question, and the offline model "
        'would quote loosely related passages. The retriever therefore answers "not covered" when the '
        "closest chunk's cosine similarity to the question is below a floor (`SEARCH_MIN_SIMILARITY`) "
        f"and no fetched chunk holds {data['keyword_share']:.0%} of the question's content words (at "
        "least two; the "
        'rescue for a short question about one detail of a long chunk, e.g. "What is the default '
        'region?"). Answerable: the questions of both sets whose top 10 holds a relevant passage '
        f"({data['answerable_count']}). Off-topic, asked of both indexes: the questions of the Debian "
        f"FAQ (package `debian-faq`; {data['off_topic_counts'].get('debian_faq', 0)} searches), which "
        "neither corpus answers though many share their subjects (installing, packages, Python), and "
        f"{len(data['off_topic_questions'].get('small_talk', []))} lines of small talk written for this "
        f"benchmark (bench/relevance.py; {data['off_topic_counts'].get('small_talk', 0)} searches).\n",
        f"| floor | answerable let through | {header} | with the rescue: answerable | "
        + " | ".join(f"with the rescue: {OFF_TOPIC_LABELS.get(n, n)}" for n in names)
        + " |",
        "|---|---|" + "---|" * len(names) + "---|" + "---|" * len(names),
        *(
            f"| {floor:.2f}{' (before issue 11)' if floor == chosen['floor'] else ''} | "
            f"{rows[floor]['kept']:.1%} | "
            + " | ".join(f"{rows[floor]['rejected'][n]:.1%}" for n in names)
            + f" | {rows[floor]['kept_with_words']:.1%} | "
            + " | ".join(f"{rows[floor]['rejected_with_words'][n]:.1%}" for n in names)
            + " |"
            for floor in shown
        ),
        "",
        f"Every answerable question gets through by similarity alone up to a floor of "
        f"{data['all_kept_up_to']:.2f}. The default for the local model before issue 11 kept a margin "
        f"of {data['margin']:.2f} below that, **{chosen['floor']:.2f}**, because real questions are often "
        'shorter than these FAQ questions: in the tests, "Which Ubuntu version is no longer '
        'supported?" scores 0.20 against the release notes that answer it and "What is the default '
        'region?" 0.17. It is a cautious floor: at the default, with the rescue, '
        + " and ".join(
            f"{chosen['rejected_with_words'][n]:.0%} of the {OFF_TOPIC_LABELS.get(n, n)} questions"
            for n in names
        )
        + ' are answered "not covered", and no answerable one. Where questions use the documents\' '
        "own words, 0.25 stops far more off-topic questions at no loss here. Too few off-topic "
        "messages are stopped this way: the coverage judgement (next section) replaced the floor as "
        "the default; SEARCH_MIN_SIMILARITY still sets such a floor instead of it.\n",
        "![best similarity per question](benchmarks/similarity.png)\n",
    ]
    return float(chosen["floor"])
