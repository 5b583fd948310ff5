"""`/admin` over a real aiohttp server on 127.0.0.1: off by default, refused without the token or
the password, and every page rendered from the seeded database."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from insights_seed import NOW, open_seeded
from pydantic import SecretStr

from data.database import Database
from data.embeddings import LocalOnnxEmbedder
from services.insights.admin import COOKIE, OFF_MESSAGE, add_admin_routes, session_value
from services.insights.config import InsightsConfig
from services.insights.service import InsightsService
from services.server.http_app import bound_port, start_http_server

TOKEN = "s3cret-admin-token"


@pytest.fixture
async def seeded(tmp_path: Path) -> AsyncIterator[Database]:
    async with open_seeded(tmp_path) as database:
        yield database


@asynccontextmanager
async def admin_server(
    database: Database, embedder: LocalOnnxEmbedder, config: InsightsConfig
) -> AsyncIterator[str]:
    """The admin routes on their own app, listening on a free port; yields the base URL."""
    app = web.Application()
    add_admin_routes(app, InsightsService(database, embedder, config, clock=lambda: NOW))
    runner = await start_http_server(app, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{bound_port(runner)}"
    finally:
        await runner.cleanup()


async def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, allow_redirects=False, headers=headers) as response,
    ):
        return response.status, await response.text(), dict(response.headers)


async def test_admin_is_off_unless_a_token_or_password_is_set(
    seeded: Database, embedder: LocalOnnxEmbedder
) -> None:
    async with admin_server(seeded, embedder, InsightsConfig()) as base:
        for path in ("/admin", "/admin/gaps", "/admin/conversations/thr_pw1"):
            status, body, _ = await get(base + path, headers={"Authorization": "Bearer anything"})
            assert (status, body) == (404, OFF_MESSAGE)


async def test_admin_refuses_without_the_token(seeded: Database, embedder: LocalOnnxEmbedder) -> None:
    config = InsightsConfig(admin_token=SecretStr(TOKEN))
    async with admin_server(seeded, embedder, config) as base:
        for path in (
            "/admin",
            "/admin/gaps",
            "/admin/gaps/q_pw1",
            "/admin/conversations/thr_pw1",
            "/admin/sources",
        ):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Cookie": f"{COOKIE}=forged"}):
                status, body, response_headers = await get(base + path, headers=headers)
                assert status == 401, (path, headers)
                assert "reset my password" not in body and "Admin token" in body  # the sign-in form only
                assert response_headers["Cache-Control"] == "no-store"
                assert "WWW-Authenticate" not in response_headers
        status, body, _ = await get(base + "/admin", headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and 'id="questions">10<' in body


async def test_signing_in_sets_a_cookie_that_is_not_the_token(
    seeded: Database, embedder: LocalOnnxEmbedder
) -> None:
    config = InsightsConfig(admin_token=SecretStr(TOKEN))
    jar = aiohttp.CookieJar(unsafe=True)  # the server is an IP address (127.0.0.1)
    async with (
        admin_server(seeded, embedder, config) as base,
        aiohttp.ClientSession(cookie_jar=jar) as session,
    ):
        async with session.post(base + "/admin/login", data={"token": "nope", "next": "/admin"}) as wrong:
            assert wrong.status == 401 and "not the admin token" in await wrong.text()
        form = {"token": TOKEN, "next": "/admin/gaps?since=30d"}
        async with session.post(base + "/admin/login", data=form, allow_redirects=False) as signed_in:
            assert signed_in.status == 303 and signed_in.headers["Location"] == "/admin/gaps?since=30d"
            cookie = signed_in.cookies[COOKIE]
            assert cookie.value == session_value(TOKEN) != TOKEN
            assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/admin"
        async with session.get(base + "/admin/gaps") as page:
            assert page.status == 200 and "How do I reset my password?" in await page.text()
        evil = {"token": TOKEN, "next": "//evil.example.com/"}
        async with session.post(base + "/admin/login", data=evil, allow_redirects=False) as redirected:
            assert redirected.headers["Location"] == "/admin"  # never a redirect off the site


async def test_basic_auth_when_a_password_is_set(seeded: Database, embedder: LocalOnnxEmbedder) -> None:
    config = InsightsConfig(admin_username="ops", admin_password=SecretStr("pass word"))
    async with admin_server(seeded, embedder, config) as base:
        status, _, headers = await get(base + "/admin/feedback")
        assert status == 401 and headers["WWW-Authenticate"].startswith('Basic realm="docs bot admin"')
        for user, password in (("ops", "wrong"), ("admin", "pass word")):
            auth = base64.b64encode(f"{user}:{password}".encode()).decode()
            assert (await get(base + "/admin/feedback", headers={"Authorization": f"Basic {auth}"}))[0] == 401
        right = {"Authorization": aiohttp.encode_basic_auth("ops", "pass word")}
        status, body, _ = await get(base + "/admin/feedback", headers=right)
        assert status == 200 and "docs/handbook.md" in body


async def test_every_page_renders_the_seeded_data(seeded: Database, embedder: LocalOnnxEmbedder) -> None:
    config = InsightsConfig(admin_token=SecretStr(TOKEN))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with admin_server(seeded, embedder, config) as base:
        status, overview, headers = await get(base + "/admin", headers=auth)
        assert status == 200 and "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert '<svg class="chart"' in overview and "2.50s" in overview and "timeout" in overview

        status, gaps, _ = await get(base + "/admin/gaps", headers=auth)
        assert status == 200
        assert gaps.index("How do I reset my password?") < gaps.index("VPN") < gaps.index("park my car")

        status, gap, _ = await get(base + "/admin/gaps/q_pw1", headers=auth)
        assert status == 200 and gap.count('class="panel turn"') == 3
        for thread in ("thr_pw1", "thr_pw2", "thr_pw3"):
            assert f'href="/admin/conversations/{thread}"' in gap

        status, conversation, _ = await get(base + "/admin/conversations/thr_pw3", headers=auth)
        assert status == 200 and "I forgot my password" in conversation and "docs/accounts.md" in conversation

        status, feedback, _ = await get(base + "/admin/feedback?channel=C1", headers=auth)
        assert status == 200 and "docs/accounts.md" in feedback and "docs/releases.md" not in feedback

        status, sources, _ = await get(base + "/admin/sources", headers=auth)
        assert status == 200 and "No index run recorded yet" in sources

        assert (await get(base + "/admin/gaps/q_unknown", headers=auth))[0] == 404
        assert (await get(base + "/admin/conversations/thr_unknown", headers=auth))[0] == 404
        status, body, _ = await get(base + "/admin?since=yesterday", headers=auth)
        assert status == 400 and "7d" in body


async def test_user_ids_show_on_the_pages_only_when_configured(
    seeded: Database, embedder: LocalOnnxEmbedder
) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for show, expected in ((False, False), (True, True)):
        config = InsightsConfig(admin_token=SecretStr(TOKEN), show_user_ids=show)
        async with admin_server(seeded, embedder, config) as base:
            _, gap, _ = await get(base + "/admin/gaps/q_pw1", headers=auth)
            _, feedback, _ = await get(base + "/admin/feedback", headers=auth)
        assert ("· U1 ·" in gap) is expected and ("👎 by U1, U2" in feedback) is expected
