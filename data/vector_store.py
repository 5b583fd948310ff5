"""The vector store: the `VectorStore` contract and its Weaviate implementation.

Weaviate serves through a collection alias, with blue/green rebuilds; the connection and the
generations behind the alias are `WeaviateCollections`, which the index writer shares.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Literal, Protocol

import numpy as np
from weaviate.classes.config import ConsistencyLevel
from weaviate.classes.query import Filter, HybridFusion, MetadataQuery
from weaviate.exceptions import UnexpectedStatusCodeError, WeaviateBaseError, WeaviateQueryError

from data.cluster_health import ClusterHealth, read_cluster_health
from data.errors import IndexModelMismatch, IndexSchemaOutdated, StoreUnavailable
from data.records import Chunk, DocumentState, IndexStats, SearchHit
from data.weaviate_collections import WeaviateCollections
from data.weaviate_connection import UNREACHABLE
from data.weaviate_schema import (
    BM25_PROPERTIES,
    CHUNK_RETURN_PROPERTIES,
    GenerationContents,
    GenerationInfo,
    hit_from_properties,
    mismatch_message,
    registry_name,
    schema_message,
)
from data.weaviate_writer import WeaviateIndexWriter

logger = logging.getLogger(__name__)

__all__ = ["ClusterHealth", "Fusion", "IndexWriter", "VectorStore", "WeaviateVectorStore"]

Fusion = Literal["relative_score", "ranked"]


class IndexWriter(Protocol):
    """Writes one index generation: the serving one (incremental) or a new one (rebuild)."""

    collection: str

    async def document_states(self) -> dict[str, DocumentState]:
        """What this generation has recorded, by document id."""
        ...

    async def remove_uncommitted(
        self, states: dict[str, DocumentState], sources: Sequence[str] | None = None
    ) -> dict[str, int]:
        """Remove chunks no state in `states` accounts for (a run stopped mid-document), with the
        states of documents whose chunks don't match; returns those documents and their chunk counts.
        `sources`: only these sources' chunks (`states` then holds only their documents)."""
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
        """Make the generation serve (rebuild: check it, swap the alias, drop the old collection).

        Raises `IndexWriteError` when the generation does not hold what this writer wrote, or (not
        a rebuild) when it no longer serves.
        """
        ...

    async def abort(self) -> None:
        """Give up a rebuild (drop the new collection); the previous index keeps serving."""
        ...


class VectorStore(Protocol):
    """Where chunks live and are searched: what the indexer, the retriever and the CLI rely on.

    A second backend is a new class with these methods. When the store cannot be reached, every
    method raises `StoreUnavailable`, except `is_healthy`, which answers False.
    """

    async def connect(self) -> None:
        """Connect (or start an embedded server). Calling it up front makes a missing store fail at
        start-up instead of at the first question."""
        ...

    async def close(self) -> None:
        """Release the connection and anything started by `connect`; safe to call twice."""
        ...

    async def is_healthy(self) -> bool:
        """True when the store answers (for health checks)."""
        ...

    async def cluster_health(self) -> ClusterHealth:
        """The nodes behind the store and whether the index can be read and written (for `status`
        and health checks); never raises: an unreachable store is reported, not thrown."""
        ...

    async def open_writer(self, *, rebuild: bool, model_id: str, dimension: int) -> IndexWriter:
        """A writer for the serving index, or for a fresh collection when `rebuild` is true.

        Raises `IndexModelMismatch` for an incremental write into an index of another model
        (`IndexSchemaOutdated` for one an older version built).
        """
        ...

    async def drop_orphan_generations(self) -> list[str]:
        """Drop what unfinished rebuilds left (only while no other run may be writing); returns names."""
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
        sources: Sequence[str] | None = None,
    ) -> list[SearchHit]:
        """Hybrid BM25 + vector search, best first. Empty when nothing is indexed. With
        `similarity`, each hit also carries its cosine similarity to `vector`; with `sources`,
        only chunks of those sources (by name) are searched.

        Raises `IndexModelMismatch` when the index was built by another model.
        """
        ...

    async def stats(self) -> IndexStats | None:
        """Counts for the serving index, or None when nothing was indexed yet."""
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
# How long a search waits for the alias before it uses the target it read last: right after a
# Weaviate cluster's RAFT leader dies, alias reads forwarded to it hang for up to a minute.
ALIAS_READ_SECONDS = 3.0


class WeaviateVectorStore(WeaviateCollections):
    """`VectorStore` on Weaviate: reads go through the alias `settings.weaviate_collection`.

    Each index generation is a physical collection (plus its document registry); a rebuild
    fills a new generation and swaps the alias in one step, so searches never see a half-built
    index. Connecting (or running the embedded server) and the generations themselves come from
    `WeaviateCollections`; this class adds searching and opening writers.
    """

    # -- VectorStore ----------------------------------------------------------------------------------
    async def open_writer(self, *, rebuild: bool, model_id: str, dimension: int) -> WeaviateIndexWriter:
        """A writer for the serving generation, or for a new one when `rebuild` is true."""
        info = GenerationInfo(model_id=model_id, dimension=dimension)
        client = await self.client()
        with self.reachable():
            if rebuild:
                await self.drop_orphan_generations()
                return WeaviateIndexWriter(self, await self.create_generation(info), rebuild=True, info=info)
            physical = await self.serving_collection()
            if physical is not None and await client.collections.exists(physical):
                built_with = await self.generation_info(physical)
                if message := mismatch_message(built_with, model_id, dimension):
                    raise IndexModelMismatch(message)
                if message := schema_message(built_with):
                    raise IndexSchemaOutdated(message)
                return WeaviateIndexWriter(self, physical, rebuild=False, info=info)
            # No index yet: the first generation serves from the start (there is nothing to hide).
            await self.drop_orphan_generations()
            physical = await self.create_generation(info)
            await self.point_alias(physical, GenerationContents(info, documents=0, chunks=0))
            return WeaviateIndexWriter(self, physical, rebuild=False, info=info)

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
        sources: Sequence[str] | None = None,
    ) -> list[SearchHit]:
        """Hybrid search on the serving generation; retried when a swap dropped it mid-query.

        `sources` (names) limits the search to those sources' chunks, in Weaviate itself; an
        index too old to know its chunks' sources finds nothing then (never another space's text).
        """
        if sources is not None and not sources:
            return []
        client = await self.client()
        fusion_type = HybridFusion.RELATIVE_SCORE if fusion == "relative_score" else HybridFusion.RANKED
        for attempt in range(3):
            physical = await self._serving_or_last_known(ALIAS_CACHE_SECONDS if attempt == 0 else 0.0)
            if physical is None:
                return []
            try:
                with self.reachable():
                    info = await self.generation_info(physical)
                    if message := mismatch_message(info, model_id, len(vector)):
                        raise IndexModelMismatch(message)
                    if sources is not None and schema_message(info):
                        logger.warning(
                            "A search limited to sources needs a rebuilt index: %s", schema_message(info)
                        )
                        return []
                    where = Filter.by_property("source_name").contains_any(list(sources)) if sources else None
                    collection = client.collections.use(physical).with_consistency_level(
                        ConsistencyLevel(self.settings.weaviate_read_consistency)
                    )
                    result = await collection.query.hybrid(
                        query=query,
                        vector=list(vector),
                        alpha=alpha,
                        fusion_type=fusion_type,
                        query_properties=BM25_PROPERTIES,
                        limit=limit,
                        return_properties=CHUNK_RETURN_PROPERTIES,
                        return_metadata=MetadataQuery(score=True),
                        include_vector=similarity,  # ~1.5 ms and 4 bytes a dimension per hit
                        filters=where,
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
        except (StoreUnavailable, WeaviateBaseError, *UNREACHABLE):
            return False

    async def cluster_health(self) -> ClusterHealth:
        """The cluster's nodes and the serving index's live copies; an unreachable store is reported."""
        read, write = self.settings.weaviate_read_consistency, self.settings.weaviate_write_consistency
        try:
            client = await self.client()
            with self.reachable():
                return await read_cluster_health(client, await self._serving_or_last_known(0.0), read, write)
        except (StoreUnavailable, WeaviateBaseError, *UNREACHABLE) as exc:
            return ClusterHealth({}, None, None, read, write, None, error=str(exc))

    async def _serving_or_last_known(self, max_age: float) -> str | None:
        """`serving_collection`, or when reading the alias stalls past ALIAS_READ_SECONDS the target
        read last (a search of a generation dropped meanwhile is retried on a fresh read)."""
        known = self._serving
        try:
            return await asyncio.wait_for(self.serving_collection(max_age=max_age), ALIAS_READ_SECONDS)
        except TimeoutError:
            if known is None:
                raise StoreUnavailable(
                    f"Weaviate at {self.url} did not say which index serves within {ALIAS_READ_SECONDS:.0f}s."
                ) from None
            logger.warning(
                "Reading the alias %s took over %.0fs (did a Weaviate node just die?); using %s, read before",
                self.alias,
                ALIAS_READ_SECONDS,
                known[0],
            )
            return known[0]
