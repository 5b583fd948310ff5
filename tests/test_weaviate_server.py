"""The embedded Weaviate server: starts the real binary, reports readiness, stops cleanly."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import aiohttp
import pytest

from configs.config import DEFAULT_WEAVIATE_BINARY
from data.errors import WeaviateServerError
from data.weaviate_server import EmbeddedWeaviate


async def _get_json(url: str, key: str | None = None) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def test_session_server_is_the_real_weaviate(weaviate_server: EmbeddedWeaviate) -> None:
    status, meta = await _get_json(
        f"{weaviate_server.url}/v1/meta", weaviate_server.api_key.get_secret_value()
    )
    assert status == 200
    assert meta["version"] == "1.39.3"
    # Its gRPC port listens on every interface, so anonymous requests are refused.
    status, _ = await _get_json(f"{weaviate_server.url}/v1/meta")
    assert status == 401
    status, _ = await _get_json(f"{weaviate_server.url}/v1/meta", "wrong-key")
    assert status == 401
    assert weaviate_server.startup_seconds is not None and weaviate_server.startup_seconds > 0
    assert weaviate_server.log_path.is_file()


async def test_second_server_runs_alongside_and_stops(
    weaviate_server: EmbeddedWeaviate, tmp_path: Path
) -> None:
    server = EmbeddedWeaviate(DEFAULT_WEAVIATE_BINARY, tmp_path / "second")
    async with server:
        assert server.running
        assert {server.http_port, server.grpc_port}.isdisjoint(
            {weaviate_server.http_port, weaviate_server.grpc_port}
        )
        status, _ = await _get_json(f"{server.url}/v1/.well-known/ready")
        assert status == 200
        pid = server.pid
        assert pid is not None
    assert not server.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the process is gone (and reaped)
    # The port is released: binding it works again.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", server.http_port))
    # The session server was not disturbed.
    status, _ = await _get_json(f"{weaviate_server.url}/v1/.well-known/ready")
    assert status == 200
    # Its data directory persists (the embedded default keeps its index between runs).
    assert any((tmp_path / "second").iterdir())


async def test_missing_binary_names_path_and_build_command(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-weaviate"
    with pytest.raises(WeaviateServerError) as caught:
        await EmbeddedWeaviate(missing, tmp_path / "data").start()
    assert str(missing) in str(caught.value)
    assert "make weaviate" in str(caught.value)


async def test_port_in_use_is_reported_before_starting(
    weaviate_server: EmbeddedWeaviate, tmp_path: Path
) -> None:
    # Another server already answers on that port: it must not be mistaken for ours.
    server = EmbeddedWeaviate(
        DEFAULT_WEAVIATE_BINARY, tmp_path / "clash", http_port=weaviate_server.http_port
    )
    with pytest.raises(WeaviateServerError, match=f"Port {weaviate_server.http_port} .* already in use"):
        await server.start()
    assert not server.running


async def test_server_that_dies_at_startup_reports_its_log(tmp_path: Path) -> None:
    # The real binary cannot create its raft directory (a file is in the way) and exits.
    data_dir = tmp_path / "broken"
    data_dir.mkdir()
    (data_dir / "raft").write_text("not a directory")
    server = EmbeddedWeaviate(DEFAULT_WEAVIATE_BINARY, data_dir, startup_timeout=60)
    with pytest.raises(WeaviateServerError) as caught:
        await server.start()
    message = str(caught.value)
    assert "exited with code" in message
    assert f"Last lines of {server.log_path}" in message and "raft" in message
    assert "make weaviate" in message
    assert not server.running


async def test_startup_timeout_stops_the_process(tmp_path: Path) -> None:
    server = EmbeddedWeaviate(DEFAULT_WEAVIATE_BINARY, tmp_path / "slow", startup_timeout=0.01)
    with pytest.raises(WeaviateServerError, match="not ready after"):
        await server.start()
    assert not server.running
