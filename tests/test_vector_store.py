"""WeaviateVectorStore against the real Weaviate server: upserts, hybrid search, blue/green rebuilds."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from configs.config import DEFAULT_WEAVIATE_BINARY, Settings
from data.errors import IndexModelMismatch, IndexWriteError, StoreUnavailable
from data.records import Chunk, DocumentState
from data.vector_store import Fusion, WeaviateVectorStore
from data.weaviate_schema import registry_name
from data.weaviate_server import EmbeddedWeaviate, free_port
from data.weaviate_writer import WeaviateIndexWriter

if TYPE_CHECKING:
    from data.embeddings import LocalOnnxEmbedder

MakeSettings = Callable[..., Settings]
MODEL = "test-model-8"
DIM = 8
WHEN = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)


def vec(*weights: float) -> list[float]:
    """A unit vector in 8-d from its first components."""
    raw = [*weights, *([0.0] * (DIM - len(weights)))]
    norm = math.sqrt(sum(x * x for x in raw))
    return [x / norm for x in raw]


def chunk(doc: str, index: int, text: str, *, title: str = "Title", digest: str = "h1") -> Chunk:
    return Chunk(
        document_id=doc,
        chunk_index=index,
        text=text,
        title=title,
        heading_path=f"{title} > Part {index}",
        source=f"/docs/{doc}.md",
        content_hash=digest,
        modified_time=WHEN,
        embed_text=text,
    )


def state(doc: str, count: int, *, title: str = "Title", digest: str = "h1") -> DocumentState:
    return DocumentState(doc, f"/docs/{doc}.md", title, digest, WHEN, count)


@pytest.fixture
async def store(make_settings: MakeSettings) -> AsyncIterator[WeaviateVectorStore]:
    async with WeaviateVectorStore(make_settings()) as opened:
        yield opened


async def index_docs(
    store: WeaviateVectorStore, docs: dict[str, list[tuple[str, list[float]]]], *, rebuild: bool = False
) -> WeaviateIndexWriter:
    """Write whole documents (text, vector per chunk) and commit."""
    writer = await store.open_writer(rebuild=rebuild, model_id=MODEL, dimension=DIM)
    for doc, parts in docs.items():
        await writer.write_chunks(
            [chunk(doc, i, text) for i, (text, _) in enumerate(parts)], [v for _, v in parts]
        )
    await writer.finish_documents([state(doc, len(parts)) for doc, parts in docs.items()])
    await writer.commit()
    return writer


async def search(store: WeaviateVectorStore, query: str, vector: list[float], **kw: object) -> list[str]:
    options: dict[str, object] = {"model_id": MODEL, "limit": 5, "alpha": 0.5, "fusion": "relative_score"}
    options.update(kw)
    hits = await store.search(query, vector, **options)  # type: ignore[arg-type]
    return [f"{h.document_id}#{h.chunk_index}" for h in hits]


DOCS = {
    "k8s": [("Kubernetes deployments roll out pods gradually", vec(1))],
    "bread": [("Sourdough bread needs a lively starter and patience", vec(0, 1))],
    "tax": [("Quarterly tax filings are due at the end of the month", vec(0, 0, 1))],
}


async def test_empty_store_has_no_hits_and_no_stats(store: WeaviateVectorStore) -> None:
    assert await search(store, "anything", vec(1)) == []
    assert await store.stats() is None
    assert await store.is_healthy()


async def test_upsert_and_hybrid_search(store: WeaviateVectorStore) -> None:
    writer = await index_docs(store, DOCS)
    # Keyword side (alpha=0): BM25 finds the word even though the vector points elsewhere.
    assert (await search(store, "sourdough starter", vec(1), alpha=0.0))[0] == "bread#0"
    # Vector side (alpha=1): the vector decides whatever the words say.
    assert (await search(store, "sourdough", vec(0, 0, 1), alpha=1.0))[0] == "tax#0"
    # Both fusion types rank an agreeing keyword + vector hit first, with a score.
    fusions: tuple[Fusion, ...] = ("relative_score", "ranked")
    for fusion in fusions:
        hits = await store.search(
            "kubernetes pods", vec(1), model_id=MODEL, limit=2, alpha=0.5, fusion=fusion
        )
        assert hits[0].document_id == "k8s" and hits[0].score > 0
        assert hits[0].source == "/docs/k8s.md" and hits[0].heading_path == "Title > Part 0"
        assert len(hits) == 2 and hits[0].similarity is None  # not asked for: no vectors fetched
    # With `similarity`, each hit carries the cosine between its vector and the query's.
    query = vec(1, 1)
    hits = await store.search(
        "kubernetes", query, model_id=MODEL, limit=3, alpha=0.5, fusion="ranked", similarity=True
    )
    expected = {"k8s": sum(a * b for a, b in zip(query, vec(1), strict=True)), "tax": 0.0}
    for hit in hits:
        assert hit.similarity is not None
        if hit.document_id in expected:
            assert hit.similarity == pytest.approx(expected[hit.document_id], abs=1e-5)
    # Writing the same chunk again replaces it (deterministic ids): no duplicate, new text served.
    writer = await store.open_writer(rebuild=False, model_id=MODEL, dimension=DIM)
    await writer.write_chunks([chunk("k8s", 0, "Kubernetes deployments use readiness probes")], [vec(1)])
    await writer.commit()
    stats = await store.stats()
    assert stats is not None and (stats.chunks, stats.documents) == (3, 3)
    assert (
        stats.collection == writer.collection and stats.embedder_model_id == MODEL and stats.dimension == DIM
    )
    hits = await store.search("readiness probes", vec(1), model_id=MODEL, limit=1, alpha=0.5, fusion="ranked")
    assert hits[0].text == "Kubernetes deployments use readiness probes"


async def test_registry_roundtrip_and_stale_chunks_dropped(store: WeaviateVectorStore) -> None:
    writer = await store.open_writer(rebuild=False, model_id=MODEL, dimension=DIM)
    assert await writer.document_states() == {}
    await writer.write_chunks(
        [chunk("guide", i, f"guide part {i} about widgets") for i in range(5)], [vec(1)] * 5
    )
    await writer.finish_documents([state("guide", 5)])
    assert await writer.document_states() == {"guide": state("guide", 5)}
    # The document shrank to two chunks: chunks 2..4 must disappear, the state is replaced.
    await writer.write_chunks(
        [chunk("guide", i, f"new part {i} about widgets", digest="h2") for i in range(2)], [vec(1)] * 2
    )
    await writer.finish_documents([state("guide", 2, digest="h2")])
    assert sorted(await search(store, "widgets", vec(1), limit=10)) == ["guide#0", "guide#1"]
    states = await writer.document_states()
    assert states == {"guide": state("guide", 2, digest="h2")}
    assert states["guide"].modified_time == WHEN
    stats = await store.stats()
    assert stats is not None and (stats.chunks, stats.documents) == (2, 1)


async def test_delete_documents_removes_chunks_and_states(store: WeaviateVectorStore) -> None:
    writer = await index_docs(store, DOCS)
    await writer.delete_documents(["bread", "tax", "never-indexed"])
    assert set(await writer.document_states()) == {"k8s"}
    assert await search(store, "sourdough tax kubernetes", vec(0, 1, 1), alpha=0.5) == ["k8s#0"]


async def test_rejected_objects_raise_with_weaviate_message(store: WeaviateVectorStore) -> None:
    writer = await index_docs(store, {"a": [("first", vec(1))]})
    bad = [0.5] * (DIM - 3)  # wrong dimension for this index
    with pytest.raises(IndexWriteError) as caught:
        await writer.write_chunks([chunk("b", 0, "good"), chunk("b", 1, "bad")], [vec(1), bad])
    message = str(caught.value)
    assert "rejected" in message and writer.collection in message
    assert "length" in message or "dimension" in message  # Weaviate's own explanation
    with pytest.raises(ValueError, match="2 chunks but 1 vectors"):
        await writer.write_chunks([chunk("b", 0, "x"), chunk("b", 1, "y")], [vec(1)])


async def test_model_mismatch_is_explained(store: WeaviateVectorStore) -> None:
    await index_docs(store, DOCS)
    with pytest.raises(IndexModelMismatch) as caught:
        await store.search("bread", vec(0, 1), model_id="other-model", limit=3, alpha=0.5, fusion="ranked")
    message = str(caught.value)
    assert (
        MODEL in message
        and "other-model" in message
        and "index --full" in message
        and "/reindex full" in message
    )
    with pytest.raises(IndexModelMismatch):
        await store.open_writer(rebuild=False, model_id=MODEL, dimension=DIM * 2)
    # A rebuild with the new model is allowed and then serves.
    writer = await store.open_writer(rebuild=True, model_id="other-model", dimension=4)
    await writer.write_chunks([chunk("bread", 0, "Sourdough again")], [[0.0, 1.0, 0.0, 0.0]])
    await writer.finish_documents([state("bread", 1)])
    await writer.commit()
    hits = await store.search(
        "sourdough", [0.0, 1.0, 0.0, 0.0], model_id="other-model", limit=3, alpha=0.5, fusion="ranked"
    )
    assert [h.text for h in hits] == ["Sourdough again"]
    with pytest.raises(IndexModelMismatch):
        await store.search("bread", vec(0, 1), model_id=MODEL, limit=3, alpha=0.5, fusion="ranked")


async def test_rebuild_swaps_without_queries_ever_seeing_an_empty_index(store: WeaviateVectorStore) -> None:
    old = await index_docs(store, DOCS)
    client = await store.client()
    results: list[list[str]] = []
    stop = asyncio.Event()

    async def query_loop() -> None:
        while not stop.is_set():
            results.append(await search(store, "kubernetes sourdough tax", vec(1, 1, 1)))

    loop = asyncio.create_task(query_loop())
    writer = await store.open_writer(rebuild=True, model_id=MODEL, dimension=DIM)
    assert writer.collection != old.collection
    for i in range(4):  # the new generation fills up while the old one serves
        await writer.write_chunks(
            [chunk(f"new{i}", 0, f"kubernetes sourdough tax revision {i}")], [vec(1, 1, 1)]
        )
        await asyncio.sleep(0.05)
    await writer.finish_documents([state(f"new{i}", 1) for i in range(4)])
    before_commit = len(results)
    await writer.commit()
    await asyncio.sleep(0.3)
    stop.set()
    await loop
    assert before_commit > 3 and len(results) > before_commit
    assert all(results), "a query saw an empty index during the rebuild"
    assert all(r[0].startswith("new") for r in results[-1:])
    assert not any(any(h.startswith("new") for h in r) for r in results[:before_commit])
    stats = await store.stats()
    assert stats is not None and stats.collection == writer.collection and stats.documents == 4
    assert not await client.collections.exists(old.collection)
    assert not await client.collections.exists(registry_name(old.collection))


async def test_search_follows_a_rebuild_made_by_another_process(store: WeaviateVectorStore) -> None:
    """Searches reuse the alias target for a moment; the other process dropped that generation."""
    await index_docs(store, DOCS)
    assert (await search(store, "sourdough", vec(0, 1)))[0] == "bread#0"  # target now remembered
    async with WeaviateVectorStore(store.settings) as other:
        rebuilt = await index_docs(other, {"rye": [("Rye sourdough bread", vec(0, 1))]}, rebuild=True)
    assert store._serving is not None and store._serving[0] != rebuilt.collection  # stale, still fresh
    assert await search(store, "sourdough", vec(0, 1)) == ["rye#0"]
    stats = await store.stats()
    assert stats is not None and stats.collection == rebuilt.collection


async def test_abort_keeps_the_serving_index(store: WeaviateVectorStore) -> None:
    old = await index_docs(store, DOCS)
    writer = await store.open_writer(rebuild=True, model_id=MODEL, dimension=DIM)
    await writer.write_chunks([chunk("half", 0, "half built sourdough")], [vec(0, 1)])
    await writer.abort()
    client = await store.client()
    assert not await client.collections.exists(writer.collection)
    stats = await store.stats()
    assert stats is not None and stats.collection == old.collection and stats.documents == 3
    assert (await search(store, "sourdough", vec(0, 1)))[0] == "bread#0"


async def test_crashed_rebuild_is_cleaned_up_by_the_next(make_settings: MakeSettings) -> None:
    settings = make_settings()
    async with WeaviateVectorStore(settings) as first:
        await index_docs(first, DOCS)
        crashed = await first.open_writer(rebuild=True, model_id=MODEL, dimension=DIM)
        await crashed.write_chunks([chunk("x", 0, "unfinished")], [vec(1)])
        # no commit/abort: the process "died" here
    async with WeaviateVectorStore(settings) as second:
        client = await second.client()
        assert await client.collections.exists(crashed.collection)
        writer = await second.open_writer(rebuild=True, model_id=MODEL, dimension=DIM)
        assert not await client.collections.exists(crashed.collection)
        assert not await client.collections.exists(registry_name(crashed.collection))
        await writer.abort()
        assert (await search(second, "sourdough", vec(0, 1)))[0] == "bread#0"


async def test_unreachable_store_names_the_url(make_plain_settings: MakeSettings) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    store = WeaviateVectorStore(make_plain_settings(weaviate_url=url, weaviate_grpc_url=None))
    with pytest.raises(StoreUnavailable, match=url.replace(".", r"\.")):
        await store.connect()
    assert not await store.is_healthy()


async def test_embedded_default_starts_and_stops_its_own_server(make_settings: MakeSettings) -> None:
    settings = make_settings(
        weaviate_url=None,
        weaviate_grpc_url=None,
        weaviate_http_port=free_port(),
        weaviate_grpc_port=free_port(),
    )
    async with WeaviateVectorStore(settings) as store:
        assert store.url == f"http://127.0.0.1:{settings.weaviate_http_port}"
        await index_docs(store, DOCS)
        assert (settings.data_dir / "weaviate" / "weaviate-server.log").is_file()
    assert not await WeaviateVectorStore(settings.model_copy(update={"weaviate_url": store.url})).is_healthy()
    # The data stays on disk: a new run serves the same index.
    async with WeaviateVectorStore(settings) as again:
        stats = await again.stats()
        assert stats is not None and stats.documents == 3
        assert (await search(again, "sourdough", vec(0, 1)))[0] == "bread#0"


async def test_real_embeddings_find_the_meaning(
    store: WeaviateVectorStore, embedder: LocalOnnxEmbedder
) -> None:
    texts = {
        "vacation": "Employees get 25 days of paid leave per year; unused days carry over until March.",
        "vpn": "Connect to the office network with the WireGuard client before opening internal sites.",
        "expenses": "Submit receipts for travel costs within 30 days to get reimbursed.",
    }
    vectors = await embedder.embed_documents(list(texts.values()))
    writer = await store.open_writer(rebuild=False, model_id=embedder.model_id, dimension=embedder.dimension)
    await writer.write_chunks([chunk(doc, 0, text) for doc, text in texts.items()], vectors)
    await writer.finish_documents([state(doc, 1) for doc in texts])
    query = "How many holidays do I have?"  # no word in common with the vacation passage
    hits = await store.search(
        query,
        await embedder.embed_query(query),
        model_id=embedder.model_id,
        limit=3,
        alpha=0.75,
        fusion="relative_score",
    )
    assert hits[0].document_id == "vacation"
    stats = await store.stats()
    assert stats is not None and stats.dimension == 384 and stats.embedder_model_id == embedder.model_id


async def test_wrong_api_key_is_reported(make_settings: MakeSettings) -> None:
    store = WeaviateVectorStore(make_settings(weaviate_api_key="not-the-key"))
    with pytest.raises(StoreUnavailable) as caught:
        await store.connect()
    assert store.settings.weaviate_url is not None and store.settings.weaviate_url in str(caught.value)
    assert "refused the API key (WEAVIATE_API_KEY)" in str(caught.value)
    assert "not-the-key" not in str(caught.value)


async def test_server_that_went_away_is_reported(make_settings: MakeSettings, tmp_path: Path) -> None:
    async with EmbeddedWeaviate(DEFAULT_WEAVIATE_BINARY, tmp_path / "short-lived") as server:
        settings = make_settings(
            weaviate_url=server.url, weaviate_grpc_url=server.grpc_url, weaviate_api_key=server.api_key
        )
        store = WeaviateVectorStore(settings)
        writer = await index_docs(store, DOCS)
    # The server is gone now; every operation says so and names where it was.
    with pytest.raises(StoreUnavailable, match=f"Weaviate at {server.url} stopped answering"):
        await search(store, "sourdough", vec(0, 1))
    with pytest.raises(StoreUnavailable, match=server.url):
        await store.stats()
    with pytest.raises(StoreUnavailable, match=server.url):
        await writer.delete_documents(["bread"])  # (batch writes fail the same way, after client retries)
    assert not await store.is_healthy()
    await store.close()
