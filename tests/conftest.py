"""Shared fixtures: one real Weaviate server per test session, isolated settings, the real embedder.

Nothing here is faked: the server is the official Weaviate binary built by `make weaviate`.
When it is missing, every test that needs it fails (not skips) with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from configs.config import DEFAULT_WEAVIATE_BINARY, Settings
from data.weaviate_server import EmbeddedWeaviate, WeaviateServerError

if TYPE_CHECKING:
    from data.embeddings import LocalOnnxEmbedder

MakeSettings = Callable[..., Settings]


@pytest.fixture(scope="session")
async def weaviate_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedWeaviate]:
    """A real Weaviate on free ports in a temp dir, shared by the whole session.

    It requires `api_key` (Weaviate's gRPC port listens on all interfaces); `make_settings` sets it.
    """
    failures: list[str] = []
    for _attempt in range(3):  # a port taken between choosing and binding it: try fresh ports
        server = EmbeddedWeaviate(
            DEFAULT_WEAVIATE_BINARY, tmp_path_factory.mktemp("weaviate"), startup_timeout=120
        )
        try:
            await server.start()
        except WeaviateServerError as exc:
            if not DEFAULT_WEAVIATE_BINARY.exists():
                raise
            failures.append(str(exc))
            continue
        try:
            yield server
        finally:
            await server.stop()
        return
    pytest.fail("The test Weaviate server did not start:\n" + "\n---\n".join(failures))


def _clear_settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every variable Settings would read (names are case-insensitive)."""
    names = {name.lower() for name in Settings.model_fields}
    for key in list(os.environ):
        if key.lower() in names:
            monkeypatch.delenv(key, raising=False)


@pytest.fixture
def make_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, weaviate_server: EmbeddedWeaviate
) -> MakeSettings:
    """Build Settings isolated from env/.env, pointed at the session Weaviate with a unique collection."""
    _clear_settings_env(monkeypatch)

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path,
            "weaviate_url": weaviate_server.url,
            "weaviate_grpc_url": weaviate_server.grpc_url,
            "weaviate_api_key": weaviate_server.api_key,
            "weaviate_collection": "T" + uuid.uuid4().hex,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


@pytest.fixture
def settings(make_settings: MakeSettings) -> Settings:
    """Default isolated settings (see `make_settings`)."""
    return make_settings()


@pytest.fixture(scope="session")
def embedder() -> LocalOnnxEmbedder:
    """The real local ONNX embedder (loaded once per session)."""
    from data.embeddings import LocalOnnxEmbedder

    return LocalOnnxEmbedder()
