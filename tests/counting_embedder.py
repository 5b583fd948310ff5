"""A wrapper that counts what a real embedder is asked to embed, for tests that assert work was
skipped (a remembered query vector, an unchanged document). The embedders keep no counters."""

from __future__ import annotations

from collections.abc import Sequence

from data.embeddings import Embedder


class EmbedderOutage(Exception):
    """What a failing `CountingEmbedder` raises."""


class CountingEmbedder:
    """`Embedder` around a real one: `texts` counts texts embedded, `calls` the calls (documents or
    query) that reached it; from call `fail_on_call` on, document calls raise `EmbedderOutage`."""

    def __init__(self, inner: Embedder, *, fail_on_call: int | None = None) -> None:
        self.inner = inner
        self.fail_on_call = fail_on_call
        self.model_id = inner.model_id
        self.dimension = inner.dimension  # wrap a warmed-up embedder if it learns its dimension
        self.calls = 0
        self.texts = 0

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        if self.fail_on_call is not None and self.calls >= self.fail_on_call:
            raise EmbedderOutage(f"embedding provider unavailable (call {self.calls})")
        self.texts += len(texts)
        return await self.inner.embed_documents(texts)

    async def embed_query(self, text: str) -> list[float]:
        self.calls += 1
        self.texts += 1
        return await self.inner.embed_query(text)

    async def warm_up(self) -> None:
        await self.inner.warm_up()

    async def aclose(self) -> None:
        await self.inner.aclose()
