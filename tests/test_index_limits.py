"""Index runs on awkward input: files over MAX_FILE_BYTES / MAX_CHUNKS_PER_DOCUMENT, a document far
larger than the pipeline's queues, and symbolic link loops (named, and inside folders).

Real loader, chunker, local embedder and Weaviate; each test indexes its own folder into its own
collection.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

import services.indexing.chunking as chunking
from configs.config import Settings
from data.embeddings import LocalOnnxEmbedder
from data.records import Chunk
from data.vector_store import WeaviateVectorStore
from services.indexer import Indexer
from services.indexing.loader import LoadFailure, parse_document
from services.indexing.stages import EMBED_BATCH, SLICE_QUEUE

MakeSettings = Callable[..., Settings]
PARAGRAPH = "Deployments roll out region by region and stop at the first failed health check. "


def _write_doc(path: Path, paragraphs: int, title: str = "Rollouts") -> Path:
    body = "\n\n".join(f"{PARAGRAPH}Step {n} waits for the canary." for n in range(paragraphs))
    path.write_text(f"# {title}\n\n{body}\n", encoding="utf-8")
    return path


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    _write_doc(folder / "small.md", 2, "Small")
    return folder


@pytest.fixture
async def open_store(make_settings: MakeSettings) -> AsyncIterator[Callable[..., Any]]:
    """Open a store on settings with the given overrides; all are closed after the test."""
    opened: list[WeaviateVectorStore] = []

    async def open_with(**overrides: Any) -> WeaviateVectorStore:
        store = WeaviateVectorStore(make_settings(**overrides))
        await store.connect()
        opened.append(store)
        return store

    yield open_with
    for store in opened:
        await store.close()


async def _indexed_sources(store: WeaviateVectorStore) -> dict[str, int]:
    """Chunks per document file name in the serving index."""
    client = await store.client()
    collection = client.collections.use(store.alias)
    counts: dict[str, int] = {}
    async for obj in collection.iterator(return_properties=["source"]):
        name = Path(str(obj.properties["source"])).name
        counts[name] = counts.get(name, 0) + 1
    return counts


def test_parse_document_does_not_read_a_file_over_max_bytes(tmp_path: Path) -> None:
    big = _write_doc(tmp_path / "big.md", 40)
    result = parse_document(big, max_bytes=1000)
    assert isinstance(result, LoadFailure)
    assert result.reason.startswith("skipped: too large") and "MAX_FILE_BYTES=1,000 bytes" in result.reason
    assert not isinstance(parse_document(big, max_bytes=0), LoadFailure)  # 0: no limit


async def test_files_over_the_limits_are_skipped_whole_and_reported(
    open_store: Callable[..., Any], embedder: LocalOnnxEmbedder, docs: Path
) -> None:
    _write_doc(docs / "many-chunks.md", 12)  # ~24 chunks of at most 100 characters
    (docs / "huge.txt").write_text("x " * 3000, encoding="utf-8")  # 6,000 bytes
    store = await open_store(
        docs_paths=[str(docs)],
        chunk_size=100,
        chunk_overlap=0,
        max_file_bytes=5000,
        max_chunks_per_document=8,
    )

    result = await Indexer(store.settings, store, embedder).index()

    reasons = {Path(f.path).name: f.reason for f in result.failures}
    assert set(reasons) == {"many-chunks.md", "huge.txt"}, result.summary()
    assert reasons["huge.txt"] == "skipped: too large (6,000 bytes, over MAX_FILE_BYTES=5,000 bytes)"
    assert reasons["many-chunks.md"].startswith("skipped: too large (")
    assert reasons["many-chunks.md"].endswith(" chunks, over MAX_CHUNKS_PER_DOCUMENT=8)")
    assert result.added == 1 and "skipped: too large" in result.summary()
    assert set(await _indexed_sources(store)) == {"small.md"}  # nothing of the skipped ones was written


class _TrackedChunk(Chunk):
    """A `Chunk` that can be counted while it is alive (the record has no weakref slot)."""

    __slots__ = ("__weakref__",)
    alive: ClassVar[weakref.WeakSet[Chunk]] = weakref.WeakSet()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _TrackedChunk.alive.add(self)


class _LiveChunkProbe:
    """The real embedder, noting how many chunks exist in the process whenever it is called."""

    def __init__(self, inner: LocalOnnxEmbedder) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dimension = inner.dimension
        self.alive_at_calls: list[int] = []

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        self.alive_at_calls.append(len(_TrackedChunk.alive))  # chunks hold no cycles: freed at once
        return await self.inner.embed_documents(texts)

    async def embed_query(self, text: str) -> list[float]:
        return await self.inner.embed_query(text)

    async def warm_up(self) -> None:
        await self.inner.warm_up()

    async def aclose(self) -> None:
        pass


async def test_a_large_document_streams_through_the_pipeline(
    open_store: Callable[..., Any],
    embedder: LocalOnnxEmbedder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its chunks are made as the embedder takes them: far fewer are ever alive than it has."""
    folder = tmp_path / "large"
    folder.mkdir()
    _write_doc(folder / "runbook.md", 700)  # ~1,400 chunks of at most 100 characters
    monkeypatch.setattr(chunking, "Chunk", _TrackedChunk)
    store = await open_store(docs_paths=[str(folder)], chunk_size=100, chunk_overlap=0)
    probe = _LiveChunkProbe(embedder)

    result = await Indexer(store.settings, store, probe).index()

    assert result.added == 1 and result.chunks_written >= 1300, result.summary()
    # In flight at most: the queue's slices, one in the producer's hands, the embedder's pending
    # and current batch, the writer's queue and its current batch.
    bound = (SLICE_QUEUE + 6) * EMBED_BATCH
    assert max(probe.alive_at_calls) <= bound < result.chunks_written


async def test_symlink_loops_are_reported_per_path_and_a_rebuild_still_commits(
    open_store: Callable[..., Any], embedder: LocalOnnxEmbedder, docs: Path, tmp_path: Path
) -> None:
    named = tmp_path / "loop.md"
    named.symlink_to(named)
    (docs / "inner-loop").symlink_to(docs / "inner-loop")
    (docs / "gone.md").symlink_to(tmp_path / "nowhere.md")
    store = await open_store(docs_paths=[str(docs)])

    result = await Indexer(store.settings, store, embedder).index([named, docs], full=True)

    reasons = {Path(f.path).name: f.reason for f in result.failures}
    assert reasons == {
        "loop.md": "symbolic link loop (the link leads back to itself), so it cannot be read",
        "inner-loop": "symbolic link loop (the link leads back to itself), so it cannot be read",
        "gone.md": f"broken symbolic link: its target {tmp_path / 'nowhere.md'} does not exist",
    }, result.summary()
    assert result.error is None and result.added == 1
    assert set(await _indexed_sources(store)) == {"small.md"}  # the rebuild was committed
