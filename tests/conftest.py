"""Shared fixtures: isolated settings, one real Weaviate server per test session, the real embedder.

Nothing here is faked: the server is the official Weaviate binary built by `make weaviate`.
Tests that never touch Weaviate take `plain_settings` / `make_plain_settings` and run without
the binary; tests that need it take `settings` / `make_settings` (or `weaviate_server`), and
when it is missing they fail (not skip) with the reason.

`DOCS_BOT_TEST_WEAVIATE_BINARY=/nonexistent` points the whole session at another binary, to check
which tests still pass on a machine without Weaviate while a built one is on this disk.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import configs.config
from configs.config import Settings
from data.errors import WeaviateServerError
from data.weaviate_server import EmbeddedWeaviate, free_port

if TYPE_CHECKING:
    from data.embeddings import LocalOnnxEmbedder

MakeSettings = Callable[..., Settings]

if override := os.environ.get("DOCS_BOT_TEST_WEAVIATE_BINARY"):
    # Before any test module is imported, so the ones that start their own server see it too.
    configs.config.DEFAULT_WEAVIATE_BINARY = Path(override)
WEAVIATE_BINARY = configs.config.DEFAULT_WEAVIATE_BINARY


@pytest.fixture(scope="session")
async def weaviate_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedWeaviate]:
    """A real Weaviate on free ports in a temp dir, shared by the whole session.

    It requires `api_key` (Weaviate's gRPC port listens on all interfaces); `make_settings` sets it.
    """
    failures: list[str] = []
    for _attempt in range(3):  # a port taken between choosing and binding it: try fresh ports
        server = EmbeddedWeaviate(WEAVIATE_BINARY, tmp_path_factory.mktemp("weaviate"), startup_timeout=120)
        try:
            await server.start()
        except WeaviateServerError as exc:
            if not WEAVIATE_BINARY.exists():
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
def make_plain_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MakeSettings:
    """Build Settings isolated from env/.env with a temp data dir, and no Weaviate behind them.

    `weaviate_url` names a port nothing listens on: a test that should have asked for
    `make_settings` fails with "Cannot reach Weaviate at ..." instead of starting a server.
    """
    _clear_settings_env(monkeypatch)
    unreachable = f"http://127.0.0.1:{free_port()}"

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path,
            "weaviate_url": unreachable,
            "weaviate_binary": WEAVIATE_BINARY,
            "weaviate_collection": "T" + uuid.uuid4().hex,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


@pytest.fixture
def plain_settings(make_plain_settings: MakeSettings) -> Settings:
    """Default settings without Weaviate (see `make_plain_settings`)."""
    return make_plain_settings()


@pytest.fixture
def make_settings(make_plain_settings: MakeSettings, weaviate_server: EmbeddedWeaviate) -> MakeSettings:
    """Like `make_plain_settings`, pointed at the session Weaviate with a unique collection."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "weaviate_url": weaviate_server.url,
            "weaviate_grpc_url": weaviate_server.grpc_url,
            "weaviate_api_key": weaviate_server.api_key,
        }
        values.update(overrides)
        return make_plain_settings(**values)

    return make


@pytest.fixture
def settings(make_settings: MakeSettings) -> Settings:
    """Default settings on the session Weaviate (see `make_settings`)."""
    return make_settings()


@pytest.fixture(scope="session")
def embedder() -> LocalOnnxEmbedder:
    """The real local ONNX embedder (loaded once per session)."""
    from data.embeddings import LocalOnnxEmbedder

    return LocalOnnxEmbedder()
