"""Writes one index generation: chunks with vectors, and the document registry beside them.

Every batch result is checked: Weaviate reports per-object failures in the response instead of
raising, and silently dropped chunks would make answers quietly incomplete. Before each batch the
writer checks that its collection still exists: a Weaviate with auto-schema on re-creates a
dropped collection on the next write, with a schema guessed from the objects, and a run whose
generation was dropped under it would fill a collection nobody reads, then report success.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from weaviate.classes.config import ConsistencyLevel
from weaviate.classes.data import DataObject
from weaviate.classes.query import Filter
from weaviate.collections import CollectionAsync
from weaviate.collections.classes.batch import BatchObjectReturn
from weaviate.collections.classes.filters import _Filters
from weaviate.exceptions import WeaviateInsertManyAllFailedError

from data.errors import IndexWriteError
from data.records import Chunk, DocumentState
from data.weaviate_collections import WeaviateCollections
from data.weaviate_schema import (
    STATE_PROPERTIES,
    GenerationContents,
    GenerationInfo,
    chunk_properties,
    chunk_uuid,
    document_uuid,
    registry_name,
    state_from_properties,
    state_properties,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
_WRITE_BATCH = 200  # objects per gRPC batch request
_FILTER_BATCH = 100  # documents per delete filter
_SCAN_PAGE = 5000  # chunks per page when checking every chunk against the registry (~70 us a chunk)


def batched(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most `size` items (itertools.batched is 3.12+)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _raise_batch_errors(result: BatchObjectReturn, what: str, collection: str) -> None:
    if not result.has_errors:
        return
    messages = list(dict.fromkeys(result.errors[i].message for i in sorted(result.errors)))
    raise IndexWriteError(
        f"Weaviate rejected {len(result.errors)} {what} in {collection}: " + "; ".join(messages[:3])
    )


class WeaviateIndexWriter:
    """`IndexWriter` for one generation; chunks and document states live side by side."""

    def __init__(
        self, weaviate: WeaviateCollections, physical: str, *, rebuild: bool, info: GenerationInfo
    ) -> None:
        self.collection = physical
        self.rebuild = rebuild
        self._weaviate = weaviate
        self._info = info
        self._finished = False
        # Documents recorded by this writer -> their chunk counts: all a rebuild's generation holds.
        self._recorded: dict[str, int] = {}

    async def _collections(self) -> tuple[CollectionAsync, CollectionAsync]:
        """Chunks and registry, written (and read for the diff) at WEAVIATE_WRITE_CONSISTENCY."""
        client = await self._weaviate.client()
        level = ConsistencyLevel(self._weaviate.settings.weaviate_write_consistency)
        return (
            client.collections.use(self.collection).with_consistency_level(level),
            client.collections.use(registry_name(self.collection)).with_consistency_level(level),
        )

    async def document_states(self) -> dict[str, DocumentState]:
        """Every document this generation has recorded."""
        _, registry = await self._collections()
        states: dict[str, DocumentState] = {}
        with self._weaviate.reachable():
            async for obj in registry.iterator(return_properties=STATE_PROPERTIES):
                state = state_from_properties(dict(obj.properties))
                states[state.document_id] = state
        return states

    async def remove_uncommitted(
        self, states: dict[str, DocumentState], sources: Sequence[str] | None = None
    ) -> dict[str, int]:
        """Remove chunks that no recorded state accounts for, and documents whose chunks don't match
        their state; returns those documents with how many chunks each had.

        A run that stopped between a document's first chunk and its state (killed, Ctrl-C) leaves
        such chunks, searchable, and no later run would know them. The states of the documents
        removed go too, so the run indexes them afresh. When the chunk total matches the states'
        (the usual case) this costs one count; otherwise every chunk is compared with its state.

        `sources`: only chunks of these sources, and `states` holds only their documents — runs of
        other sources may be writing meanwhile, and their unfinished documents are theirs to finish.
        """
        collection, registry = await self._collections()
        scope = set(sources) if sources is not None else None
        own = Filter.by_property("source_name").contains_any(sorted(scope)) if scope else None
        with self._weaviate.reachable():
            if scope is not None and not scope:
                return {}
            total = (
                await collection.length()
                if own is None
                else (await collection.aggregate.over_all(filters=own, total_count=True)).total_count
            )
            if total == sum(state.chunk_count for state in states.values()):
                return {}
            found: Counter[str] = Counter()
            broken: set[str] = set()
            pages = collection.iterator(
                return_properties=["document_id", "chunk_index", "content_hash", "source_name"],
                cache_size=_SCAN_PAGE,
            )
            async for obj in pages:
                if scope is not None and obj.properties.get("source_name") not in scope:
                    continue
                document_id = str(obj.properties.get("document_id"))
                found[document_id] += 1
                state = states.get(document_id)
                index = obj.properties.get("chunk_index")
                if (
                    state is None
                    or obj.properties.get("content_hash") != state.content_hash
                    or not isinstance(index, int)
                    or index >= state.chunk_count
                ):
                    broken.add(document_id)
            broken.update(
                document_id for document_id, s in states.items() if found[document_id] != s.chunk_count
            )
            removed = {document_id: found[document_id] for document_id in sorted(broken)}
            for group in batched(list(removed), _FILTER_BATCH):
                where = Filter.by_property("document_id").contains_any(list(group))
                await _delete_where(collection, where, self.collection)
                await _delete_where(registry, where, registry_name(self.collection))
        if removed:
            logger.warning(
                "Removed %d chunks of %d unfinished documents from %s: %s",
                sum(removed.values()),
                len(removed),
                self.collection,
                ", ".join(list(removed)[:5]),
            )
        return removed

    async def write_chunks(self, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]) -> None:
        """Upsert chunks (deterministic uuids) and raise on the first rejected batch."""
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        collection, _ = await self._collections()
        objects = [
            DataObject(
                properties=chunk_properties(c), uuid=chunk_uuid(c.document_id, c.chunk_index), vector=list(v)
            )
            for c, v in zip(chunks, vectors, strict=True)
        ]
        with self._weaviate.reachable():
            await _insert(collection, objects, "chunks", self.collection)

    async def finish_documents(self, states: Sequence[DocumentState]) -> None:
        """Drop chunks past each document's new end, then record the states (in that order)."""
        collection, registry = await self._collections()
        objects = [
            DataObject(properties=state_properties(s), uuid=document_uuid(s.document_id)) for s in states
        ]
        with self._weaviate.reachable():
            for group in batched(states, _FILTER_BATCH):
                stale = Filter.any_of(
                    [
                        Filter.by_property("document_id").equal(s.document_id)
                        & Filter.by_property("chunk_index").greater_or_equal(s.chunk_count)
                        for s in group
                    ]
                )
                await _delete_where(collection, stale, self.collection)
            await _insert(registry, objects, "document states", registry_name(self.collection))
        self._recorded.update((state.document_id, state.chunk_count) for state in states)

    async def delete_documents(self, document_ids: Sequence[str]) -> None:
        """Remove chunks first, then states: an interrupted delete is redone by the next run."""
        collection, registry = await self._collections()
        with self._weaviate.reachable():
            for group in batched(document_ids, _FILTER_BATCH):
                where = Filter.by_property("document_id").contains_any(list(group))
                await _delete_where(collection, where, self.collection)
                await _delete_where(registry, where, registry_name(self.collection))
        for document_id in document_ids:
            self._recorded.pop(document_id, None)

    async def commit(self) -> None:
        """Rebuild: swap the alias to this generation once it checks out, then drop the previous one.

        Incremental: check that the generation written to still serves; a rebuild that replaced
        it meanwhile would have dropped this run's changes with it.
        """
        if self._finished:
            return
        with self._weaviate.reachable():
            previous = await self._weaviate.serving_collection()
            if not self.rebuild:
                if previous != self.collection:
                    raise IndexWriteError(
                        f"The index {self.collection} this run wrote to no longer serves (now: "
                        f"{previous or 'nothing'}): a rebuild replaced it meanwhile, so this run's changes "
                        "may be missing. Run the index again."
                    )
                self._finished = True
                return
            expected = GenerationContents(self._info, len(self._recorded), sum(self._recorded.values()))
            await self._weaviate.point_alias(self.collection, expected)
            self._finished = True  # from here on the new generation serves: abort() must not drop it
            logger.info("Alias %s now serves %s", self._weaviate.alias, self.collection)
            if previous is not None and previous != self.collection:
                await self._weaviate.drop_generation(previous)

    async def abort(self) -> None:
        """Rebuild: drop the unfinished generation; the serving one is untouched."""
        if self._finished or not self.rebuild:
            self._finished = True
            return
        with self._weaviate.reachable():
            if await self._weaviate.serving_collection() != self.collection:
                await self._weaviate.drop_generation(self.collection)
        self._finished = True


async def _ensure_exists(collection: CollectionAsync, name: str, what: str) -> None:
    """Before a write: a missing collection would be re-created by Weaviate's auto-schema, guessing."""
    if not await collection.exists():
        raise IndexWriteError(
            f"The collection {name} no longer exists (did a rebuild run at the same time?), so {what} "
            "were not written; this run wrote nothing more."
        )


async def _insert(
    collection: CollectionAsync, objects: list[DataObject[Any, Any]], what: str, name: str
) -> None:
    for batch in batched(objects, _WRITE_BATCH):
        await _ensure_exists(collection, name, f"{len(batch)} {what}")
        try:
            result = await collection.data.insert_many(list(batch))
        except WeaviateInsertManyAllFailedError as exc:
            raise IndexWriteError(
                f"Weaviate rejected all {len(batch)} {what} in {name}: {exc.message}"
            ) from exc
        _raise_batch_errors(result, what, name)


async def _delete_where(collection: CollectionAsync, where: _Filters, name: str) -> None:
    """Delete everything matching (repeating: one call deletes at most the server's query limit)."""
    await _ensure_exists(collection, name, "deletions")
    while True:
        result = await collection.data.delete_many(where=where)
        if result.failed:
            raise IndexWriteError(f"Weaviate failed to delete {result.failed} objects from {name}")
        if result.matches == 0 or result.successful == 0:
            return
