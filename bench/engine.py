"""The project's own engine as the benchmark drives it: one Weaviate for the run, settings per
configuration, indexing through `services.indexer.Indexer` and searching through
`services.rag.Retriever` (the same path as `main.py index` / `main.py search`)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from bench.dataset import WORK_DIR, Dataset
from bench.vector_cache import VectorCache
from configs.config import DEFAULT_WEAVIATE_BINARY, Settings
from data.embeddings import Embedder, LocalOnnxEmbedder
from data.records import Passage
from data.vector_store import WeaviateVectorStore
from data.weaviate_server import EmbeddedWeaviate
from services.indexer import Indexer, IndexResult
from services.rag import Retriever


@dataclass(frozen=True)
class IndexConfig:
    """What changes the stored chunks (and so needs its own index)."""

    chunk_size: int = 1000
    chunk_overlap: int = 150
    embed_heading_path: bool = True

    @property
    def label(self) -> str:
        heading = "" if self.embed_heading_path else ", no headings"
        return f"chunks {self.chunk_size}/{self.chunk_overlap}{heading}"

    def collection(self, dataset: str) -> str:
        flag = "H" if self.embed_heading_path else "N"
        return f"Bench{dataset.capitalize()}C{self.chunk_size}O{self.chunk_overlap}{flag}"


@dataclass(frozen=True)
class SearchConfig:
    """How a query is answered from an index."""

    alpha: float = 0.5
    fusion: str = "relative_score"

    @property
    def label(self) -> str:
        if self.alpha == 0.0:
            return "BM25 only"
        if self.alpha == 1.0:
            return "vector only"
        return f"hybrid a={self.alpha:g} {self.fusion}"


def bench_settings(server: EmbeddedWeaviate, collection: str, **overrides: Any) -> Settings:
    """Settings for the bench: the run's Weaviate, the local embedder, no LLM, no .env file."""
    values: dict[str, Any] = {
        "data_dir": WORK_DIR / "data",
        "weaviate_url": server.url,
        "weaviate_grpc_url": server.grpc_url,
        "weaviate_api_key": server.api_key,
        "weaviate_collection": collection,
        "embedding_provider": "local",
        "embedding_model": None,
        "openai_api_key": None,
        "openai_base_url": None,
        "database_url": None,
        "log_level": "WARNING",
        # Rankings are measured without the similarity floor; the relevance part measures the floor.
        "search_min_similarity": 0.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def start_server() -> EmbeddedWeaviate:
    """A fresh Weaviate for the whole run (its data under bench/.work/weaviate)."""
    data = WORK_DIR / "weaviate"
    if data.exists():
        shutil.rmtree(data)
    return EmbeddedWeaviate(DEFAULT_WEAVIATE_BINARY, data, startup_timeout=180)


class CachedEmbedder:
    """Wraps the local embedder with the persistent `VectorCache`, so configurations that share
    texts (and reruns) embed them once. Quality only: speed is always measured bare."""

    def __init__(self, inner: LocalOnnxEmbedder, cache: VectorCache | None = None) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dimension = inner.dimension
        self.cache = cache or VectorCache(inner.model_id)

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        keys = [self.cache.key(t) for t in texts]
        found = await asyncio.to_thread(self.cache.get, keys)
        missing = list({k: t for k, t in zip(keys, texts, strict=True) if k not in found}.items())
        if missing:
            vectors = await self.inner.embed_documents([t for _, t in missing])
            await asyncio.to_thread(self.cache.put, [t for _, t in missing], vectors)
            found.update((k, v) for (k, _), v in zip(missing, vectors, strict=True))
        return [found[k] for k in keys]

    async def embed_query(self, text: str) -> list[float]:
        return (await self.embed_documents([text]))[0]

    async def warm_up(self) -> None:
        await self.inner.warm_up()

    async def aclose(self) -> None:
        await self.inner.aclose()


class Engine:
    """Indexes and searches the datasets through the project's code, one store per collection."""

    def __init__(self, server: EmbeddedWeaviate, embedder: Embedder) -> None:
        self.server = server
        self.embedder = embedder
        self._stores: dict[str, WeaviateVectorStore] = {}
        self.built: dict[str, IndexResult] = {}  # collection -> the full index that built it

    async def store(self, collection: str) -> WeaviateVectorStore:
        if collection not in self._stores:
            store = WeaviateVectorStore(bench_settings(self.server, collection))
            await store.connect()
            self._stores[collection] = store
        return self._stores[collection]

    def settings(self, dataset: str, index: IndexConfig, search: SearchConfig | None = None) -> Settings:
        search = search or SearchConfig()
        return bench_settings(
            self.server,
            index.collection(dataset),
            chunk_size=index.chunk_size,
            chunk_overlap=index.chunk_overlap,
            embed_heading_path=index.embed_heading_path,
            search_alpha=search.alpha,
            search_fusion=search.fusion,
        )

    async def ensure_index(
        self, dataset: Dataset, index: IndexConfig, embedder: Embedder | None = None
    ) -> IndexResult:
        """Build the collection for (dataset, index config) once per run (a full index)."""
        collection = index.collection(dataset.name)
        if collection not in self.built:
            settings = self.settings(dataset.name, index)
            indexer = Indexer(settings, await self.store(collection), embedder or self.embedder)
            result = await indexer.index([dataset.corpus], full=True)
            if result.failed > 1:  # faq/index.rst is all headings once the questions are gone
                raise RuntimeError(
                    f"Indexing {dataset.name} failed for {result.failed} files: {result.summary()}"
                )
            self.built[collection] = result
        return self.built[collection]

    async def reindex(self, dataset: Dataset, index: IndexConfig, embedder: Embedder) -> IndexResult:
        """An incremental run over an existing collection (nothing changed)."""
        collection = index.collection(dataset.name)
        settings = self.settings(dataset.name, index)
        return await Indexer(settings, await self.store(collection), embedder).index([dataset.corpus])

    async def search(
        self, dataset: str, index: IndexConfig, search: SearchConfig, queries: Sequence[str], k: int = 10
    ) -> list[list[Passage]]:
        """Top-k passages per query, through `Retriever.search` (merging and de-duplication included)."""
        settings = self.settings(dataset, index, search)
        retriever = Retriever(settings, await self.store(index.collection(dataset)), self.embedder)
        return [await retriever.search(query, k) for query in queries]

    async def close(self) -> None:
        for store in self._stores.values():
            await store.close()
        self._stores.clear()


def with_search(config: SearchConfig, **changes: Any) -> SearchConfig:
    return replace(config, **changes)
