"""Helpers for tests/test_indexer.py: a counting (optionally failing) wrapper around the real
embedder, a probe proving the pipeline stages overlap, and index inspection helpers."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from counting_embedder import CountingEmbedder
from docs_corpus import LARGE

from configs.config import Settings
from data.embeddings import LocalOnnxEmbedder
from data.vector_store import WeaviateVectorStore
from data.weaviate_schema import generation_pattern
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


async def serving_and_generations(store: WeaviateVectorStore) -> tuple[str | None, set[str]]:
    client = await store.client()
    names = await client.collections.list_all(simple=True)
    pattern = generation_pattern(store.alias)
    return await store.serving_collection(), {name for name in names if pattern.match(name)}


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


async def wait_for(condition: Callable[[], bool], what: str) -> None:
    for _ in range(6000):  # 60 s
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the pipeline did not overlap: no {what}")
