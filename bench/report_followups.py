"""The report's section on follow-up questions (`python -m bench --parts followups`)."""

from __future__ import annotations

from typing import Any

from bench.metrics import Estimate
from bench.quality import load

LABELS = {
    "alone": "the follow-up searched alone",
    "before": "before issue 11: previous question prepended to a bare follow-up",
    "offline": "now: the offline model (two searches, fused)",
}
SET_LABELS = {"follow_up": "elliptical follow-ups", "topic_switch": "topic switch (control)"}


def _estimate(data: dict[str, float]) -> Estimate:
    return Estimate(data["mean"], data["low"], data["high"])


def _difference(data: dict[str, float]) -> str:
    text = f"{data['mean']:+.3f} [{data['low']:+.3f}, {data['high']:+.3f}]"
    return f"{text} (noise)" if data["low"] <= 0.0 <= data["high"] else text


def followups_section(out: list[str]) -> None:
    """Append the section (a placeholder before the part has run)."""
    data: dict[str, Any] | None = load("followups")
    if not data:
        out.append("_No follow-up results yet: run `python -m bench --parts followups,report`._\n")
        return
    sets = [name for name in SET_LABELS if name in data]
    header = " | ".join(f"{SET_LABELS[n]} ({data[n]['count']})" for n in sets)
    rows = [
        f"| {LABELS[s]} | " + " | ".join(str(_estimate(data[n]["top"][s])) for n in sets) + " |"
        for s in LABELS
    ]
    phrasing = data["follow_up"]["by_phrasing"]
    out += [
        f"Measured {data.get('saved_utc', '?')} on the `{data['dataset']}` set (Git's manual pages, "
        "`git-doc`; see how the sets are built). Each conversation asks "
        '"How do I <purpose>?" from a page\'s NAME line, then a follow-up about another section of '
        'the same page — "any examples?", "which configuration variables affect it?", "exit status?" — '
        "that names nothing: 50 of the 134 pages have an EXAMPLES section. The control set follows "
        "each question with the full question of another page, which the conversation must not drag "
        f"back. A hit: one of the first {data['top']} passages shown holds an answer sentence "
        "(default index, search and coverage judgement, as the bot runs).\n",
        f"| share of conversations with the answer in the top {data['top']} | {header} |",
        "|---|" + "---|" * len(sets),
        *rows,
        "",
        "Paired differences, now minus before: "
        + "; ".join(f"{SET_LABELS[n]} {_difference(data[n]['offline_minus_before'])}" for n in sets)
        + ". By phrasing of the follow-up (before → now): "
        + "; ".join(
            f"{p} {phrasing[p]['before']:.0%} → {phrasing[p]['offline']:.0%}" for p in sorted(phrasing)
        )
        + ".\n",
        "How it works (simple_agents/conversation.py): in a conversation the offline model searches "
        "twice, in parallel — the message alone, and the message plus the key terms it leaves out "
        "(the title of the passage the previous answer quoted first, then the earlier questions' "
        "words, at most 8). The two rankings are fused (weighted reciprocal rank): for an elliptical "
        'message (two words at most, one content word, or a few with "it"/"that" or a leading '
        '"and"/"what about") the carried search leads, otherwise the message alone leads. The rule '
        "that tells them apart was written with these phrasings in view, so it recognises them all; "
        "it only sets the weights, and both searches always run, so a wrong guess reorders the "
        "passages rather than losing them. With a language model the agent is told to write "
        "standalone queries instead (tests/test_followups.py).\n",
        f"Cost: a follow-up turn through the agent takes {data['follow_up']['follow_up_turn_ms_p50']:.0f} "
        f"ms at p50 against {data['follow_up']['first_turn_ms_p50']:.0f} ms for a first turn (one "
        "search; both through the agent without the conversation store, on a 2-core machine shared "
        "with other work): the second search runs in parallel with the first.\n"
        if "follow_up_turn_ms_p50" in data["follow_up"]
        else "",
    ]
