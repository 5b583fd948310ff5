"""Writes and alias swaps refuse what the indexer did not make, on a Weaviate with auto-schema on.

A remote Weaviate runs with auto-schema on unless told otherwise (the embedded one has it off):
there, a write into a collection that a concurrent rebuild dropped re-creates it, with a schema
guessed from the objects. These tests use such a server (real, started here) to show that a
writer checks its target before each batch, that a swap checks schema, embedder and counts first,
and that an incremental run whose index was replaced meanwhile does not report success.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from weaviate.classes.data import DataObject

from configs.config import DEFAULT_WEAVIATE_BINARY, Settings
from data.errors import IndexWriteError
from data.records import Chunk, DocumentState
from data.vector_store import WeaviateVectorStore
from data.weaviate_schema import registry_name
from data.weaviate_server import EmbeddedWeaviate
from data.weaviate_writer import WeaviateIndexWriter

MakeSettings = Callable[..., Settings]
MODEL, DIM = "test-model-4", 4
WHEN = datetime(2025, 3, 1, tzinfo=UTC)


class AutoSchemaWeaviate(EmbeddedWeaviate):
    """The real server with Weaviate's own default, auto-schema on, as a remote one often runs."""

    def _environment(self) -> dict[str, str]:
        return {**super()._environment(), "AUTOSCHEMA_ENABLED": "true"}


@pytest.fixture(scope="module")
async def auto_schema_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedWeaviate]:
    async with AutoSchemaWeaviate(
        DEFAULT_WEAVIATE_BINARY, tmp_path_factory.mktemp("autoschema"), startup_timeout=120
    ) as server:
        yield server


@pytest.fixture
async def store(
    make_plain_settings: MakeSettings, auto_schema_server: EmbeddedWeaviate, tmp_path: Path
) -> AsyncIterator[WeaviateVectorStore]:
    settings = make_plain_settings(
        weaviate_url=auto_schema_server.url,
        weaviate_grpc_url=auto_schema_server.grpc_url,
        weaviate_api_key=auto_schema_server.api_key,
    )
    async with WeaviateVectorStore(settings) as opened:
        yield opened


def vector(seed: int) -> list[float]:
    raw = [float(seed % 3 + 1), 1.0, float(seed % 2), 0.5]
    norm = math.sqrt(sum(x * x for x in raw))
    return [x / norm for x in raw]


def chunk(doc: str, index: int) -> Chunk:
    return Chunk(doc, index, f"{doc} part {index}", doc, "", f"/docs/{doc}.md", "h1", WHEN, f"{doc} {index}")


def state(doc: str, count: int) -> DocumentState:
    return DocumentState(doc, f"/docs/{doc}.md", doc, "h1", WHEN, count)


async def write_document(writer: WeaviateIndexWriter, doc: str, chunks: int) -> None:
    await writer.write_chunks([chunk(doc, i) for i in range(chunks)], [vector(i) for i in range(chunks)])
    await writer.finish_documents([state(doc, chunks)])


async def serving_index(store: WeaviateVectorStore) -> WeaviateIndexWriter:
    writer = await store.open_writer(rebuild=False, model_id=MODEL, dimension=DIM)
    await write_document(writer, "old", 2)
    await writer.commit()
    return writer


async def test_a_write_into_a_dropped_generation_fails_instead_of_recreating_it(
    store: WeaviateVectorStore,
) -> None:
    client = await store.client()
    writer = await store.open_writer(rebuild=True, model_id=MODEL, dimension=DIM)
    await write_document(writer, "a", 2)
    await store.drop_generation(writer.collection)  # what a concurrent rebuild's start does

    with pytest.raises(IndexWriteError, match=f"The collection {writer.collection} no longer exists"):
        await writer.write_chunks([chunk("b", 0)], [vector(0)])
    with pytest.raises(IndexWriteError, match="no longer exists"):
        await writer.finish_documents([state("b", 1)])

    assert not await client.collections.exists(writer.collection)
    assert not await client.collections.exists(registry_name(writer.collection))


async def test_the_swap_refuses_a_generation_recreated_by_auto_schema(store: WeaviateVectorStore) -> None:
    """The first bug of the issue: the alias swapped to a collection Weaviate made up on a write."""
    old = await serving_index(store)
    client = await store.client()
    writer = await store.open_writer(rebuild=True, model_id=MODEL, dimension=DIM)
    await write_document(writer, "a", 2)
    await store.drop_generation(writer.collection)
    # The old writer's next writes, without the check: Weaviate creates both collections again.
    chunks = [
        DataObject(properties={"document_id": "a", "chunk_index": i}, vector=vector(i)) for i in range(2)
    ]
    await client.collections.use(writer.collection).data.insert_many(chunks)
    await client.collections.use(registry_name(writer.collection)).data.insert_many(
        [DataObject(properties={"document_id": "a", "chunk_count": 2})]
    )
    assert await client.collections.exists(writer.collection)  # auto-schema made it, guessing

    with pytest.raises(IndexWriteError, match=r"was not made to serve: .*does not have the indexer's schema"):
        await writer.commit()

    assert await store.serving_collection() == old.collection


async def test_the_swap_refuses_a_generation_another_run_wrote_into(store: WeaviateVectorStore) -> None:
    old = await serving_index(store)
    writer = await store.open_writer(rebuild=True, model_id=MODEL, dimension=DIM)
    await write_document(writer, "a", 3)
    client = await store.client()
    stray = DataObject(properties={"document_id": "stray", "chunk_index": 0, "text": "x"}, vector=vector(2))
    await client.collections.use(writer.collection).data.insert_many([stray])

    with pytest.raises(IndexWriteError, match="holds 1 documents and 4 chunks, but the run recorded 1 and 3"):
        await writer.commit()
    assert await store.serving_collection() == old.collection

    await writer.abort()  # the run gives up: its generation goes, the old one keeps serving
    assert not await client.collections.exists(writer.collection)


async def test_an_incremental_run_whose_index_was_replaced_does_not_report_success(
    store: WeaviateVectorStore,
) -> None:
    """A `--full` next to an incremental run (no shared lease): the incremental run's writes landed
    in a collection the rebuild then dropped; it must fail, not say it indexed them."""
    old = await serving_index(store)
    incremental = await store.open_writer(rebuild=False, model_id=MODEL, dimension=DIM)
    assert incremental.collection == old.collection
    await write_document(incremental, "new", 1)
    async with WeaviateVectorStore(store.settings) as elsewhere:
        rebuild = await elsewhere.open_writer(rebuild=True, model_id=MODEL, dimension=DIM)
        await write_document(rebuild, "old", 2)
        await rebuild.commit()

    with pytest.raises(IndexWriteError, match=r"no longer serves .*a rebuild replaced it meanwhile"):
        await incremental.commit()
    client = await store.client()
    assert not await client.collections.exists(old.collection)  # not re-created by the checks either
