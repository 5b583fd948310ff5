"""The retrieval-quality sweep through the project's own indexer and search path.

Every index configuration (chunk size / overlap / heading path in the embedded text) is built
once per dataset; every search configuration (alpha, fusion) is then run on it. Results (scores
per query) go to bench/.work/results/quality.json for `bench.report`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from typing import Any

from bench.dataset import WORK_DIR, Dataset, judge
from bench.engine import Engine, IndexConfig, SearchConfig
from bench.metrics import METRICS, QueryScores, score_query

RESULTS = WORK_DIR / "results"
BASE_INDEX = IndexConfig()
INDEX_CONFIGS = (
    BASE_INDEX,
    IndexConfig(embed_heading_path=False),
    IndexConfig(chunk_size=500, chunk_overlap=75),
    IndexConfig(chunk_size=1500, chunk_overlap=225),
    IndexConfig(chunk_size=1000, chunk_overlap=0),
)
ALPHAS = (0.25, 0.5, 0.7, 0.8)
FUSIONS = ("relative_score", "ranked")
BM25 = SearchConfig(alpha=0.0)
VECTOR = SearchConfig(alpha=1.0)
BASE_SEARCHES = (BM25, VECTOR, *(SearchConfig(a, f) for a in ALPHAS for f in FUSIONS))


def run_record(
    system: str, dataset: Dataset, label: str, texts: Sequence[Sequence[str]], extra: dict[str, Any]
) -> dict[str, Any]:
    """Judge ranked texts (one list per query, in dataset order) into a result record."""
    scores = []
    chars = []
    for query, results in zip(dataset.queries, texts, strict=True):
        judged = judge(results[:10], query.answer)
        s: QueryScores = score_query(judged, len(query.answer))
        scores.append({"id": query.id, **{m: round(getattr(s, m), 5) for m in METRICS}})
        chars.append(sum(len(t) for t in results[:10]))
    return {
        "system": system,
        "dataset": dataset.name,
        "label": label,
        "scores": scores,
        "mean_context_chars": round(sum(chars) / max(1, len(chars))),
        **extra,
    }


async def evaluate(
    engine: Engine, dataset: Dataset, index: IndexConfig, search: SearchConfig
) -> dict[str, Any]:
    questions = [q.query for q in dataset.queries]
    started = time.perf_counter()
    passages = await engine.search(dataset.name, index, search, questions)
    seconds = time.perf_counter() - started
    texts = [[p.text for p in ranked] for ranked in passages]
    label = f"{index.label} · {search.label}"
    extra = {"index": asdict(index), "search": asdict(search), "search_seconds": round(seconds, 2)}
    return run_record("ours", dataset, label, texts, extra)


def pooled_ndcg(runs: list[dict[str, Any]], index: IndexConfig, search: SearchConfig) -> float:
    values = [
        s["ndcg"]
        for r in runs
        if r["index"] == asdict(index) and r["search"] == asdict(search)
        for s in r["scores"]
    ]
    return sum(values) / max(1, len(values))


async def sweep(
    engine: Engine,
    datasets: Sequence[Dataset],
    quick: bool = False,
    checkpoint: Callable[[dict[str, Any]], None] | None = None,
    after_second: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """Base index with every search config, then other index configs with the main contenders.

    `checkpoint` gets the results so far after each index configuration (a long sweep can be
    stopped and its finished part reported); `after_second` runs after the second configuration
    (the peers' quality runs go there, before the costlier chunk-size variants)."""
    runs: list[dict[str, Any]] = []
    builds: dict[str, Any] = {}
    data: dict[str, Any] = {"runs": runs, "builds": builds}
    index_configs = INDEX_CONFIGS[:2] if quick else INDEX_CONFIGS
    for dataset in datasets:
        result = await engine.ensure_index(dataset, BASE_INDEX)
        builds[BASE_INDEX.collection(dataset.name)] = _build_info(result)
        for search in BASE_SEARCHES:
            runs.append(await evaluate(engine, dataset, BASE_INDEX, search))
            print(f"  {dataset.name}: {runs[-1]['label']}", flush=True)
    hybrids = [s for s in BASE_SEARCHES if s not in (BM25, VECTOR)]
    best = max(hybrids, key=lambda s: pooled_ndcg(runs, BASE_INDEX, s))
    data["best_base_hybrid"] = asdict(best)
    if checkpoint:
        checkpoint(data)
    contenders = [BM25, VECTOR, best, SearchConfig(best.alpha, _other(best.fusion))]
    for number, index in enumerate(index_configs[1:], 2):
        for dataset in datasets:
            result = await engine.ensure_index(dataset, index)
            builds[index.collection(dataset.name)] = _build_info(result)
            for search in contenders:
                runs.append(await evaluate(engine, dataset, index, search))
                print(f"  {dataset.name}: {runs[-1]['label']}", flush=True)
        if checkpoint:
            checkpoint(data)
        if number == 2 and after_second is not None:
            await after_second()
    return data


def _other(fusion: str) -> str:
    return "ranked" if fusion == "relative_score" else "relative_score"


def _build_info(result: Any) -> dict[str, Any]:
    return {
        "chunks": result.chunks_written,
        "seconds": round(result.seconds, 2),
        "embeddings": result.embeddings_computed,
        "documents": result.seen,
        "failed": result.failed,
    }


def save(name: str, data: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data["saved_utc"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
