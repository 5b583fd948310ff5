"""The Weaviate side of the `spaces` bench: reading the indexed chunks back with their vectors, the
hand-built multi-tenancy collection (one tenant per space) and its plain-copy baseline, and the
hybrid query `WeaviateVectorStore.search` sends, run on any collection or tenant."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from weaviate.classes.config import Configure
from weaviate.classes.data import DataObject
from weaviate.classes.query import Filter, HybridFusion, MetadataQuery
from weaviate.classes.tenants import Tenant
from weaviate.collections.collection.async_ import CollectionAsync

from configs.config import Settings
from data.records import SearchHit
from data.weaviate_schema import (
    BM25_PROPERTIES,
    CHUNK_RETURN_PROPERTIES,
    GenerationInfo,
    chunk_collection_spec,
    hit_from_properties,
)
from data.weaviate_server import EmbeddedWeaviate

# Space -> its sources (0-based): source 2 (index 1) is in two spaces, as teams share docs.
SPACES: dict[str, tuple[int, ...]] = {"A": (0, 1), "B": (1, 2), "C": (3,)}
# The change timed on the tenants: space C gains source 3 (index 2), then loses it again.
CHANGE_SPACE, CHANGE_SOURCE = "C", 2
K = 10
FETCH_LIMIT = 4 * K  # what `Retriever.fetch` asks the store for to return k passages
TENANT_COLLECTION = "BenchSpacesTenants"
COPY_COLLECTION = "BenchSpacesCopy"  # the same objects once, no tenants: the build-time baseline
INSERT_BATCH = 200
ChunkKey = tuple[str, int]  # (document_id, chunk_index)
_ALL_PROPERTIES = [
    "text",
    "title",
    "heading_path",
    "source",
    "document_id",
    "source_name",
    "chunk_index",
    "content_hash",
    "modified_time",
]


# --- ------------------------------------------------------------------------------------
async def read_chunks(collection: CollectionAsync[Any, Any]) -> list[Any]:
    """Every chunk object with its properties and vector (the input of the tenant build)."""
    return [o async for o in collection.iterator(include_vector=True, return_properties=_ALL_PROPERTIES)]


def _data_objects(chunks: Iterable[Any]) -> list[DataObject[Any, Any]]:
    return [
        DataObject(properties=dict(o.properties), uuid=o.uuid, vector={"default": o.vector["default"]})
        for o in chunks
    ]


async def insert(collection: CollectionAsync[Any, Any], chunks: Sequence[Any]) -> None:
    objects = _data_objects(chunks)
    for start in range(0, len(objects), INSERT_BATCH):
        result = await collection.data.insert_many(objects[start : start + INSERT_BATCH])
        if result.has_errors:
            raise RuntimeError(f"{len(result.errors)} objects failed: {next(iter(result.errors.values()))}")


async def hybrid(
    collection: CollectionAsync[Any, Any],
    query: str,
    vector: Sequence[float],
    settings: Settings,
    limit: int = FETCH_LIMIT,
    where: Any = None,
) -> list[SearchHit]:
    """The hybrid query `WeaviateVectorStore.search` sends, on any collection (or tenant)."""
    fusion = (
        HybridFusion.RELATIVE_SCORE if settings.search_fusion == "relative_score" else HybridFusion.RANKED
    )
    result = await collection.query.hybrid(
        query=query,
        vector=list(vector),
        alpha=settings.search_alpha,
        fusion_type=fusion,
        query_properties=BM25_PROPERTIES,
        limit=limit,
        return_properties=CHUNK_RETURN_PROPERTIES,
        return_metadata=MetadataQuery(score=True),
        filters=where,
    )
    return [hit_from_properties(dict(o.properties), o.metadata.score) for o in result.objects]


def chunk_keys(hits: Sequence[SearchHit]) -> list[ChunkKey]:
    return [(h.document_id, h.chunk_index) for h in hits]


async def index_config(collection: CollectionAsync[Any, Any]) -> dict[str, Any]:
    """How Weaviate searches a filter's matches (flat below the cutoff, else the strategy on HNSW)."""
    vectors = (await collection.config.get()).vector_config or {}
    hnsw: Any = vectors["default"].vector_index_config if "default" in vectors else None
    strategy = getattr(hnsw, "filter_strategy", None)
    return {
        "filter_strategy": getattr(strategy, "value", str(strategy)),
        "flat_search_cutoff": getattr(hnsw, "flat_search_cutoff", None),
    }


def disk_bytes(server: EmbeddedWeaviate, collection: str) -> int | None:
    """Bytes under the collection's folder of the server's data directory (WAL and HNSW log included)."""
    folder = server.data_dir / collection.lower()
    if not folder.is_dir():
        return None
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


async def build_tenants(
    client: Any, info: GenerationInfo, chunks: Sequence[Any], source_of: Callable[[Any], int]
) -> dict[str, Any]:
    """The multi-tenancy alternative and the plain copy it is compared with, both timed."""
    for name in (TENANT_COLLECTION, COPY_COLLECTION):
        await client.collections.delete(name)
    started = time.perf_counter()
    copy = await client.collections.create(COPY_COLLECTION, **chunk_collection_spec(info))
    await insert(copy, chunks)
    copy_seconds = time.perf_counter() - started

    started = time.perf_counter()
    tenants = await client.collections.create(
        TENANT_COLLECTION,
        multi_tenancy_config=Configure.multi_tenancy(enabled=True),
        **chunk_collection_spec(info),
    )
    await tenants.tenants.create([Tenant(name=space) for space in SPACES])
    per_tenant: dict[str, float] = {}
    for space, members in SPACES.items():
        began = time.perf_counter()
        await insert(tenants.with_tenant(space), [o for o in chunks if source_of(o) in members])
        per_tenant[space] = time.perf_counter() - began
    tenant_seconds = time.perf_counter() - started
    counts = {
        space: (await tenants.with_tenant(space).aggregate.over_all(total_count=True)).total_count or 0
        for space in SPACES
    }
    return {
        "copy_seconds": round(copy_seconds, 3),
        "tenant_seconds": round(tenant_seconds, 3),
        "tenant_insert_seconds": {s: round(v, 3) for s, v in per_tenant.items()},
        "tenant_objects": counts,
        "copy_objects": (await copy.aggregate.over_all(total_count=True)).total_count or 0,
    }


async def time_space_change(
    tenants: CollectionAsync[Any, Any], chunks: Sequence[Any], source_of: Callable[[Any], int], name: str
) -> dict[str, Any]:
    """What moving one source into a space and out again costs the tenants (the filter: nothing
    but the sources file)."""
    moved = [o for o in chunks if source_of(o) == CHANGE_SOURCE]
    tenant = tenants.with_tenant(CHANGE_SPACE)
    started = time.perf_counter()
    await insert(tenant, moved)
    added = time.perf_counter() - started
    started = time.perf_counter()
    deleted = await tenant.data.delete_many(where=Filter.by_property("source_name").equal(name))
    removed = time.perf_counter() - started
    return {
        "space": CHANGE_SPACE,
        "source": CHANGE_SOURCE + 1,
        "objects": len(moved),
        "add_seconds": round(added, 3),
        "remove_seconds": round(removed, 3),
        "removed_objects": deleted.successful,
    }
