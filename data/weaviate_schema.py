"""Weaviate naming, schema and record conversion for the vector store.

Kept apart from `weaviate_collections.py` (connection, alias, generations) and `vector_store.py`
(search) so those read as logic only. A generation is one physical chunk collection
`{alias}_G{timestamp}{random}` plus its document registry `{physical}_Docs`; the alias points at
the chunk collection, so one swap switches both.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from weaviate.classes.config import (
    Configure,
    DataType,
    Property,
    ReplicationDeletionStrategy,
    Tokenization,
    VectorDistances,
)
from weaviate.util import generate_uuid5

from data.records import Chunk, DocumentState, SearchHit

logger = logging.getLogger(__name__)

REGISTRY_SUFFIX = "_Docs"
CHUNK_RETURN_PROPERTIES = ["document_id", "chunk_index", "text", "title", "heading_path", "source"]
BM25_PROPERTIES = ["text", "title"]
STATE_PROPERTIES = ["document_id", "source", "title", "content_hash", "modified_time", "chunk_count"]


# --- names -------------------------------------------------------------------------------------
def new_generation_name(alias: str) -> str:
    """A fresh physical collection name; sortable by creation time."""
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")
    return f"{alias}_G{stamp}{secrets.token_hex(3)}"


def registry_name(physical: str) -> str:
    return f"{physical}{REGISTRY_SUFFIX}"


def generation_pattern(alias: str) -> re.Pattern[str]:
    """Matches the chunk collections (not the registries) of one alias."""
    return re.compile(rf"^{re.escape(alias)}_G\d{{20}}[0-9a-f]{{6}}$", re.IGNORECASE)


def chunk_uuid(document_id: str, chunk_index: int) -> str:
    """Deterministic id: rewriting a chunk replaces it instead of duplicating it."""
    return str(generate_uuid5(f"{document_id}#{chunk_index}"))


def document_uuid(document_id: str) -> str:
    return str(generate_uuid5(document_id))


# --- generation metadata -------------------------------------------------------------------------
# 2: chunks carry `source_name` (spaces filter on it). A generation of an older schema still
# serves unfiltered searches; the next index run rebuilds it (blue/green) like a model change.
SCHEMA_VERSION = 2


@dataclass(frozen=True, slots=True)
class GenerationInfo:
    """Which embedder (and chunk schema) built a generation; JSON in the collection description."""

    model_id: str
    dimension: int
    schema: int = SCHEMA_VERSION

    def to_description(self) -> str:
        return json.dumps(
            {"embedder_model_id": self.model_id, "dimension": self.dimension, "schema": self.schema}
        )

    @classmethod
    def from_description(cls, description: str | None) -> GenerationInfo:
        try:
            data = json.loads(description or "")
            return cls(
                model_id=str(data["embedder_model_id"]),
                dimension=int(data["dimension"]),
                schema=int(data.get("schema", 1)),
            )
        except (ValueError, KeyError, TypeError):
            return cls(model_id="unknown", dimension=0, schema=0)


@dataclass(frozen=True, slots=True)
class GenerationContents:
    """What a generation must hold before the alias may point at it (checked by `point_alias`)."""

    info: GenerationInfo
    documents: int
    chunks: int


def schema_message(built_with: GenerationInfo) -> str | None:
    """Why an index must be rebuilt before this version writes to it (an older chunk schema), or None."""
    if built_with.schema >= SCHEMA_VERSION:
        return None
    return (
        f"the index was built before chunks named their source (schema {built_with.schema}, now "
        f"{SCHEMA_VERSION}); spaces need it rebuilt"
    )


def mismatch_message(built_with: GenerationInfo, model_id: str, dimension: int) -> str | None:
    """The user-facing reason an index cannot be used with this embedder, or None when it can."""
    if built_with.model_id == model_id and built_with.dimension == dimension:
        return None
    return (
        f"The index was built with embedding model {built_with.model_id} ({built_with.dimension}-d) "
        f"but the bot is configured for {model_id} ({dimension}-d); "
        "run `python main.py index --full` (or /reindex full) to rebuild it."
    )


# --- schema --------------------------------------------------------------------------------------
def _text(name: str, *, searchable: bool) -> Property:
    """Searchable text gets word tokenization for BM25; ids/paths are exact-match fields."""
    return Property(
        name=name,
        data_type=DataType.TEXT,
        tokenization=Tokenization.WORD if searchable else Tokenization.FIELD,
        index_searchable=searchable,
        index_filterable=not searchable,
    )


def chunk_collection_spec(info: GenerationInfo) -> dict[str, Any]:
    """Keyword arguments for `collections.create` of a chunk collection."""
    return {
        "description": info.to_description(),
        "properties": [
            _text("text", searchable=True),
            _text("title", searchable=True),
            Property(
                name="heading_path", data_type=DataType.TEXT, index_searchable=False, index_filterable=False
            ),
            _text("source", searchable=False),
            _text("document_id", searchable=False),
            _text("source_name", searchable=False),  # the configured source: spaces filter on it
            Property(name="chunk_index", data_type=DataType.INT),
            _text("content_hash", searchable=False),
            Property(name="modified_time", data_type=DataType.DATE),
        ],
        "vector_config": Configure.Vectors.self_provided(
            vector_index_config=Configure.VectorIndex.hnsw(distance_metric=VectorDistances.COSINE)
        ),
    }


def registry_collection_spec() -> dict[str, Any]:
    """Keyword arguments for `collections.create` of a document registry (no vectors to speak of)."""
    return {
        "description": "Document states of the chunk collection with the same prefix.",
        "properties": [
            _text("document_id", searchable=False),
            _text("source", searchable=False),
            Property(name="title", data_type=DataType.TEXT, index_searchable=False, index_filterable=False),
            _text("content_hash", searchable=False),
            Property(name="modified_time", data_type=DataType.DATE),
            Property(name="chunk_count", data_type=DataType.INT),
        ],
        "vector_config": Configure.Vectors.self_provided(vector_index_config=Configure.VectorIndex.flat()),
    }


# From Weaviate 1.38 the server decides async replication: on for every collection with more than
# one copy, unless its nodes run with ASYNC_REPLICATION_DISABLED=true (the field is ignored).
_SERVER_DECIDES_ASYNC = (1, 38)


def replication_spec(factor: int, async_replication: bool, server_version: str) -> dict[str, Any]:
    """Keyword arguments for `collections.create` that keep `factor` copies of a collection.

    Empty for one copy, so the server's default (REPLICATION_MINIMUM_FACTOR) applies as it did
    before replication was configurable. Conflicting deletes resolve by time (the newest of a
    delete and a rewrite wins): a node that was down while a reindex deleted documents converges
    when it returns, instead of keeping the conflict for a person to settle.
    """
    if factor == 1:
        return {}
    digits = re.findall(r"\d+", server_version)[:2]
    per_collection = len(digits) == 2 and (int(digits[0]), int(digits[1])) < _SERVER_DECIDES_ASYNC
    if not per_collection and not async_replication:
        logger.warning(
            "WEAVIATE_ASYNC_REPLICATION=false has no effect on Weaviate %s: it replicates in the background "
            "unless its nodes run with ASYNC_REPLICATION_DISABLED=true.",
            server_version or "1.38+",
        )
    return {
        "replication_config": Configure.replication(
            factor=factor,
            async_enabled=async_replication if per_collection else None,
            deletion_strategy=ReplicationDeletionStrategy.TIME_BASED_RESOLUTION,
        )
    }


def property_types(spec: dict[str, Any]) -> dict[str, str]:
    """Property name -> data type of a collection spec, as the server reports them back."""
    return {prop.name: str(prop.dataType.value) for prop in spec["properties"]}


def schema_difference(expected: dict[str, str], actual: dict[str, str]) -> str | None:
    """How a collection's properties differ from its spec (an auto-created one differs), or None."""
    wrong = [
        f"{name}: {actual.get(name, 'missing')} instead of {kind}"
        for name, kind in expected.items()
        if actual.get(name) != kind
    ]
    wrong += [f"{name}: not in the schema" for name in sorted(actual.keys() - expected.keys())]
    return "; ".join(wrong) or None


# --- record conversion ---------------------------------------------------------------------------
def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def chunk_properties(chunk: Chunk) -> dict[str, Any]:
    return {
        "text": chunk.text,
        "title": chunk.title,
        "heading_path": chunk.heading_path,
        "source": chunk.source,
        "document_id": chunk.document_id,
        "source_name": chunk.source_name,
        "chunk_index": chunk.chunk_index,
        "content_hash": chunk.content_hash,
        "modified_time": _utc(chunk.modified_time),
    }


def state_properties(state: DocumentState) -> dict[str, Any]:
    return {
        "document_id": state.document_id,
        "source": state.source,
        "title": state.title,
        "content_hash": state.content_hash,
        "modified_time": _utc(state.modified_time),
        "chunk_count": state.chunk_count,
    }


def state_from_properties(props: dict[str, Any]) -> DocumentState:
    modified = props.get("modified_time")
    return DocumentState(
        document_id=str(props["document_id"]),
        source=str(props.get("source") or ""),
        title=str(props.get("title") or ""),
        content_hash=str(props.get("content_hash") or ""),
        modified_time=_utc(modified) if isinstance(modified, datetime) else datetime.fromtimestamp(0, UTC),
        chunk_count=int(props.get("chunk_count") or 0),
    )


def hit_from_properties(
    props: dict[str, Any], score: float | None, similarity: float | None = None
) -> SearchHit:
    return SearchHit(
        document_id=str(props.get("document_id") or ""),
        chunk_index=int(props.get("chunk_index") or 0),
        text=str(props.get("text") or ""),
        title=str(props.get("title") or ""),
        heading_path=str(props.get("heading_path") or ""),
        source=str(props.get("source") or ""),
        score=float(score or 0.0),
        similarity=similarity,
    )
