"""Runs the real `SlackBot` (Bolt `AsyncApp`) over real sockets against `FakeSlack`.

Answers come from the scripted `AskService` of tests/scripted_ask.py, so the adapter's behaviour
is tested without Weaviate or a model; the end-to-end tests use the real `ChatService`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
import scripted_ask
from aiohttp import web
from fake_slack import FakeSlack, SlackSender

from configs.config import Settings
from data.database import Database
from data.embeddings import Embedder
from data.vector_store import WeaviateVectorStore
from services.chat.contract import Answer, AskEvent, Source, Status, TextDelta
from services.indexer import Indexer
from services.slack.bot import ClaimEvent, SlackBot
from services.spaces.directory import Spaces

SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test-token"
APP_TOKEN = "xapp-test-token"

SOURCES = [
    Source(
        1,
        "Install guide",
        "https://docs.example.com/install?x=1&y=2",
        "https://docs.example.com/install?x=1&y=2",
    ),
    Source(2, "Operations", "/srv/docs/ops.md", None, "Backups > Restore"),
]


def answer_script(
    text: str, *, sources: list[Source] | None = None, answer_id: str = "ans-1"
) -> list[AskEvent]:
    """Status, the text in small deltas, then the answer (as the chatkit service yields them)."""
    pieces = [text[i : i + 40] for i in range(0, len(text), 40)]
    return [
        Status("Searching the docs…"),
        *[TextDelta(piece) for piece in pieces],
        Answer(text, sources if sources is not None else SOURCES, answer_id),
    ]


def you_asked(conversation_key: str, text: str) -> list[AskEvent]:
    """The Slack tests' default script: the question echoed in markdown, citing `SOURCES`."""
    return answer_script(f"You asked: **{text}**. See [1] and [2].")


# The one scripted AskService, answering with `you_asked` by default, at a streaming model's pace.
ScriptedAsk = partial(scripted_ask.ScriptedAsk, script=you_asked, delay=0.01)


class MemoryClaims:
    """In-process `claim_event` with a TTL (the database one is tested in the end-to-end tests)."""

    def __init__(self) -> None:
        self.expiry: dict[str, float] = {}

    async def __call__(self, key: str, ttl_seconds: int) -> bool:
        now = time.monotonic()
        if self.expiry.get(key, 0.0) > now:
            return False
        self.expiry[key] = now + ttl_seconds
        return True


@pytest.fixture(name="indexer")
def indexer_fixture(make_plain_settings: Callable[..., Settings], embedder: Embedder) -> Indexer:
    """A real Indexer, never started (no Weaviate behind it): these tests are about answering."""
    settings = make_plain_settings()
    return Indexer(settings, WeaviateVectorStore(settings), embedder)


@dataclass
class BotHarness:
    fake: FakeSlack
    bot: SlackBot
    sender: SlackSender
    settings: Settings


@asynccontextmanager
async def running_bot(
    make_settings: Callable[..., Settings],
    chat: Any,
    indexer: Indexer,
    *,
    claim_event: ClaimEvent | None = None,
    spaces: Spaces | None = None,
    **overrides: Any,
) -> AsyncIterator[BotHarness]:
    """FakeSlack + the bot's `/slack/events` on an aiohttp server on 127.0.0.1 + a signing sender.

    Without `spaces`, the bot gets its own on a fresh SQLite database (SOURCES_FILE, if set, maps them).
    """
    fake = FakeSlack()
    await fake.start()
    values: dict[str, Any] = {
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": fake.api_url,
    }
    values.update(overrides)
    settings = make_settings(**values)
    database = None
    if spaces is None:
        database = Database(settings.database_dsn)
        await database.create()
        spaces = Spaces(settings, database.spaces)
    claims = claim_event or MemoryClaims()
    bot = SlackBot(settings, chat, indexer, claims, spaces, reindex_progress_interval=0.2)
    app = web.Application()
    app.router.add_post("/slack/events", bot.http_handler())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    sender = SlackSender(f"http://127.0.0.1:{port}/slack/events", SIGNING_SECRET)
    try:
        yield BotHarness(fake, bot, sender, settings)
    finally:
        await sender.close()
        await bot.close()
        await runner.cleanup()
        await fake.stop()
        if database is not None:
            await database.dispose()


def stream_text(calls: list[Any]) -> str:
    """The markdown of one streamed message (chunks and markdown_text of its calls, in order)."""
    text = ""
    for call in calls:
        text += "".join(chunk.get("text", "") for chunk in call.args.get("chunks") or [])
        text += call.args.get("markdown_text") or ""
    return text


def block_texts(blocks: list[dict[str, Any]]) -> list[str]:
    return [block["text"]["text"] for block in blocks if block.get("type") == "section"]
