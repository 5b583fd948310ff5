"""`serve`: the HTTP server with /healthz, /metrics and the ChatKit protocol, over a real socket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import aiohttp
from chatkit.server import ChatKitServer
from chatkit.types import Page, Thread, ThreadCreatedEvent
from docs_corpus import build_corpus
from pydantic import SecretStr

from configs.config import Settings
from services.runtime import open_runtime
from services.server.http_app import encode_sse
from services.server.serve import run_server


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[str]:
    """`serve` in a task on a free port; yields its base URL and stops it afterwards."""
    stop = asyncio.Event()
    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(run_server(settings, stop=stop, started=started))
    try:
        yield f"http://127.0.0.1:{await asyncio.wait_for(started, 120)}"
    finally:
        stop.set()
        await asyncio.wait_for(server, 60)


async def wait_for_documents(settings: Settings, count: int) -> None:
    """Poll the serving index until it holds `count` documents (indexing runs in the background)."""
    stats = None
    for _ in range(240):
        async with open_runtime(settings) as runtime:
            stats = await runtime.store.stats()
        if stats is not None and stats.documents == count:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"expected {count} documents, the index has {stats}")


async def test_serve_indexes_on_first_start_and_answers_over_http(
    make_settings: object, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    build_corpus(docs)
    settings: Settings = make_settings(  # type: ignore[operator]
        docs_paths=[str(docs)], http_port=0, chatkit_api_token=SecretStr("s3cret")
    )
    as_web_app = {"Authorization": "Bearer s3cret", "X-User-Id": "web-user-1"}
    async with serving(settings) as base:
        async with aiohttp.ClientSession(headers=as_web_app) as http:
            async with http.get(f"{base}/healthz") as response:
                health = await response.json()
                assert response.status == 200 and health["status"] == "ok", health

            # The empty index is filled in the background on first start.
            await wait_for_documents(settings, 6)

            request = {
                "type": "threads.create",
                "params": {
                    "input": {
                        "content": [
                            {"type": "input_text", "text": "What license is Acme Deploy released under?"}
                        ],
                        "attachments": [],
                        "inference_options": {},
                    }
                },
            }
            async with http.post(f"{base}/chatkit", json=request) as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/event-stream")
                body = (await response.read()).decode()
            events = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]
            types = [event["type"] for event in events]
            assert types[0] == "thread.created" and "thread.item.done" in types
            done = [
                e["item"]
                for e in events
                if e["type"] == "thread.item.done" and e["item"]["type"] == "assistant_message"
            ]
            assert "Apache License 2.0" in done[-1]["content"][0]["text"]

            malformed = {"Content-Type": "application/json"}
            async with http.post(f"{base}/chatkit", data=b"{not json", headers=malformed) as response:
                assert response.status == 400

            async with http.get(f"{base}/metrics") as response:
                metrics = await response.text()
                assert response.status == 200 and "docsbot_asks_total" in metrics


async def test_chatkit_is_off_by_default_and_needs_the_bearer_token(make_settings: object) -> None:
    request = {"type": "threads.list", "params": {}}
    settings: Settings = make_settings(http_port=0)  # type: ignore[operator]
    async with serving(settings) as base, aiohttp.ClientSession() as http:
        async with http.post(f"{base}/chatkit", json=request, headers={"X-User-Id": "u"}) as response:
            assert response.status == 403 and "CHATKIT_API_TOKEN" in (await response.json())["error"]

    settings = make_settings(http_port=0, chatkit_api_token=SecretStr("s3cret"))  # type: ignore[operator]
    async with serving(settings) as base, aiohttp.ClientSession() as http:
        url = f"{base}/chatkit"
        for authorization in (None, "s3cret", "Basic s3cret", "Bearer s3cre", "Bearer s3cret!"):
            headers = {"X-User-Id": "u"} | ({"Authorization": authorization} if authorization else {})
            async with http.post(url, json=request, headers=headers) as response:
                assert response.status == 401, authorization
                assert "s3cret" not in await response.text()
        for authorization in ("Bearer s3cret", "bearer s3cret"):
            headers = {"Authorization": authorization, "X-User-Id": "u"}
            async with http.post(url, json=request, headers=headers) as response:
                assert response.status == 200


def test_events_are_sent_as_chatkit_sends_them() -> None:
    """POST /chatkit writes events itself (to answer 4xx before a stream starts): byte for byte
    as chatkit's own `process` would."""
    event = ThreadCreatedEvent(thread=Thread(id="thr_1", created_at=datetime(2025, 6, 1), items=Page()))
    assert encode_sse(event) == b"data: " + ChatKitServer._serialize(None, event) + b"\n\n"  # type: ignore[arg-type]


async def test_scheduled_refresh_picks_up_new_documents(make_settings: object, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "first.md").write_text("# Parking\n\nVisitors park in the north garage, level 2.\n")
    settings: Settings = make_settings(  # type: ignore[operator]
        docs_paths=[str(docs)], http_port=0, reindex_interval_minutes=0.01
    )
    async with serving(settings):
        (docs / "second.md").write_text("# Lunch\n\nThe canteen serves lunch from noon to two.\n")
        await wait_for_documents(settings, 2)
