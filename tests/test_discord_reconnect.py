"""Discord at start-up under `serve`: a network failure is retried, a rejected token is final, and
`/healthz` shows which (over real sockets: `serve`'s HTTP server, the local Discord of
`tests/fake_discord.py`, and a port where nothing listens for "Discord is unreachable").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import discord.http
import pytest
import yarl
from aiohttp import web
from discord.gateway import DiscordWebSocket
from fake_discord import FakeDiscord, RecordedRequest, _json

from configs.config import Settings
from data.weaviate_server import free_port
from services.server.serve import run_server

MakeSettings = Callable[..., Settings]
COMMANDS_SYNC = "/applications/{}/commands"


class RevokedTokenDiscord(FakeDiscord):
    """A Discord that refuses every token (HTTP 401 at login), as it does for a reset bot token."""

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        self.requests.append(RecordedRequest(request.method, path, {}, None, time.perf_counter()))
        return _json({"message": "401: Unauthorized", "code": 0}, status=401)


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    """`serve` in a task on a free port; its base URL and a client session."""
    stop = asyncio.Event()
    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(run_server(settings, stop=stop, started=started))
    try:
        port = await asyncio.wait_for(started, 120)
        async with aiohttp.ClientSession() as http:
            yield f"http://127.0.0.1:{port}", http
    finally:
        stop.set()
        await asyncio.wait_for(server, 60)


async def health_when(
    http: aiohttp.ClientSession, base: str, condition: Callable[[dict[str, Any]], bool], within: float = 15
) -> tuple[int, dict[str, Any]]:
    """Poll /healthz until `condition(body)` holds."""
    deadline = time.monotonic() + within
    while True:
        async with http.get(f"{base}/healthz") as response:
            status, body = response.status, await response.json()
        if condition(body):
            return status, body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.1)


def discord_state(body: dict[str, Any]) -> str | None:
    return body.get("components", {}).get("discord", {}).get("state")


@pytest.fixture
def discord_settings(make_settings: MakeSettings, tmp_path: Path) -> Callable[[str], Settings]:
    (tmp_path / "docs").mkdir()
    return lambda token: make_settings(discord_token=token, http_port=0, docs_paths=[str(tmp_path / "docs")])


async def test_network_failure_at_login_is_retried(
    discord_settings: Callable[[str], Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeDiscord()
    await fake.start()
    monkeypatch.setattr(discord.http.Route, "BASE", f"http://127.0.0.1:{free_port()}/api/v10")  # refused
    monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url))
    try:
        async with serving(discord_settings("smoke-test-token")) as (base, http):
            status, body = await health_when(http, base, lambda b: discord_state(b) == "reconnecting")
            assert status == 503 and body["checks"]["discord"] is False
            assert "cannot reach Discord" in body["components"]["discord"]["detail"]

            monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)  # the network is back
            await fake.wait_for_request("PUT", COMMANDS_SYNC.format(fake.application_id), within=15)
            status, body = await health_when(http, base, lambda b: discord_state(b) == "connected")
            assert status == 200 and body["components"]["discord"]["detail"] is None, body
            async with http.get(f"{base}/metrics") as response:
                assert 'docsbot_adapter_up{adapter="discord"} 1.0' in await response.text()
    finally:
        await fake.stop()


async def test_rejected_token_is_final_and_shown_in_healthz(
    discord_settings: Callable[[str], Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = RevokedTokenDiscord()
    await fake.start()
    monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
    monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url))
    try:
        async with serving(discord_settings("revoked-token")) as (base, http):
            status, body = await health_when(http, base, lambda b: discord_state(b) == "failed")
            assert status == 503 and body["status"] == "degraded"
            assert "Discord rejected DISCORD_TOKEN" in body["components"]["discord"]["detail"]
            assert body["checks"]["vector_store"] and body["checks"]["database"]  # the rest still works
            await asyncio.sleep(2.5)  # longer than the first retry delays: none may come
            assert [r.path for r in fake.requests] == ["/users/@me"]
            assert "revoked-token" not in str(body)
    finally:
        await fake.stop()
