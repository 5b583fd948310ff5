"""The vector store: Weaviate behind a collection alias, with blue/green rebuilds."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any, Literal, Protocol, Self

import numpy as np
import weaviate
from weaviate.classes.init import AdditionalConfig, Auth, Timeout
from weaviate.classes.query import HybridFusion, MetadataQuery
from weaviate.exceptions import (
    AuthenticationFailedError,
    UnexpectedStatusCodeError,
    WeaviateBaseError,
    WeaviateConnectionError,
    WeaviateGRPCUnavailableError,
    WeaviateQueryError,
    WeaviateRetryError,
    WeaviateTimeoutError,
)

from configs.config import Settings
from data.records import Chunk, DocumentState, IndexStats, SearchHit
from data.weaviate_schema import (
    BM25_PROPERTIES,
    CHUNK_RETURN_PROPERTIES,
    REGISTRY_SUFFIX,
    GenerationInfo,
    chunk_collection_spec,
    generation_pattern,
    hit_from_properties,
    mismatch_message,
    new_generation_name,
    parse_endpoint,
    registry_collection_spec,
    registry_name,
)
from data.weaviate_server import EmbeddedWeaviate, WeaviateServerError
from data.weaviate_writer import IndexWriteError, WeaviateIndexWriter

__all__ = [
    "Fusion",
    "IndexModelMismatch",
    "IndexWriteError",
    "IndexWriter",
    "StoreUnavailable",
    "VectorStore",
    "WeaviateIndexWriter",
    "WeaviateVectorStore",
]

logger = logging.getLogger(__name__)

Fusion = Literal["relative_score", "ranked"]


class IndexModelMismatch(Exception):
    """The index was built with another embedding model; the message tells the user to reindex."""


class StoreUnavailable(Exception):
    """The vector store cannot be reached; the message says where it was expected."""


class IndexWriter(Protocol):
    """Writes one index generation: the serving one (incremental) or a new one (rebuild)."""

    collection: str

    async def document_states(self) -> dict[str, DocumentState]:
        """What this generation has recorded, by document id."""
        ...

    async def write_chunks(self, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]) -> None:
        """Upsert chunks with their vectors (deterministic ids); raises if any object failed."""
        ...

    async def finish_documents(self, states: Sequence[DocumentState]) -> None:
        """After all their chunks were written: drop chunks past `chunk_count`, then record the states."""
        ...

    async def delete_documents(self, document_ids: Sequence[str]) -> None:
        """Remove documents' chunks and states."""
        ...

    async def commit(self) -> None:
        """Make the generation serve (rebuild: swap the alias, drop the old collection)."""
        ...

    async def abort(self) -> None:
        """Give up a rebuild (drop the new collection); the previous index keeps serving."""
        ...


class VectorStore(Protocol):
    """Where chunks live and are searched."""

    async def open_writer(self, *, rebuild: bool, model_id: str, dimension: int) -> IndexWriter:
        """A writer for the serving index, or for a fresh collection when `rebuild` is true.

        Raises `IndexModelMismatch` for an incremental write into an index of another model.
        """
        ...

    async def search(
        self,
        query: str,
        vector: Sequence[float],
        *,
        model_id: str,
        limit: int,
        alpha: float,
        fusion: Fusion,
        similarity: bool = False,
    ) -> list[SearchHit]:
        """Hybrid BM25 + vector search, best first. Empty when nothing is indexed. With
        `similarity`, each hit also carries its cosine similarity to `vector`.

        Raises `IndexModelMismatch` when the index was built by another model.
        """
        ...

    async def stats(self) -> IndexStats | None:
        """Counts for the serving index, or None when nothing was indexed yet."""
        ...

    async def is_healthy(self) -> bool:
        """True when the store answers."""
        ...


# --- Weaviate implementation -------------------------------------------------------------------------


def similarities(query: Sequence[float], stored: Sequence[Any]) -> list[float | None]:
    """Cosine similarity of each stored vector to the query (None where none was returned)."""
    unit = np.asarray(query, dtype=np.float32)
    unit /= max(float(np.linalg.norm(unit)), 1e-12)
    out: list[float | None] = []
    for vector in stored:
        if vector is None or len(vector) != len(unit):
            out.append(None)
            continue
        other = np.asarray(vector, dtype=np.float32)
        out.append(float(unit @ other) / max(float(np.linalg.norm(other)), 1e-12))
    return out


# How long a search trusts the alias target it read (another process may swap it meanwhile).
ALIAS_CACHE_SECONDS = 2.0

_UNREACHABLE = (
    WeaviateConnectionError,
    WeaviateGRPCUnavailableError,
    WeaviateRetryError,
    WeaviateTimeoutError,
    OSError,
)


class WeaviateVectorStore:
    """`VectorStore` on Weaviate: reads go through the alias `settings.weaviate_collection`.

    Each index generation is a physical collection (plus its document registry); a rebuild
    fills a new generation and swaps the alias in one step, so searches never see a half-built
    index. Without WEAVIATE_URL the store runs its own embedded server.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.alias = settings.weaviate_collection
        self._client: weaviate.WeaviateAsyncClient | None = None
        self._server: EmbeddedWeaviate | None = None
        self._info: dict[str, GenerationInfo] = {}
        self._serving: tuple[str, float] | None = None  # (alias target, monotonic time read)

    @property
    def url(self) -> str:
        """Where the store is (the embedded server's URL once it runs)."""
        if self._server is not None:
            return self._server.url
        return self.settings.weaviate_url or f"embedded Weaviate on port {self.settings.weaviate_http_port}"

    # -- lifecycle ----------------------------------------------------------------------------------
    async def connect(self) -> None:
        """Start the embedded server if needed and connect; `StoreUnavailable` when it cannot."""
        if self._client is not None:
            return
        s = self.settings
        if s.weaviate_url is None:
            server = EmbeddedWeaviate(
                s.weaviate_binary,
                s.data_dir / "weaviate",
                http_port=s.weaviate_http_port,
                grpc_port=s.weaviate_grpc_port,
                startup_timeout=s.weaviate_startup_timeout,
                api_key=s.weaviate_api_key,  # None: a random key for this run
            )
            try:
                await server.start()
            except WeaviateServerError as exc:
                raise StoreUnavailable(str(exc)) from exc
            self._server = server
            url: str = server.url
            grpc_url: str | None = server.grpc_url
            api_key: str | None = server.api_key.get_secret_value()
        else:
            url, grpc_url = s.weaviate_url, s.weaviate_grpc_url
            api_key = s.weaviate_api_key.get_secret_value() if s.weaviate_api_key else None
        try:
            endpoint = parse_endpoint(url, grpc_url)
        except ValueError as exc:
            raise StoreUnavailable(str(exc)) from exc
        client = weaviate.use_async_with_custom(
            http_host=endpoint.http_host,
            http_port=endpoint.http_port,
            http_secure=endpoint.http_secure,
            grpc_host=endpoint.grpc_host,
            grpc_port=endpoint.grpc_port,
            grpc_secure=endpoint.grpc_secure,
            auth_credentials=Auth.api_key(api_key) if api_key else None,
            additional_config=AdditionalConfig(timeout=Timeout(init=10, query=60, insert=120)),
        )
        try:
            await client.connect()
        except (WeaviateBaseError, *_UNREACHABLE) as exc:
            with contextlib.suppress(Exception):
                await client.close()
            await self._stop_server()
            if isinstance(exc, AuthenticationFailedError) or getattr(exc, "status_code", None) in (401, 403):
                raise StoreUnavailable(
                    f"Weaviate at {url} refused the API key (WEAVIATE_API_KEY): {exc}"
                ) from exc
            raise StoreUnavailable(
                f"Cannot reach Weaviate at {url} (gRPC {endpoint.grpc_host}:{endpoint.grpc_port}): {exc}"
            ) from exc
        self._client = client

    async def close(self) -> None:
        """Disconnect and stop the embedded server, if this store started one."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()
        await self._stop_server()

    async def _stop_server(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop()

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def client(self) -> weaviate.WeaviateAsyncClient:
        """The connected client (connecting on first use)."""
        if self._client is None:
            await self.connect()
        assert self._client is not None
        return self._client

    @contextlib.contextmanager
    def reachable(self) -> Iterator[None]:
        """Turn "the server went away" errors into `StoreUnavailable` naming the URL."""
        try:
            yield
        except (*_UNREACHABLE, WeaviateQueryError) as exc:
            if isinstance(exc, WeaviateQueryError) and "UNAVAILABLE" not in str(exc):
                raise
            raise StoreUnavailable(f"Weaviate at {self.url} stopped answering: {exc}") from exc

    # -- generations --------------------------------------------------------------------------------
    async def serving_collection(self, *, max_age: float = 0.0) -> str | None:
        """The physical collection the alias points at, or None before the first index.

        `max_age` > 0 accepts a target read that many seconds ago: searches use it to skip a
        REST round trip per question; a search that hits a generation dropped meanwhile re-reads.
        """
        if max_age > 0 and self._serving is not None and time.monotonic() - self._serving[1] < max_age:
            return self._serving[0]
        client = await self.client()
        with self.reachable():
            alias = await client.alias.get(alias_name=self.alias)
        self._serving = (alias.collection, time.monotonic()) if alias is not None else None
        return alias.collection if alias is not None else None

    async def generation_info(self, physical: str) -> GenerationInfo:
        """The embedder a generation was built with (cached: it never changes)."""
        if physical not in self._info:
            client = await self.client()
            with self.reachable():
                config = await client.collections.use(physical).config.get(simple=True)
            self._info[physical] = GenerationInfo.from_description(config.description)
        return self._info[physical]

    async def _create_generation(self, info: GenerationInfo) -> str:
        client = await self.client()
        physical = new_generation_name(self.alias)
        await client.collections.create(physical, **chunk_collection_spec(info))
        try:
            await client.collections.create(registry_name(physical), **registry_collection_spec())
        except BaseException:
            await client.collections.delete(physical)
            raise
        self._info[physical] = info
        logger.info("Created index generation %s (%s, %d-d)", physical, info.model_id, info.dimension)
        return physical

    async def drop_generation(self, physical: str) -> None:
        """Delete a generation's chunk collection and registry."""
        client = await self.client()
        await client.collections.delete([physical, registry_name(physical)])
        self._info.pop(physical, None)

    async def point_alias(self, physical: str) -> None:
        """Make `physical` serve: one atomic alias update (or the alias's creation)."""
        client = await self.client()
        try:
            if not await client.alias.exists(alias_name=self.alias) or not await client.alias.update(
                alias_name=self.alias, new_target_collection=physical
            ):
                await client.alias.create(alias_name=self.alias, target_collection=physical)
            self._serving = (physical, time.monotonic())
        except UnexpectedStatusCodeError as exc:
            raise IndexWriteError(
                f"Could not point the alias {self.alias} at {physical}: {exc.message}"
            ) from exc

    async def drop_orphan_generations(self) -> list[str]:
        """Drop generations of this alias that do not serve (left by a crashed rebuild)."""
        client = await self.client()
        serving = await self.serving_collection()
        pattern = generation_pattern(self.alias)
        orphans: set[str] = set()
        for name in await client.collections.list_all(simple=True):
            base = name.removesuffix(REGISTRY_SUFFIX)
            if pattern.match(base) and base != serving:
                orphans.add(name)
        if orphans:
            logger.warning("Dropping unfinished index generations: %s", ", ".join(sorted(orphans)))
            await client.collections.delete(sorted(orphans))
        return sorted(orphans)

    # -- VectorStore ----------------------------------------------------------------------------------
    async def open_writer(self, *, rebuild: bool, model_id: str, dimension: int) -> WeaviateIndexWriter:
        """A writer for the serving generation, or for a new one when `rebuild` is true."""
        info = GenerationInfo(model_id=model_id, dimension=dimension)
        client = await self.client()
        with self.reachable():
            if rebuild:
                await self.drop_orphan_generations()
                return WeaviateIndexWriter(self, await self._create_generation(info), rebuild=True)
            physical = await self.serving_collection()
            if physical is not None and await client.collections.exists(physical):
                if message := mismatch_message(await self.generation_info(physical), model_id, dimension):
                    raise IndexModelMismatch(message)
                return WeaviateIndexWriter(self, physical, rebuild=False)
            # No index yet: the first generation serves from the start (there is nothing to hide).
            await self.drop_orphan_generations()
            physical = await self._create_generation(info)
            await self.point_alias(physical)
            return WeaviateIndexWriter(self, physical, rebuild=False)

    async def search(
        self,
        query: str,
        vector: Sequence[float],
        *,
        model_id: str,
        limit: int,
        alpha: float,
        fusion: Fusion,
        similarity: bool = False,
    ) -> list[SearchHit]:
        """Hybrid search on the serving generation; retried when a swap dropped it mid-query."""
        client = await self.client()
        fusion_type = HybridFusion.RELATIVE_SCORE if fusion == "relative_score" else HybridFusion.RANKED
        for attempt in range(3):
            physical = await self.serving_collection(max_age=ALIAS_CACHE_SECONDS if attempt == 0 else 0.0)
            if physical is None:
                return []
            try:
                with self.reachable():
                    info = await self.generation_info(physical)
                    if message := mismatch_message(info, model_id, len(vector)):
                        raise IndexModelMismatch(message)
                    result = await client.collections.use(physical).query.hybrid(
                        query=query,
                        vector=list(vector),
                        alpha=alpha,
                        fusion_type=fusion_type,
                        query_properties=BM25_PROPERTIES,
                        limit=limit,
                        return_properties=CHUNK_RETURN_PROPERTIES,
                        return_metadata=MetadataQuery(score=True),
                        include_vector=similarity,  # ~1.5 ms and 4 bytes a dimension per hit
                    )
            except (WeaviateQueryError, UnexpectedStatusCodeError):
                if attempt < 2 and physical != await self.serving_collection():
                    continue  # the alias moved on and the old generation was dropped under us
                raise
            objects = result.objects
            closeness = (
                similarities(vector, [o.vector.get("default") for o in objects])
                if similarity
                else [None] * len(objects)
            )
            return [
                hit_from_properties(dict(o.properties), o.metadata.score, close)
                for o, close in zip(objects, closeness, strict=True)
            ]
        return []

    async def stats(self) -> IndexStats | None:
        """Chunk and document counts of the serving generation."""
        client = await self.client()
        physical = await self.serving_collection()
        if physical is None:
            return None
        with self.reachable():
            info = await self.generation_info(physical)
            chunks = await client.collections.use(physical).aggregate.over_all(total_count=True)
            docs = await client.collections.use(registry_name(physical)).aggregate.over_all(total_count=True)
        return IndexStats(
            collection=physical,
            embedder_model_id=info.model_id,
            dimension=info.dimension,
            documents=docs.total_count or 0,
            chunks=chunks.total_count or 0,
        )

    async def is_healthy(self) -> bool:
        """True when Weaviate answers its readiness check."""
        try:
            client = await self.client()
            return bool(await client.is_ready())
        except (StoreUnavailable, WeaviateBaseError, *_UNREACHABLE):
            return False
