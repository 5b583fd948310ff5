"""Plain records passed between the indexer, the vector store and retrieval."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Chunk:
    """One passage of a document, as stored in the vector store."""

    document_id: str  # stable id of the source document (its resolved path or URL)
    chunk_index: int  # 0-based position within the document
    text: str  # the passage as shown to users
    title: str  # the document title
    heading_path: str  # section headings leading to the passage, joined with " > "
    source: str  # path or URL users can open
    content_hash: str  # sha256 of the whole document's raw bytes
    modified_time: datetime  # the document's modification time (UTC)
    embed_text: str  # what the embedder sees (the text, optionally prefixed by title/headings)
    source_name: str = ""  # the configured source it came from (spaces search by it)


@dataclass(frozen=True, slots=True)
class DocumentState:
    """What the index remembers about a document, recorded only after its chunks were written."""

    document_id: str
    source: str
    title: str
    content_hash: str
    modified_time: datetime
    chunk_count: int


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One chunk returned by a search, best first."""

    document_id: str
    chunk_index: int
    text: str
    title: str
    heading_path: str
    source: str
    score: float
    # Cosine similarity of the chunk's vector to the query's: unlike `score` (fused and
    # normalised per query), it says how close the best match really is.
    similarity: float | None = None


@dataclass(frozen=True, slots=True)
class IndexStats:
    """What `status` shows about the serving index."""

    collection: str  # the physical collection behind the alias
    embedder_model_id: str
    dimension: int
    documents: int
    chunks: int


@dataclass(frozen=True, slots=True)
class Passage:
    """One or more consecutive chunks of a document, as shown to the model and cited as [n]."""

    text: str
    title: str
    heading_path: str
    source: str
    score: float  # the best score among the merged chunks
    document_id: str
    first_chunk: int
    last_chunk: int
