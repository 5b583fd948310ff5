"""The report's section on the `pallets` report set (`python -m bench --parts pallets`)."""

from __future__ import annotations

from bench.metrics import Estimate
from bench.quality import load
from bench.report_trust import machine_line

HEADING = "## Report set: Flask, Werkzeug, Jinja and Click (`pallets`)"
_KINDS = {"all": "all", "faq": "FAQ-style questions", "chat": "chat-style messages"}


def _estimate(data: dict[str, float]) -> str:
    return str(Estimate(data["mean"], data["low"], data["high"]))


def _share(data: dict[str, float]) -> str:
    return f"{data['mean']:.1%} [{data['low']:.1%}, {data['high']:.1%}]"


def pallets_section(out: list[str]) -> None:
    """Append the section (a placeholder before the part has run)."""
    data = load("pallets")
    if not data:
        out.append("_No results on the report set yet: run `python -m bench --parts pallets,report`._\n")
        return
    ranking, counts = data["ranking"], data["counts"]
    rows = [
        f"| {label} | {counts[kind]} | "
        + " | ".join(_estimate(ranking[kind][metric]) for metric in ("mrr", "hit1", "hit10"))
        + " |"
        for kind, label in _KINDS.items()
        if kind in ranking
    ]
    coverage = data["coverage"]
    gate_rows = [
        f"| {name} | {row['count']} | {_share(row)} |"
        for name, row in coverage.items()
        if isinstance(row, dict) and name != "disagreements"
    ]
    curve = [
        f"| {r['threshold']:.2f}{' (default)' if abs(r['threshold'] - data['threshold']) < 1e-9 else ''} | "
        f"{r['answered']:.1%} | {r['abstained']:.1%} |"
        for r in data["curve"]
    ]
    offline = data["offline"]
    m = data["manifest"]
    out += [
        f"Measured {data.get('saved_utc', '?')} ({machine_line(data.get('machine'))}) with the current "
        f"defaults, nothing tuned on this set: {m['documents']} pages, {m['corpus_characters']:,} "
        f"characters, {m['queries']} queries ({m['entries']} needs, each as a FAQ-style question and as a "
        f"chat message; {m['answer_sentences_mean']} answer sentences per query), "
        f"{sum(m['off_topic'].values())} off-topic messages (see how the sets are built). Default index "
        "and search (`Retriever.search(k=10)`, no gate), judged as the other sets; hit@1: the first "
        "passage holds an answer sentence. Read these next to the other sets with care: an answer here "
        "is every unique prose sentence of the section(s) a question names (two to three times as many "
        "per query as in the django and python sets), and the questions were written by someone who had read "
        "those sections, so a passage from the right section counts even when it holds only part of "
        "what was asked.\n",
        "| queries | count | MRR@10 | hit@1 | hit@10 |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Is this covered? The same search with the coverage judgement at its default threshold "
        f"({data['threshold']:.2f}, as the bot runs): covered questions answered (among those whose "
        "ungated top 10 holds an answer, as in the coverage section, and among all), off-topic messages "
        "abstained on.\n",
        "| messages | count | share answered (covered) or abstained on (off-topic) |",
        "|---|---|---|",
        *gate_rows,
        "",
        "Around the default (answered: the answerable covered questions; for the trade-off only, no "
        "threshold is chosen here):\n",
        "| threshold | answered | abstained |",
        "|---|---|---|",
        *curve,
        "",
        f"Offline answers on this set ({offline['count']} answerable questions): the first sentence "
        f"shown holds an answer sentence for {_estimate(offline['first_sentence_hit'])}, against "
        f"{_estimate(offline['first_sentence_hit_before'])} with the rule before issue 11 (difference "
        f"{_difference(offline['now_minus_before'])}); an ask took {offline['ask_ms_p50']:.0f} ms at p50 "
        f"and {offline['ask_ms_p95']:.0f} ms at p95, of which scoring the sentences "
        f"{offline['sentence_scoring_ms_p50']:.0f} / {offline['sentence_scoring_ms_p95']:.0f} ms.\n",
    ]


def _difference(data: dict[str, float]) -> str:
    text = f"{data['mean']:+.3f} [{data['low']:+.3f}, {data['high']:+.3f}]"
    return f"{text}, noise" if data["low"] <= 0.0 <= data["high"] else text
