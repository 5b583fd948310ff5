"""Helpers for tests/test_indexer.py and tests/test_index_faults.py: a counting (optionally failing)
wrapper around the real embedder, a probe proving the pipeline stages overlap, and index
inspection helpers, down to comparing an index with what a clean build of the same files holds."""

from __future__ import annotations

import asyncio
import inspect
import shutil
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from counting_embedder import CountingEmbedder
from docs_corpus import LARGE

from configs.config import Settings
from data.embeddings import LocalOnnxEmbedder
from data.vector_store import WeaviateVectorStore
from data.weaviate_schema import generation_pattern, registry_name
from services.indexer import Indexer
from services.indexing.chunking import chunk_document
from services.indexing.loader import ParsedDocument, parse_document

BROKEN_FILES = {"empty.md": "empty file", "binary-data.txt": "binary data", "corrupt.pdf": "PDF"}


def add_large(corpus: Path) -> None:
    """The ~100 KB changelog: one document spanning several embedding batches (slow: ~120 chunks)."""
    (corpus / "large").mkdir()
    shutil.copy(LARGE, corpus / "large" / LARGE.name)


def expected_chunks(settings: Settings, paths: Sequence[Path]) -> int:
    """Chunks the loader + chunker make of these files (what the index must hold)."""
    total = 0
    for path in paths:
        parsed = parse_document(path)
        assert isinstance(parsed, ParsedDocument), parsed
        total += len(chunk_document(parsed, settings))
    return total


def good_files(corpus: Path) -> list[Path]:
    broken = {corpus / "broken" / name for name in BROKEN_FILES}
    return sorted(p for p in corpus.rglob("*") if p.is_file() and p not in broken)


async def sources(store: WeaviateVectorStore, embedder: LocalOnnxEmbedder, query: str) -> list[str]:
    """File names of the top hits for `query` on the serving index."""
    hits = await store.search(
        query,
        await embedder.embed_query(query),
        model_id=embedder.model_id,
        limit=5,
        alpha=0.5,
        fusion="relative_score",
    )
    return [Path(hit.source).name for hit in hits]


@dataclass(frozen=True)
class IndexContents:
    """What an index holds, document by document: the registry's states and the chunks themselves."""

    registry: dict[str, tuple[str, int]]  # document id -> (content hash, chunk count)
    chunks: dict[str, list[tuple[int, str]]]  # document id -> sorted (chunk index, content hash)
    embedder: str
    generations: set[str]  # every generation of the alias; a clean index has only the serving one
    serving: str | None


def clean_build(settings: Settings, paths: Sequence[Path]) -> IndexContents:
    """What a clean build of `paths` holds, from the loader and chunker (no index involved)."""
    registry: dict[str, tuple[str, int]] = {}
    chunks: dict[str, list[tuple[int, str]]] = {}
    for path in paths:
        parsed = parse_document(path)
        assert isinstance(parsed, ParsedDocument), parsed
        count = len(chunk_document(parsed, settings))
        registry[parsed.document_id] = (parsed.content_hash, count)
        chunks[parsed.document_id] = [(index, parsed.content_hash) for index in range(count)]
    return IndexContents(registry, chunks, "", set(), None)


async def index_contents(store: WeaviateVectorStore) -> IndexContents:
    """Everything the serving generation holds (every chunk is read: keep the corpus small)."""
    serving, generations = await serving_and_generations(store)
    assert serving is not None, "nothing serves"
    client = await store.client()
    registry = {}
    async for obj in client.collections.use(registry_name(serving)).iterator():
        props = obj.properties
        registry[str(props["document_id"])] = (str(props["content_hash"]), int(str(props["chunk_count"])))
    chunks: dict[str, list[tuple[int, str]]] = defaultdict(list)
    async for obj in client.collections.use(serving).iterator(
        return_properties=["document_id", "chunk_index", "content_hash"]
    ):
        props = obj.properties
        chunks[str(props["document_id"])].append((int(str(props["chunk_index"])), str(props["content_hash"])))
    info = await store.generation_info(serving)
    return IndexContents(
        registry, {doc: sorted(found) for doc, found in chunks.items()}, info.model_id, generations, serving
    )


async def assert_clean_build(store: WeaviateVectorStore, settings: Settings, paths: Sequence[Path]) -> None:
    """The index equals a clean build of `paths`: same documents and chunks, no orphan chunks, no
    generation besides the serving one, built by the local embedder."""
    expected = clean_build(settings, paths)
    actual = await index_contents(store)
    assert actual.generations == {actual.serving}, f"leftover generations: {actual.generations}"
    assert actual.embedder == "all-MiniLM-L6-v2-onnx-int8"
    missing = expected.registry.keys() - actual.registry.keys()
    extra = actual.registry.keys() - expected.registry.keys()
    assert not missing and not extra, f"registry: missing {missing}, extra {extra}"
    assert actual.registry == expected.registry
    orphans = {doc: len(found) for doc, found in actual.chunks.items() if doc not in expected.chunks}
    assert not orphans, f"chunks of documents not in the registry: {orphans}"
    wrong = [doc for doc in expected.chunks if actual.chunks.get(doc) != expected.chunks[doc]]
    assert not wrong, f"documents whose chunks differ from a clean build: {wrong}"


async def serving_and_generations(store: WeaviateVectorStore) -> tuple[str | None, set[str]]:
    client = await store.client()
    names = await client.collections.list_all(simple=True)
    pattern = generation_pattern(store.alias)
    return await store.serving_collection(), {name for name in names if pattern.match(name)}


class GatedEmbedder(CountingEmbedder):
    """Holds a run mid-way without using the CPU: from call `hold_on_call` on, each document call
    waits for `gate` (`held` is set once one waits), so a test can act on a run caught in the middle."""

    def __init__(self, inner: LocalOnnxEmbedder, *, hold_on_call: int) -> None:
        super().__init__(inner)
        self.hold_on_call = hold_on_call
        self.gate = asyncio.Event()
        self.held = asyncio.Event()

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if self.calls + 1 >= self.hold_on_call:
            self.held.set()
            await self.gate.wait()
        return await super().embed_documents(texts)


class OverlapProbe(CountingEmbedder):
    """Proves the stages overlap: its first call returns only once parsing went on meanwhile, its
    second only once the first batch was written. Run stage after stage, it would time out."""

    def __init__(
        self, inner: LocalOnnxEmbedder, indexer_of: Callable[[], Indexer], parsed: list[str]
    ) -> None:
        super().__init__(inner)
        self.indexer_of = indexer_of
        self.parsed = parsed

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        before = len(self.parsed)
        vectors = await super().embed_documents(texts)
        if self.calls == 1:
            await wait_for(lambda: len(self.parsed) > before, "parsing during the first embedding call")
        elif self.calls == 2:
            await wait_for(
                lambda: (p := self.indexer_of().progress) is not None and p.chunks_written > 0,
                "a batch written while the next one is embedded",
            )
        return vectors


async def until(
    condition: Callable[[], bool | Awaitable[bool]], what: str, *, seconds: float = 60, every: float = 0.01
) -> None:
    """Wait until `condition()` (sync or async) holds, polling; fail naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        outcome = condition()
        if await outcome if inspect.isawaitable(outcome) else outcome:
            return
        await asyncio.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


async def wait_for(condition: Callable[[], bool], what: str) -> None:
    for _ in range(6000):  # 60 s
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the pipeline did not overlap: no {what}")
