"""Offline answers that answer: does the first sentence the offline model shows hold an answer?

Each question of the sets goes through the agent with the offline model (`Runner.run`, the
`search_docs` tool on the retriever, default index and search settings with the coverage judgement,
as the bot runs). The first sentence shown is the first sentence of the answer after the no-LLM
notice (quote marks, "…" and [n] markers removed), split like the sets' answers
(`bench.dataset.split_sentences`); it is a hit when it contains a whole answer sentence. Only
questions whose top 10 holds a relevant passage count: the others cannot be answered by any
choice of sentence. The asks run on the bare embedder (no vector cache), so their p50/p95 are what a
user waits for offline; the cost of scoring the sentences, which is what choosing sentences by
meaning adds to an ask, is timed again on its own (next to one query embedding, for scale).
`before` is the rule before issue 11 (`first_sentence_before`) on the same retrieved passages.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
from agents import Runner
from chatkit.types import ThreadMetadata

from bench.dataset import Dataset, normalize, split_sentences
from bench.engine import Engine
from bench.machine import describe
from bench.metrics import bootstrap, paired_difference
from bench.quality import BASE_INDEX
from bench.relevance import DEFAULT_SEARCH, answerable
from services.rag import Retriever
from simple_agents.aagents import DocsAgentContext, build_agent, build_run_config
from simple_agents.offline_answer import NO_LLM_NOTICE, candidate_sentences, numbered_blocks

_MARKERS = re.compile(r"\s*\[\d+\]")
_WORD = re.compile(r"\w+")
_OLD_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_OLD_EXCERPT_CHARS = 500


def first_sentence(answer: str) -> str:
    """The first sentence a reader sees after the notice (quote marks, list bullets and source
    headers skipped)."""
    for paragraph in answer.replace(NO_LLM_NOTICE, "").split("\n\n"):
        lines = [line for line in paragraph.splitlines() if not line.startswith("**[")]
        text = " ".join(line.removeprefix(">").strip().removeprefix("- ") for line in lines).strip()
        text = _MARKERS.sub("", text.removeprefix("… ").removesuffix(" …")).strip()
        if text:
            return (split_sentences(text) or [""])[0]
    return ""


def first_sentence_before(question: str, passage: str) -> str:
    """The first sentence the offline answer showed before issue 11: its first passage's excerpt
    began one sentence before the sentence holding most of the question's words (the whole
    passage when it was at most 500 characters)."""
    if len(passage) > _OLD_EXCERPT_CHARS:
        terms = {word.lower() for word in _WORD.findall(question) if len(word) > 2}
        starts = [0, *(match.end() for match in _OLD_SENTENCE_END.finditer(passage))]
        spans = [
            (a, b) for a, b in zip(starts, [*starts[1:], len(passage)], strict=True) if passage[a:b].strip()
        ]
        scores = [len(terms & {w.lower() for w in _WORD.findall(passage[a:b])}) for a, b in spans]
        best = max(range(len(spans)), key=lambda i: (scores[i], -i)) if spans else 0
        first = max(0, best - 1) if scores and scores[best] else 0
        passage = passage[spans[first][0] :] if spans else passage
    return (split_sentences(passage) or [""])[0]


def holds_answer(sentence: str, answer: Sequence[str]) -> bool:
    flat = f" {normalize(sentence)} "
    return any(f" {a} " in flat for a in answer)


def _p50_ms(seconds: Sequence[float]) -> float:
    return round(sorted(seconds)[len(seconds) // 2] * 1000, 1) if seconds else 0.0


def _p95_ms(seconds: Sequence[float]) -> float:
    return round(float(np.percentile(seconds, 95)) * 1000, 1) if seconds else 0.0


async def measure(engine: Engine, datasets: Sequence[Dataset]) -> dict[str, Any]:
    machine = describe()
    per_set: dict[str, Any] = {}
    for dataset in datasets:
        await engine.ensure_index(dataset, BASE_INDEX)
        settings = engine.settings(dataset.name, BASE_INDEX, DEFAULT_SEARCH).model_copy(
            update={"search_min_similarity": None}
        )
        store = await engine.store(BASE_INDEX.collection(dataset.name))
        # Bare embedder, each question asked once: the asks' latency is what a user waits for.
        bare_embedder = getattr(engine.embedder, "inner", engine.embedder)
        bare = Retriever(settings, store, bare_embedder)
        agent = build_agent(settings, bare)
        scoring: list[float] = []
        config = build_run_config(settings)
        can = await answerable(engine, dataset)
        hits: list[float] = []
        before: list[float] = []
        embedding: list[float] = []
        seconds: list[float] = []
        examples: list[dict[str, str]] = []
        candidates: list[int] = []
        for query, ok in zip(dataset.queries, can, strict=True):
            if not ok:
                continue
            thread = ThreadMetadata(id="bench", created_at=datetime.now())
            context = DocsAgentContext[None](thread=thread, store=None, request_context=None)  # type: ignore[arg-type]
            started = time.perf_counter()
            result = await Runner.run(agent, query.query, context=context, run_config=config)
            seconds.append(time.perf_counter() - started)
            shown = first_sentence(str(result.final_output))
            outputs = [str(i.output) for i in result.new_items if i.type == "tool_call_output_item"]
            blocks = numbered_blocks(outputs)
            old = first_sentence_before(query.query, blocks[0].text) if blocks else ""
            before.append(float(holds_answer(old, query.answer)))
            sentences = [s.text for s in candidate_sentences(query.query, blocks)]
            candidates.append(len(sentences))
            started = time.perf_counter()
            await bare_embedder.embed_query(f"{query.query} (timed)")  # not in the vector cache
            embedding.append(time.perf_counter() - started)
            started = time.perf_counter()
            await bare.score_sentences(query.query, sentences)
            scoring.append(time.perf_counter() - started)
            hits.append(float(holds_answer(shown, query.answer)))
            if len(examples) < 5:
                examples.append(
                    {"question": query.query, "first_sentence": shown, "hit": str(bool(hits[-1]))}
                )
        per_set[dataset.name] = {
            "count": len(hits),
            "hits": hits,
            "before": before,
            "first_sentence_hit": bootstrap(hits).as_dict(),
            "first_sentence_hit_before": bootstrap(before).as_dict(),
            "now_minus_before": paired_difference(hits, before).as_dict(),
            "query_embedding_ms_p50": _p50_ms(embedding),
            "ask_ms_p50": _p50_ms(seconds),
            "ask_ms_p95": _p95_ms(seconds),
            "sentence_scoring_ms_p50": _p50_ms(scoring),
            "sentence_scoring_ms_p95": _p95_ms(scoring),
            "candidate_sentences_mean": round(sum(candidates) / max(1, len(candidates)), 1),
            "examples": examples,
        }
        print(f"  answers: {dataset.name} {per_set[dataset.name]['first_sentence_hit']}", flush=True)
    pooled = [h for data in per_set.values() for h in data["hits"]]
    pooled_before = [h for data in per_set.values() for h in data["before"]]
    return {
        "machine": {**machine, "load_average_at_end": os.getloadavg()},
        "sets": per_set,
        "pooled": bootstrap(pooled).as_dict(),
        "pooled_before": bootstrap(pooled_before).as_dict(),
        "now_minus_before": paired_difference(pooled, pooled_before).as_dict(),
        "count": len(pooled),
    }
