"""The `spaces` part (issue 13): a space's search filtered by a `source_name` property filter in one
collection, against the alternative the issue names, one Weaviate tenant per space.

The `python` set's documents are dealt round-robin into 4 local folders (4 sources) and indexed once
by the real `Indexer` into one collection, so every chunk carries its `source_name`. Three spaces
overlap: A = sources 1+2, B = 2+3, C = 4. For every question of the set:
(a) the unfiltered hybrid search and (b) the search of each space (`store.search(..., sources=...)`,
the bot's path) are timed; their top 10 is judged against an oracle: one unfiltered search with every
chunk as the limit, other spaces' hits dropped afterwards (what the issue forbids serving, but the
right answer for "what should this space see first"). (c) A collection with multi-tenancy, one tenant
per space holding that space's chunks with the same vectors (a source in two spaces stored twice),
built by hand with weaviate-client v4 and searched per tenant the same way.

Every mode answers the same hybrid query (alpha and fusion from the defaults, the retriever's fetch
limit), with query vectors computed up front, so the latencies are Weaviate's (plus the client).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from weaviate.classes.config import ConsistencyLevel
from weaviate.collections.collection.async_ import CollectionAsync

from bench.dataset import WORK_DIR, Dataset, Query, judge
from bench.engine import bench_settings
from bench.spaces_tenants import (
    CHANGE_SOURCE,
    FETCH_LIMIT,
    SPACES,
    TENANT_COLLECTION,
    ChunkKey,
    K,
    build_tenants,
    chunk_keys,
    disk_bytes,
    hybrid,
    index_config,
    read_chunks,
    time_space_change,
)
from configs.config import Settings
from data.embeddings import Embedder
from data.records import SearchHit
from data.vector_store import WeaviateVectorStore
from data.weaviate_server import EmbeddedWeaviate
from services.indexer import Indexer

SOURCES = 4
ROUNDS = 5  # every query is timed this many times per mode
COLLECTION = "BenchSpaces"
SPACES_DIR = WORK_DIR / "spaces"


# --- pure helpers (tests/test_bench_spaces.py) ---------------------------------------------------
def deal_documents(documents: Iterable[str], sources: int) -> dict[str, int]:
    """Each document's source, round-robin over the sorted documents (so every source gets
    documents from every folder of the manual, not one chapter each)."""
    return {document: n % sources for n, document in enumerate(sorted(documents))}


def stored_objects(spaces: Mapping[str, Sequence[int]], chunks_per_source: Mapping[int, int]) -> int:
    """Objects a tenant per space holds in all: a source's chunks once per space that has it."""
    return sum(chunks_per_source.get(source, 0) for members in spaces.values() for source in members)


def oracle_top(ranked: Sequence[ChunkKey], allowed: Callable[[ChunkKey], bool], k: int) -> list[ChunkKey]:
    """The first `k` of an unfiltered ranking that a space may see (filtering after the search)."""
    return [key for key in ranked if allowed(key)][:k]


def overlap(found: Sequence[ChunkKey], expected: Sequence[ChunkKey]) -> float:
    """Share of `expected` that `found` holds too (1.0 when both are empty)."""
    return len(set(found) & set(expected)) / len(expected) if expected else 1.0


def percentiles(milliseconds: Sequence[float]) -> dict[str, float]:
    p50, p95, p99 = np.percentile(milliseconds, [50, 95, 99])
    return {
        "count": len(milliseconds),
        "p50_ms": round(float(p50), 3),
        "p95_ms": round(float(p95), 3),
        "p99_ms": round(float(p99), 3),
        "mean_ms": round(float(np.mean(milliseconds)), 3),
    }


def median_difference(a: Sequence[float], b: Sequence[float], resamples: int = 2000) -> dict[str, float]:
    """Median of the paired differences a[i] - b[i] (same query, space and round) with a 95%
    percentile-bootstrap interval: the machine's drift falls on both sides of every pair."""
    differences = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    rng = np.random.default_rng(0)
    medians = np.median(rng.choice(differences, (resamples, len(differences))), axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    return {
        "median_ms": round(float(np.median(differences)), 3),
        "low_ms": round(float(low), 3),
        "high_ms": round(float(high), 3),
    }


# --- the corpus as sources -----------------------------------------------------------------------
def source_folders(dataset: Dataset) -> tuple[list[Path], dict[str, int]]:
    """Copy the corpus into SOURCES folders (bench/.work/spaces/source-N/<its path>); returns the
    folders and each corpus document's (relative path's) source."""
    if SPACES_DIR.exists():
        shutil.rmtree(SPACES_DIR)
    files = [p.relative_to(dataset.corpus).as_posix() for p in dataset.corpus.rglob("*") if p.is_file()]
    dealt = deal_documents(files, SOURCES)
    folders = [SPACES_DIR / f"source-{n + 1}" for n in range(SOURCES)]
    for relative, source in dealt.items():
        target = folders[source] / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(dataset.corpus / relative, target)
    return folders, dealt


# --- the measurement -----------------------------------------------------------------------------
class Corpus:
    """The indexed chunks (with vectors) and which source and space each belongs to."""

    def __init__(self, chunks: Sequence[Any], folders: Sequence[Path], dealt: Mapping[str, int]) -> None:
        self.chunks = chunks
        self.folders = folders
        self.dealt = dealt  # corpus document (relative path) -> source
        self.index_of = {str(folder): n for n, folder in enumerate(folders)}
        names = {str(o.properties["source_name"]) for o in chunks}
        if names != set(self.index_of):
            raise RuntimeError(
                f"source_name values {sorted(names)} are not the folders {sorted(self.index_of)}"
            )
        self.source_by_document = {str(o.properties["document_id"]): self.source_of(o) for o in chunks}
        self.text_of = {
            (str(o.properties["document_id"]), int(o.properties["chunk_index"])): str(o.properties["text"])
            for o in chunks
        }

    def source_of(self, chunk: Any) -> int:
        return self.index_of[str(chunk.properties["source_name"])]

    def chunks_per_source(self) -> dict[int, int]:
        return {n: sum(1 for o in self.chunks if self.source_of(o) == n) for n in range(SOURCES)}

    def in_space(self, key: ChunkKey, space: str) -> bool:
        return self.source_by_document[key[0]] in SPACES[space]

    def space_sources(self, space: str) -> list[str]:
        return [str(self.folders[n]) for n in SPACES[space]]


class Modes:
    """The three ways to search: the bot's store (unfiltered or a space's sources) and a tenant."""

    def __init__(
        self,
        store: WeaviateVectorStore,
        tenants: CollectionAsync[Any, Any],
        model_id: str,
        settings: Settings,
    ) -> None:
        self.store, self.tenants, self.model_id, self.settings = store, tenants, model_id, settings

    async def store_search(
        self, query: str, vector: Sequence[float], sources: Sequence[str] | None, limit: int = FETCH_LIMIT
    ) -> list[SearchHit]:
        return await self.store.search(
            query,
            vector,
            model_id=self.model_id,
            limit=limit,
            alpha=self.settings.search_alpha,
            fusion=self.settings.search_fusion,
            sources=sources,
        )

    async def tenant_search(self, space: str, query: str, vector: Sequence[float]) -> list[SearchHit]:
        return await hybrid(self.tenants.with_tenant(space), query, vector, self.settings)


Results = dict[tuple[str, str, str], list[SearchHit]]  # (mode, space or "", query id) -> hits


async def time_modes(
    modes: Modes, corpus: Corpus, queries: Sequence[Query], vectors: Sequence[Sequence[float]]
) -> tuple[dict[str, list[float]], dict[str, dict[str, list[float]]], Results]:
    """Every query ROUNDS times: unfiltered once, then per space filtered and tenant (their order
    alternating, so neither always runs on a warmer cache). Milliseconds per mode and per space."""
    times: dict[str, list[float]] = {"unfiltered": [], "filtered": [], "tenant": []}
    per_space: dict[str, dict[str, list[float]]] = {s: {"filtered": [], "tenant": []} for s in SPACES}
    results: Results = {}

    async def timed(mode: str, space: str, query: Query, search: Any) -> None:
        began = time.perf_counter()
        hits = await search
        spent = (time.perf_counter() - began) * 1000
        times[mode].append(spent)
        if space:
            per_space[space][mode].append(spent)
        results[(mode, space, query.id)] = hits

    pairs = list(zip(queries, vectors, strict=True))
    for query, vector in pairs[:5]:  # warm-up, not timed
        await modes.store_search(query.query, vector, corpus.space_sources("A"))
        await modes.tenant_search("A", query.query, vector)
    for round_number in range(ROUNDS):
        for n, (query, vector) in enumerate(pairs):
            await timed("unfiltered", "", query, modes.store_search(query.query, vector, None))
            for space in SPACES:
                order = [
                    ("filtered", modes.store_search(query.query, vector, corpus.space_sources(space))),
                    ("tenant", modes.tenant_search(space, query.query, vector)),
                ]
                for mode, search in order if (n + round_number) % 2 else reversed(order):
                    await timed(mode, space, query, search)
        print(f"  round {round_number + 1}/{ROUNDS} timed", flush=True)
    return times, per_space, results


def judge_modes(
    corpus: Corpus, queries: Sequence[Query], results: Results, oracle: Mapping[str, Sequence[ChunkKey]]
) -> dict[str, Any]:
    """hit@10 of each mode per (query, space), against the oracle; other spaces' chunks served."""
    hits: dict[str, int] = {"unfiltered": 0, "filtered": 0, "tenant": 0, "oracle": 0}
    served_elsewhere = {"unfiltered": 0, "filtered": 0, "tenant": 0}  # other spaces' chunks in the top K
    answers_elsewhere = {"unfiltered": 0, "filtered": 0, "tenant": 0}  # found, though not in the space
    same = {"filtered": 0.0, "tenant": 0.0, "tenant_vs_filtered": 0.0}
    identical = {"filtered": 0, "tenant": 0, "tenant_vs_filtered": 0}
    answerable = pairs = 0
    limit_effect = 0.0  # the unfiltered top K against the large-limit ranking's: fusion, not filtering
    for query in queries:
        unfiltered = chunk_keys(results[("unfiltered", "", query.id)])[:K]
        limit_effect += overlap(unfiltered, list(oracle[query.id][:K]))
        for space in SPACES:
            pairs += 1

            def allowed(key: ChunkKey, space: str = space) -> bool:
                return corpus.in_space(key, space)

            tops = {
                "unfiltered": unfiltered,
                "filtered": chunk_keys(results[("filtered", space, query.id)])[:K],
                "tenant": chunk_keys(results[("tenant", space, query.id)])[:K],
                "oracle": oracle_top(oracle[query.id], allowed, K),
            }
            found = {
                mode: any(judge([corpus.text_of[k] for k in top], query.answer)) for mode, top in tops.items()
            }
            for mode in served_elsewhere:
                served_elsewhere[mode] += sum(1 for key in tops[mode] if not allowed(key))
            if corpus.dealt[query.document] not in SPACES[space]:
                for mode in answers_elsewhere:
                    answers_elsewhere[mode] += found[mode]
                continue
            answerable += 1
            for mode in hits:
                hits[mode] += found[mode]
            for name, (a, b) in {
                "filtered": ("filtered", "oracle"),
                "tenant": ("tenant", "oracle"),
                "tenant_vs_filtered": ("tenant", "filtered"),
            }.items():
                same[name] += overlap(tops[a], tops[b])
                identical[name] += tops[a] == tops[b]
    return {
        "pairs": pairs,
        "answerable_pairs": answerable,
        "hit_at_10": hits,
        "mean_overlap_at_10": {n: round(v / max(answerable, 1), 4) for n, v in same.items()},
        "identical_top_10": identical,
        "unfiltered_vs_large_limit_overlap_at_10": round(limit_effect / max(len(queries), 1), 4),
        "other_spaces_chunks_in_top_10": served_elsewhere,
        "answers_found_outside_the_space": answers_elsewhere,
    }


async def measure(
    server: EmbeddedWeaviate, dataset: Dataset, embedder: Embedder, machine: dict[str, Any]
) -> dict[str, Any]:
    """Index the corpus as 4 sources, build the tenants, time and judge the three modes."""
    started = time.perf_counter()
    folders, dealt = source_folders(dataset)
    settings = bench_settings(server, COLLECTION)
    store = WeaviateVectorStore(settings)
    await store.connect()
    try:
        indexed = await Indexer(settings, store, embedder).index(folders, full=True)
        print(f"  indexed {indexed.seen} documents, {indexed.chunks_written} chunks", flush=True)
        client = await store.client()
        physical = await store.serving_collection()
        if physical is None:
            raise RuntimeError(f"Indexing the spaces corpus wrote nothing: {indexed.summary()}")
        corpus = Corpus(await read_chunks(client.collections.use(physical)), folders, dealt)
        vector_index = await index_config(client.collections.use(physical))
        build = await build_tenants(
            client, await store.generation_info(physical), corpus.chunks, corpus.source_of
        )
        build["disk_bytes"] = {
            "single": disk_bytes(server, physical),
            "tenants": disk_bytes(server, TENANT_COLLECTION),
        }
        tenants = client.collections.use(TENANT_COLLECTION).with_consistency_level(
            ConsistencyLevel(settings.weaviate_read_consistency)
        )
        modes = Modes(store, tenants, embedder.model_id, settings)
        queries = dataset.queries
        vectors = [await embedder.embed_query(q.query) for q in queries]
        times, per_space, results = await time_modes(modes, corpus, queries, vectors)
        oracle = {
            q.id: chunk_keys(await modes.store_search(q.query, v, None, limit=len(corpus.chunks)))
            for q, v in zip(queries, vectors, strict=True)
        }
        change = await time_space_change(
            client.collections.use(TENANT_COLLECTION),
            corpus.chunks,
            corpus.source_of,
            str(folders[CHANGE_SOURCE]),
        )
    finally:
        await store.close()
    per_source = corpus.chunks_per_source()
    return {
        "dataset": dataset.name,
        "documents": indexed.seen,
        "chunks": len(corpus.chunks),
        "index_seconds": round(indexed.seconds, 1),
        "sources": {
            str(n + 1): {"documents": sum(1 for s in dealt.values() if s == n), "chunks": per_source[n]}
            for n in range(SOURCES)
        },
        "spaces": {s: [n + 1 for n in members] for s, members in SPACES.items()},
        "queries": len(queries),
        "rounds": ROUNDS,
        "fetch_limit": FETCH_LIMIT,
        "alpha": settings.search_alpha,
        "fusion": settings.search_fusion,
        "latency": {mode: percentiles(values) for mode, values in times.items()},
        "paired_ms": {  # each space's search paired with the unfiltered one of its query and round
            "filtered_minus_unfiltered": median_difference(
                times["filtered"], [t for t in times["unfiltered"] for _ in SPACES]
            ),
            "filtered_minus_tenant": median_difference(times["filtered"], times["tenant"]),
        },
        "latency_per_space": {s: {m: percentiles(v) for m, v in by.items()} for s, by in per_space.items()},
        "build": build,
        "vector_index": vector_index,
        "stored": {"single": len(corpus.chunks), "tenants": stored_objects(SPACES, per_source)},
        "change": change,
        "quality": judge_modes(corpus, queries, results, oracle),
        "machine": {
            **machine,
            "load_average_at_end": os.getloadavg(),
            "run_minutes": round((time.perf_counter() - started) / 60, 1),
        },
    }
