"""`python -m bench.cluster`: search latency on a 3-node Weaviate cluster, every node up and one down.

The `python` query set is indexed once with replication factor 3 into a `LocalCluster` (three
server processes on this machine), then every query runs through `WeaviateVectorStore.search`
(the store call behind `Retriever.search`, with precomputed query vectors so embedding time does not
blur the cluster's) at read consistency QUORUM and ONE, one at a time and 10 at once. Then one
node that the bot is not connected to is killed (SIGKILL) and the same searches run again. A
single embedded node with the same index is the baseline. Results go to
bench/.work/results/cluster.json and the "Weaviate cluster" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench import quality
from bench.dataset import WORK_DIR, Dataset, load_dataset
from bench.engine import CachedEmbedder, bench_settings
from bench.machine import describe
from bench.report_cluster import write_section
from bench.weaviate_cluster import LocalCluster
from configs.config import DEFAULT_WEAVIATE_BINARY, Settings
from data.embeddings import LocalOnnxEmbedder
from data.vector_store import WeaviateVectorStore
from data.weaviate_server import EmbeddedWeaviate
from services.indexer import Indexer

COLLECTION = "BenchCluster"
KILLED = "node2"  # the bot talks to node0; losing the node it talks to is a client/load-balancer matter
CONCURRENCY = (1, 10)
LEVELS = ("QUORUM", "ONE")


Queries = Sequence[tuple[str, list[float]]]  # (text, its vector)


async def _latencies(
    store: WeaviateVectorStore, settings: Settings, model_id: str, queries: Queries, workers: int
) -> list[float]:
    """Milliseconds per search, `workers` searches in flight at a time."""
    pending = list(queries)
    spent: list[float] = []

    async def worker() -> None:
        while pending:
            text, vector = pending.pop()
            started = time.perf_counter()
            await store.search(
                text,
                vector,
                model_id=model_id,
                limit=settings.search_top_k * 3,
                alpha=settings.search_alpha,
                fusion=settings.search_fusion,
                similarity=True,
            )
            spent.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(worker() for _ in range(workers)))
    return spent


def _summary(spent: Sequence[float]) -> dict[str, float]:
    p50, p95 = np.percentile(spent, [50, 95])
    return {"searches": len(spent), "p50_ms": float(p50), "p95_ms": float(p95), "max_ms": float(max(spent))}


async def _measure_state(
    base: Settings, model_id: str, queries: Queries, rounds: int
) -> dict[str, dict[str, float]]:
    """Every (read consistency, concurrency) combination against the store `base` points at."""
    out: dict[str, dict[str, float]] = {}
    for level in LEVELS:
        settings = base.model_copy(update={"weaviate_read_consistency": level})
        async with WeaviateVectorStore(settings) as store:
            await _latencies(store, settings, model_id, queries[:20], 1)  # warm the connection and caches
            for workers in CONCURRENCY:
                spent = await _latencies(store, settings, model_id, list(queries) * rounds, workers)
                out[f"{level}/{workers}"] = _summary(spent)
    return out


async def _index(settings: Settings, dataset: Dataset, embedder: CachedEmbedder) -> dict[str, Any]:
    async with WeaviateVectorStore(settings) as store:
        result = await Indexer(settings, store, embedder).index([dataset.corpus], full=True)
        stats = await store.stats()
    return {"documents": result.seen, "chunks": stats.chunks if stats else 0, "seconds": result.seconds}


async def measure(dataset: Dataset, rounds: int) -> dict[str, Any]:
    embedder = CachedEmbedder(LocalOnnxEmbedder())
    model_id = embedder.model_id
    queries = [(q.query, await embedder.embed_query(q.query)) for q in dataset.queries]
    results: dict[str, Any] = {"dataset": dataset.name, "queries": len(queries), "rounds": rounds}

    root = WORK_DIR / "cluster"
    single_dir = root / "single"
    if single_dir.exists():
        shutil.rmtree(single_dir)
    async with EmbeddedWeaviate(DEFAULT_WEAVIATE_BINARY, single_dir, startup_timeout=180) as single:
        settings = bench_settings(single, COLLECTION)
        results["single_index"] = await _index(settings, dataset, embedder)
        print("single node", flush=True)
        results["single"] = await _measure_state(settings, model_id, queries, rounds)

    started = time.monotonic()
    async with LocalCluster(DEFAULT_WEAVIATE_BINARY, root / "nodes", startup_timeout=180) as cluster:
        results["cluster_start_seconds"] = round(time.monotonic() - started, 1)
        settings = bench_settings(cluster.nodes[0], COLLECTION, weaviate_replication_factor=3)
        results["cluster_index"] = await _index(settings, dataset, embedder)
        print("3 nodes, all up", flush=True)
        results["all_up"] = await _measure_state(settings, model_id, queries, rounds)
        await cluster.node(KILLED).kill()
        async with WeaviateVectorStore(settings) as store:
            await _wait_noticed(store)
        print("3 nodes, one down", flush=True)
        results["one_down"] = await _measure_state(settings, model_id, queries, rounds)
    await embedder.aclose()
    return results


async def _wait_noticed(store: WeaviateVectorStore, seconds: float = 60.0) -> None:
    """Until the cluster has declared the node dead (counts stop waiting on it), as the test does."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        health = await store.cluster_health()
        try:
            if KILLED in health.down and await asyncio.wait_for(store.stats(), 2) is not None:
                return
        except TimeoutError:
            pass
        await asyncio.sleep(0.5)
    raise RuntimeError(f"the cluster did not notice {KILLED} was killed within {seconds:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--dataset", default="python", help="query set to index and search (bench/.work)")
    parser.add_argument("--rounds", type=int, default=3, help="times every query is searched per setting")
    args = parser.parse_args()
    machine = describe()
    started = time.perf_counter()
    results = asyncio.run(measure(load_dataset(args.dataset), args.rounds))
    machine["load_average_at_end"] = os.getloadavg()
    machine["run_minutes"] = round((time.perf_counter() - started) / 60, 1)
    results["machine"] = machine
    quality.save("cluster", results)
    print(f"wrote {write_section()}")


if __name__ == "__main__":
    main()
