"""The local ONNX embedder (real model) and the OpenAI embedder against a local /v1/embeddings server."""

from __future__ import annotations

import hashlib
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from conftest import MakeSettings
from pydantic import SecretStr

from configs.config import ConfigError, Settings
from data.embeddings import LOCAL_MODEL_ID, LocalOnnxEmbedder, OpenAIEmbedder, make_embedder
from data.errors import EmbeddingError


def _cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b))


# --- Local ONNX embedder -----------------------------------------------------------------------


class BatchRecordingEmbedder(LocalOnnxEmbedder):
    """The real local embedder, remembering the texts of each batch it runs through the model."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.batches: list[list[str]] = []

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        self.batches.append(texts)
        return super()._encode_batch(texts)


async def test_local_vectors_are_unit_length_384d_and_deterministic(embedder: LocalOnnxEmbedder) -> None:
    texts = ["How do I install Acme Deploy on macOS?", "The default region is eu-west-1."]
    first = await embedder.embed_documents(texts)
    second = await embedder.embed_documents(texts)
    assert embedder.model_id == LOCAL_MODEL_ID and embedder.dimension == 384
    assert [len(v) for v in first] == [384, 384]
    for vector in first:
        assert math.isclose(float(np.linalg.norm(vector)), 1.0, abs_tol=1e-5)
    assert first == second  # same batch, same bytes


async def test_local_similar_sentences_score_higher_than_unrelated(embedder: LocalOnnxEmbedder) -> None:
    query = await embedder.embed_query("How do I roll back a failed deployment?")
    close, unrelated = await embedder.embed_documents(
        [
            "To revert a broken release, run the rollback command to go back to the previous version.",
            "Our cafeteria serves vegetarian lasagne every Thursday at noon.",
        ]
    )
    assert _cosine(query, close) > _cosine(query, unrelated) + 0.2


async def test_local_order_is_kept_with_mixed_lengths_and_batches() -> None:
    embedder = BatchRecordingEmbedder(batch_size=3)
    texts = [
        "short",
        "a much longer passage about configuring deployment targets, regions and timeouts " * 6,
        "",
        "medium length sentence about health checks",
        "x " * 400,  # longer than the 256-token window: truncated, not an error
        "another short one",
        "rollback keeps five releases",
    ]
    together = await embedder.embed_documents(texts)
    assert [len(batch) for batch in embedder.batches] == [3, 3, 1]
    # Batches are cut from the texts sorted by length, so batch mates need little padding.
    assert [text for batch in embedder.batches for text in batch] == sorted(texts, key=len)
    for text, vector in zip(texts, together, strict=True):
        alone = await embedder.embed_query(text)
        # Sorting by length changes batch mates (padding), not the vector.
        assert _cosine(alone, vector) > 0.9999, text[:30]
    assert await embedder.embed_documents([]) == []


async def test_local_embed_query_matches_documents_api(embedder: LocalOnnxEmbedder) -> None:
    query = await embedder.embed_query("What license is Acme Deploy released under?")
    (document,) = await embedder.embed_documents(["What license is Acme Deploy released under?"])
    assert len(query) == 384
    assert _cosine(query, document) > 0.9999


async def test_local_missing_model_file_is_a_clear_error(tmp_path: Any) -> None:
    embedder = LocalOnnxEmbedder(model_path=tmp_path / "nope.onnx")
    with pytest.raises(EmbeddingError, match=r"nope\.onnx does not exist"):
        await embedder.embed_query("hello")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx graph")
    with pytest.raises(EmbeddingError, match=r"broken\.onnx could not be loaded"):
        await LocalOnnxEmbedder(model_path=broken).warm_up()


# --- OpenAI embedder against a local server --------------------------------------------------


@dataclass
class EmbeddingsServer:
    """Speaks POST /v1/embeddings like the OpenAI API; can fail the next N requests with 500."""

    dimension: int = 8
    fail_next: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    auth_headers: list[str] = field(default_factory=list)
    url: str = ""

    def vector(self, text: str) -> list[float]:
        digest = hashlib.sha256(text.encode()).digest()
        return [(byte - 128) / 128 for byte in digest[: self.dimension]]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        self.auth_headers.append(request.headers.get("Authorization", ""))
        if self.fail_next:
            self.fail_next -= 1
            self.statuses.append(500)
            error = {"message": "The server had an error", "type": "server_error", "code": None}
            return web.json_response({"error": error}, status=500, headers={"retry-after-ms": "10"})
        inputs = body["input"]
        if any(not isinstance(text, str) or text == "" for text in inputs):
            self.statuses.append(400)
            error = {"message": "'$.input' is invalid.", "type": "invalid_request_error"}
            return web.json_response({"error": error}, status=400)
        data = [
            {"object": "embedding", "index": i, "embedding": self.vector(text)}
            for i, text in enumerate(inputs)
        ]
        self.statuses.append(200)
        usage = {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}
        # Out of order on purpose: clients must use `index`.
        reply = {"object": "list", "data": data[::-1], "model": body["model"], "usage": usage}
        return web.json_response(reply)


@pytest.fixture
async def embeddings_server() -> AsyncIterator[EmbeddingsServer]:
    server = EmbeddingsServer()
    app = web.Application()
    app.router.add_post("/v1/embeddings", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.url = f"http://127.0.0.1:{port}/v1"
    yield server
    await runner.cleanup()


@pytest.fixture
def openai_settings(make_plain_settings: MakeSettings, embeddings_server: EmbeddingsServer) -> MakeSettings:
    """Settings for the OpenAI embedder pointed at the local server (isolated from env/.env)."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "embedding_provider": "openai",
            "openai_api_key": SecretStr("sk-test-embeddings"),
            "openai_base_url": embeddings_server.url,
            "embedding_model": "acme-embed-8",  # unknown to the client: dimension learnt
        }
        values.update(overrides)
        return make_plain_settings(**values)

    return make


@pytest.mark.parametrize(("count", "batch"), [(10, 4), (8, 8), (1, 32)])
async def test_openai_batches_and_keeps_order(
    embeddings_server: EmbeddingsServer, openai_settings: MakeSettings, count: int, batch: int
) -> None:
    embedder = make_embedder(openai_settings(embedding_batch_size=batch))
    assert isinstance(embedder, OpenAIEmbedder)
    texts = [f"passage number {i}" for i in range(count)]
    vectors = await embedder.embed_documents(texts)
    await embedder.aclose()
    assert len(embeddings_server.requests) == math.ceil(count / batch)
    sizes = [len(request["input"]) for request in embeddings_server.requests]
    assert sizes == [min(batch, count - start) for start in range(0, count, batch)]
    assert all(r["model"] == "acme-embed-8" for r in embeddings_server.requests)
    assert embeddings_server.auth_headers[0] == "Bearer sk-test-embeddings"
    for text, vector in zip(texts, vectors, strict=True):
        expected = np.array(embeddings_server.vector(text))
        assert np.allclose(vector, expected / np.linalg.norm(expected), atol=1e-6)
        assert math.isclose(float(np.linalg.norm(vector)), 1.0, abs_tol=1e-5)


async def test_openai_retries_a_server_error(
    embeddings_server: EmbeddingsServer, openai_settings: MakeSettings
) -> None:
    embeddings_server.fail_next = 1
    embedder = make_embedder(openai_settings())
    vector = await embedder.embed_query("how do I configure the region?")
    assert embeddings_server.statuses == [500, 200]
    assert len(vector) == embeddings_server.dimension


async def test_openai_learns_dimension_of_unknown_model(
    embeddings_server: EmbeddingsServer, openai_settings: MakeSettings
) -> None:
    embedder = make_embedder(openai_settings(embedding_model="my-local-model"))
    assert isinstance(embedder, OpenAIEmbedder)
    assert embedder.dimension == 0 and embedder.model_id == "openai/my-local-model"
    await embedder.warm_up()
    assert embedder.dimension == embeddings_server.dimension
    assert await embedder.embed_documents(["", "   "])  # empty strings are sent as a space, not refused


async def test_openai_persistent_failure_is_a_clear_error(embeddings_server: EmbeddingsServer) -> None:
    embeddings_server.fail_next = 10
    embedder = OpenAIEmbedder(base_url=embeddings_server.url, api_key="sk-x", max_retries=1)
    with pytest.raises(EmbeddingError, match=r"HTTP 500.*text-embedding-3-small"):
        await embedder.embed_query("hello")
    assert embeddings_server.statuses == [500, 500]


async def test_openai_known_model_dimension_mismatch_is_reported(
    embeddings_server: EmbeddingsServer, openai_settings: MakeSettings
) -> None:
    embedder = make_embedder(openai_settings(embedding_model="text-embedding-3-small"))
    assert embedder.dimension == 1536
    with pytest.raises(EmbeddingError, match="returned 8-d vectors, expected 1536"):
        await embedder.embed_query("hello")


def test_make_embedder_choices(make_plain_settings: MakeSettings) -> None:
    local = make_embedder(make_plain_settings(embedding_batch_size=7))
    assert isinstance(local, LocalOnnxEmbedder) and local.batch_size == 7
    with pytest.raises(ConfigError, match="EMBEDDING_MODEL"):
        make_embedder(make_plain_settings(embedding_model="bge-large"))
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        make_embedder(make_plain_settings(embedding_provider="openai"))
