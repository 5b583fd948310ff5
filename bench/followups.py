"""Follow-ups: is the answering passage among the first three the bot shows for the second turn?

The conversations of the `git` set (`bench.build_git`): "How do I <purpose>?", then "any
examples?" or "which configuration variables affect it?" about the same manual page. The control
set ("topic switch") follows each question with a full question about another page, which the
conversation must not pull back to the first page. Each conversation is answered three ways on
the default index and search settings (with the coverage judgement, as the bot runs):

- `alone`: the follow-up searched on its own;
- `before`: the rule before issue 11 (the previous question prepended when the follow-up has at
  most three words, or half of its at most eight words are follow-up words);
- `offline`: the offline model as it runs now, through the agent (`Runner.run` with the
  `search_docs` tool on the retriever): it answers the first question, then the follow-up with
  that answer in the history; its passages are the ones the second answer shows, in order.

A conversation counts as a hit when one of the first `TOP` passages holds an answer sentence.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from agents import Runner
from chatkit.types import ThreadMetadata

from bench.build_git import load_follow_ups
from bench.dataset import Dataset, judge
from bench.engine import Engine
from bench.metrics import bootstrap, paired_difference
from bench.quality import BASE_INDEX
from bench.relevance import DEFAULT_SEARCH
from data.records import Passage
from services.rag import Retriever
from simple_agents.aagents import DocsAgentContext, build_agent, build_run_config

TOP = 3
STRATEGIES = ("alone", "before", "offline")
_CITED = re.compile(r"\[(\d+)\]")
_WORD = re.compile(r"\w+")
_FOLLOW_UP_WORDS = frozenset(
    "it its that this these those they them their there he she his her one ones same more else "
    "why how what and also so then about".split()
)


def prepended_when_bare(question: str, previous: str) -> str:
    """The query rule before issue 11, kept here as the baseline."""
    words = [word.lower() for word in _WORD.findall(question)]
    bare = len(words) <= 3 or (
        len(words) <= 8 and sum(w in _FOLLOW_UP_WORDS for w in words) * 2 >= len(words)
    )
    return f"{previous.strip()} {question.strip()}" if previous and bare else question.strip()


async def offline_passages(
    agent: Any, settings: Any, first: str, follow_up: str, seconds: list[list[float]]
) -> list[Passage]:
    """The passages the offline model's answer to `follow_up` shows, in order, after its own answer
    to `first` (the history a conversation would have). Appends each turn's seconds to `seconds`."""
    config = build_run_config(settings)
    history: list[Any] = [{"role": "user", "content": first}]
    started = time.perf_counter()
    answer = await Runner.run(agent, history, context=_context(), run_config=config)
    seconds[0].append(time.perf_counter() - started)
    history += [
        {"role": "assistant", "content": str(answer.final_output)},
        {"role": "user", "content": follow_up},
    ]
    context = _context()
    started = time.perf_counter()
    result = await Runner.run(agent, history, context=context, run_config=config)
    seconds[1].append(time.perf_counter() - started)
    shown: list[int] = []
    for number in (int(n) for n in _CITED.findall(str(result.final_output))):
        if number not in shown and 1 <= number <= len(context.passages):
            shown.append(number)
    return [context.passages[n - 1] for n in shown]


def _context() -> DocsAgentContext[None]:
    thread = ThreadMetadata(id="bench", created_at=datetime.now())
    return DocsAgentContext[None](thread=thread, store=None, request_context=None)  # type: ignore[arg-type]


def _hit(passages: Sequence[Passage], answer: Sequence[str]) -> float:
    return float(any(judge([p.text for p in passages[:TOP]], answer)))


def _p50_ms(seconds: Sequence[float]) -> float:
    return round(sorted(seconds)[len(seconds) // 2] * 1000, 1)


def _by_phrasing(hits: dict[str, list[float]], phrasings: Sequence[str]) -> dict[str, dict[str, float]]:
    """Each strategy's hit rate per phrasing of the follow-up."""
    rates: dict[str, dict[str, float]] = {}
    for phrasing in sorted(set(phrasings)):
        chosen = [i for i, p in enumerate(phrasings) if p == phrasing]
        rates[phrasing] = {s: sum(h[i] for i in chosen) / len(chosen) for s, h in hits.items()}
    return rates


async def measure(engine: Engine, dataset: Dataset) -> dict[str, Any]:
    await engine.ensure_index(dataset, BASE_INDEX)
    # As the bot runs: the coverage judgement applies (the quality sweep measures without a gate).
    settings = engine.settings(dataset.name, BASE_INDEX, DEFAULT_SEARCH).model_copy(
        update={"search_min_similarity": None}
    )
    retriever = Retriever(settings, await engine.store(BASE_INDEX.collection(dataset.name)), engine.embedder)
    agent = build_agent(settings, retriever)
    queries = dataset.queries
    sets: dict[str, list[tuple[str, str, list[str], str]]] = {
        "follow_up": [(c.first, c.follow_up, c.answer, c.phrasing) for c in load_follow_ups(dataset.root)],
        "topic_switch": [
            (queries[(i + 1) % len(queries)].query, q.query, q.answer, "full question")
            for i, q in enumerate(queries)
        ],
    }
    results: dict[str, Any] = {}
    for name, conversations in sets.items():
        hits: dict[str, list[float]] = {s: [] for s in STRATEGIES}
        seconds: list[list[float]] = [[], []]  # first turns, follow-up turns
        for first, follow_up, answer, _ in conversations:
            hits["alone"].append(_hit(await retriever.search(follow_up), answer))
            hits["before"].append(_hit(await retriever.search(prepended_when_bare(follow_up, first)), answer))
            shown = await offline_passages(agent, settings, first, follow_up, seconds)
            hits["offline"].append(_hit(shown, answer))
        phrasings = [p for _, _, _, p in conversations]
        results[name] = {
            "count": len(conversations),
            "hits": hits,
            "phrasings": phrasings,
            "top": {s: bootstrap(h).as_dict() for s, h in hits.items()},
            "offline_minus_before": paired_difference(hits["offline"], hits["before"]).as_dict(),
            "offline_minus_alone": paired_difference(hits["offline"], hits["alone"]).as_dict(),
            "by_phrasing": _by_phrasing(hits, phrasings),
            "first_turn_ms_p50": _p50_ms(seconds[0]),
            "follow_up_turn_ms_p50": _p50_ms(seconds[1]),
        }
        print(f"  followups: {name} {results[name]['top']}", flush=True)
    return {"dataset": dataset.name, "top": TOP, **results}
