"""Ingestion speed: the project's indexer against the bare embedder on the same chunks, the
unchanged re-index, and the peers (LlamaIndex, LangChain) on the same corpus, embedder and server.

Speed is always measured with the bare `LocalOnnxEmbedder` (no cache).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.dataset import WORK_DIR, Dataset
from bench.engine import CachedEmbedder, Engine
from bench.peer_common import KEY_VARIABLE
from bench.quality import BASE_INDEX, run_record
from bench.vector_cache import DEFAULT_PATH
from bench.venvs import installed_versions, peer_python
from data.embeddings import LocalOnnxEmbedder
from data.records import Chunk
from data.weaviate_server import EmbeddedWeaviate
from services.indexing.chunking import chunk_document
from services.indexing.loader import ParsedDocument, parse_document

ROOT = Path(__file__).resolve().parent.parent
PEER_LABELS = {
    "llamaindex": "LlamaIndex default retriever (vector, top 10)",
    "langchain": "LangChain similarity_search (Weaviate hybrid, client defaults)",
}
PEER_PACKAGES = {
    "llamaindex": ["llama-index-core", "llama-index-vector-stores-weaviate", "weaviate-client"],
    "langchain": ["langchain-core", "langchain-text-splitters", "langchain-weaviate", "weaviate-client"],
}


class StopwatchEmbedder:
    """The bare embedder, adding up the time spent in `embed_documents` (the indexer overlaps it
    with parsing and writing, so embedding time / wall time is the pipeline's embedding share)
    and the texts it embedded."""

    def __init__(self, inner: LocalOnnxEmbedder) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dimension = inner.dimension
        self.seconds = 0.0
        self.texts = 0

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        self.texts += len(texts)
        started = time.perf_counter()
        try:
            return await self.inner.embed_documents(texts)
        finally:
            self.seconds += time.perf_counter() - started

    async def embed_query(self, text: str) -> list[float]:
        return await self.inner.embed_query(text)

    async def warm_up(self) -> None:
        await self.inner.warm_up()

    async def aclose(self) -> None:
        await self.inner.aclose()


def chunks_of(dataset: Dataset, engine: Engine) -> list[Chunk]:
    """The chunks the indexer makes of the corpus (same loader, same chunker, same settings)."""
    settings = engine.settings(dataset.name, BASE_INDEX)
    chunks: list[Chunk] = []
    for path in sorted(p for p in dataset.corpus.rglob("*") if p.is_file()):
        document = parse_document(path)
        if isinstance(document, ParsedDocument):
            chunks.extend(chunk_document(document, settings))
    return chunks


async def ours(
    engine: Engine, datasets: Sequence[Dataset], cache: CachedEmbedder | None
) -> list[dict[str, Any]]:
    """Full index, bare embedder on the same chunks, then an incremental run with nothing changed."""
    embedder = LocalOnnxEmbedder()
    await embedder.warm_up()
    await embedder.embed_documents(["warm-up"] * 8)
    rows = []
    for dataset in datasets:
        stopwatch = StopwatchEmbedder(embedder)
        full = await engine.ensure_index(dataset, BASE_INDEX, embedder=stopwatch)
        chunks = await asyncio.to_thread(chunks_of, dataset, engine)
        texts = [c.embed_text for c in chunks]
        started = time.perf_counter()
        vectors = await embedder.embed_documents(texts)
        raw_seconds = time.perf_counter() - started
        if cache is not None:  # the quality sweep and reruns reuse these vectors
            await asyncio.to_thread(cache.cache.put, texts, vectors)
        counted = StopwatchEmbedder(embedder)
        again = await engine.reindex(dataset, BASE_INDEX, counted)
        rows.append(
            {
                "dataset": dataset.name,
                "documents": full.seen,
                "failed": full.failed,
                "chunks": full.chunks_written,
                "seconds": full.seconds,
                "embeddings": full.embeddings_computed,
                "embed_seconds": stopwatch.seconds,
                "mean_chunk_chars": sum(len(c.text) for c in chunks) / max(1, len(chunks)),
                "raw_chunks": len(texts),
                "raw_seconds": raw_seconds,
                "reindex_seconds": again.seconds,
                "reindex_embeddings": again.embeddings_computed,
                "reindex_embedder_calls": counted.texts,
                "reindex_unchanged": again.unchanged,
            }
        )
        print(f"  ours {dataset.name}: {json.dumps(rows[-1])}", flush=True)
    return rows


def _run_peer(
    name: str, server: EmbeddedWeaviate, datasets: Sequence[Dataset], quality: bool, threads: int | None
) -> dict[str, Any]:
    """Speed mode: bare embedder, full + unchanged re-index. Quality mode: cached vectors, retrieval."""
    python = peer_python(name)
    out = WORK_DIR / "results" / f"peer-{name}-{'quality' if quality else 'speed'}-raw.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    args = {
        "http_port": server.http_port,
        "grpc_port": server.grpc_port,
        "datasets": [
            {"name": d.name, "corpus": str(d.corpus), "queries": str(d.root / "queries.jsonl")}
            for d in datasets
        ],
        "chunk_size": BASE_INDEX.chunk_size,  # LangChain: characters, like ours
        "chunk_overlap": BASE_INDEX.chunk_overlap,
        "tokens": 250,  # LlamaIndex splits by tokens: ~1,000 characters of English
        "overlap_tokens": 40,
        "tag": "Quality" if quality else "Speed",
        "cache": str(DEFAULT_PATH) if quality else None,
        "threads": threads if quality else None,
        "reindex": not quality,
        "retrieve": quality,
        "out": str(out),
    }
    env = {**os.environ, "PYTHONPATH": str(ROOT), KEY_VARIABLE: server.api_key.get_secret_value()}
    command = [str(python), str(ROOT / "bench" / f"peer_{name}.py"), json.dumps(args)]
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, cwd=ROOT)
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    result["wall_seconds"] = time.perf_counter() - started
    result["versions"] = installed_versions(name, PEER_PACKAGES[name])
    return result


async def peers_speed(server: EmbeddedWeaviate, datasets: Sequence[Dataset]) -> dict[str, Any]:
    """Each peer's full ingestion and unchanged re-index with the bare embedder."""
    speed: dict[str, Any] = {}
    for name in PEER_PACKAGES:
        print(f"  peer {name} (speed)…", flush=True)
        speed[name] = await asyncio.to_thread(_run_peer, name, server, datasets, False, None)
        speed[name].pop("retrieval", None)
    return speed


async def peers_quality(
    server: EmbeddedWeaviate, datasets: Sequence[Dataset], threads: int | None
) -> list[dict[str, Any]]:
    """Each peer's default retriever on every query (vectors from the shared cache)."""
    runs: list[dict[str, Any]] = []
    by_name = {d.name: d for d in datasets}
    for name in PEER_PACKAGES:
        print(f"  peer {name} (quality)…", flush=True)
        result = await asyncio.to_thread(_run_peer, name, server, datasets, True, threads)
        for dataset_name, texts in result["retrieval"].items():
            runs.append(run_record(name, by_name[dataset_name], PEER_LABELS[name], texts, {}))
    return runs
