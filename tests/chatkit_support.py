"""`POST /chatkit` over a real socket: the `serve` HTTP app around a real `ChatService` on SQLite.

Tests that only send requests which never reach the agent pass an unconnected vector store;
tests whose requests are answered pass a connected one (the session's Weaviate).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from pydantic import SecretStr

from configs.config import Settings
from data.database import Database
from data.embeddings import Embedder
from data.vector_store import VectorStore
from services.chatkit_service import ChatService, create_chat_service
from services.rag import Retriever
from services.runtime import ComponentHealth
from services.server.http_app import bound_port, build_http_app, start_http_server

TOKEN = "test-chatkit-token"


@dataclass
class ChatKitHttp:
    """The running app's base URL, its chat service, and a client session."""

    url: str
    chat: ChatService
    http: aiohttp.ClientSession

    async def post(
        self, request: dict[str, Any], *, user: str | None = "alice", token: str | None = TOKEN
    ) -> tuple[int, Any]:
        """Send one ChatKit request as `user`; (status, parsed JSON or the list of SSE events)."""
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if user is not None:
            headers["X-User-Id"] = user
        async with self.http.post(f"{self.url}/chatkit", json=request, headers=headers) as response:
            body = await response.read()
            if response.content_type == "text/event-stream":
                lines = body.decode().splitlines()
                return response.status, [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
            return response.status, json.loads(body) if body else None


@asynccontextmanager
async def chatkit_http(
    settings: Settings, store: VectorStore, embedder: Embedder, *, token: str | None = TOKEN
) -> AsyncIterator[ChatKitHttp]:
    """The HTTP app (`/chatkit` with `token`, None = not configured) on a free port of 127.0.0.1."""
    database = Database(settings.database_dsn)
    await database.create()
    chat = await create_chat_service(settings, Retriever(settings, store, embedder), database)

    async def healthy() -> dict[str, ComponentHealth]:
        return {"database": ComponentHealth(True, "connected")}

    app = build_http_app(
        chatkit_server=chat.server,
        health_checks=healthy,
        chatkit_token=SecretStr(token) if token is not None else None,
    )
    runner = await start_http_server(app, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http:
            yield ChatKitHttp(f"http://127.0.0.1:{bound_port(runner)}", chat, http)
    finally:
        await runner.cleanup()
        await database.dispose()


def create_request(text: str) -> dict[str, Any]:
    """`threads.create` with one text message, as ChatKit's front end sends it."""
    return {
        "type": "threads.create",
        "params": {
            "input": {
                "content": [{"type": "input_text", "text": text}],
                "attachments": [],
                "inference_options": {},
            }
        },
    }


def add_message_request(thread_id: str, text: str) -> dict[str, Any]:
    request = create_request(text)
    return {"type": "threads.add_user_message", "params": {**request["params"], "thread_id": thread_id}}
