"""End to end: Slack events through the real ChatService, Weaviate, embedder and SQL database.

No language model is configured, so the chat service answers with its offline quoting model
(quotes the best passages with their sources): everything else is the production path.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from database_support import votes_on
from fake_slack import BOT_USER_ID, MEMBER_USER_ID, TEAM_ID, button_click, event_body
from slack_harness import running_bot, stream_text

from configs.config import Settings
from data.database import Database
from data.embeddings import Embedder
from data.vector_store import WeaviateVectorStore
from services.chatkit_service import ChatService, create_chat_service
from services.indexer import Indexer
from services.rag import Retriever
from services.slack.blocks import FEEDBACK_UP

RESTORE_DOC = """# Backups

## Restoring a backup

To restore a backup, stop the server and run `restore.sh` with the snapshot name. Restores take
about ten minutes for a 50 GB snapshot.
"""


def mention(ts: str, text: str) -> dict[str, str]:
    return {
        "type": "app_mention",
        "user": MEMBER_USER_ID,
        "text": f"<@{BOT_USER_ID}> {text}",
        "ts": ts,
        "channel": "C0CHAN",
        "event_ts": ts,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def engine(
    make_settings: Callable[..., Settings], embedder: Embedder, tmp_path: Path
) -> AsyncIterator[tuple[ChatService, Database, Indexer]]:
    """The real runtime pieces on the session Weaviate and a SQLite file, with two documents indexed."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "backups.md").write_text(RESTORE_DOC, encoding="utf-8")
    (docs / "install.md").write_text("# Install\n\nRun `pip install docs-bot` and then `docs-bot serve`.\n")
    settings = make_settings(docs_paths=[str(docs)])
    store = WeaviateVectorStore(settings)
    await store.connect()
    database = Database(settings.database_dsn)
    await database.create()
    indexer = Indexer(settings, store, embedder)
    await indexer.index()
    chat = await create_chat_service(settings, Retriever(settings, store, embedder), database)
    try:
        yield chat, database, indexer
    finally:
        await database.dispose()
        await store.close()


async def test_mention_redelivered_followup_and_feedback_end_to_end(make_settings, engine) -> None:
    chat, database, indexer = engine
    async with running_bot(make_settings, chat, indexer, claim_event=database.claim_event) as h:
        body = event_body(mention("3000.1", "how do I restore a backup?"))
        sent = time.monotonic()
        statuses = await asyncio.gather(*(h.sender.event(body, retry_num=n or None) for n in range(3)))
        assert [status for status, _ in statuses] == [200, 200, 200]
        [done] = await h.fake.wait_for(
            lambda: [s for s in h.fake.streams("3000.1") if s[-1].method == "chat.stopStream"], timeout=60
        )
        first_text = done[0].at - sent
        working = h.fake.calls_to("assistant.threads.setStatus")[0].at - sent
        print(
            f"\nreal ChatService: status after {working * 1000:.0f} ms, text after {first_text * 1000:.0f} ms"
        )
        assert "restore.sh" in stream_text(done)
        sources = " ".join(b["text"]["text"] for b in done[-1].args["blocks"] if b["type"] == "section")
        assert "backups.md" in sources
        await asyncio.sleep(1.0)
        assert len(h.fake.streams("3000.1")) == 1  # the two redeliveries were claimed already (database)
        assert not await database.claim_event(f"slack:event:{body['event_id']}", 60)

        followup = {
            **mention("3000.5", "and how long does it take?"),
            "type": "message",
            "thread_ts": "3000.1",
            "channel_type": "channel",
            "text": "and how long does it take?",
        }
        await h.sender.event(event_body(followup))
        await h.fake.wait_for(
            lambda: len([s for s in h.fake.streams("3000.1") if s[-1].method == "chat.stopStream"]) == 2,
            timeout=60,
        )
        assert await chat.has_conversation(f"slack:{TEAM_ID}:C0CHAN:3000.1")

        button = done[-1].args["blocks"][-1]["elements"][0]
        assert button["action_id"] == FEEDBACK_UP
        click = button_click(
            FEEDBACK_UP,
            button["value"],
            user_id=MEMBER_USER_ID,
            response_url=h.fake.response_url(),
            channel="C0CHAN",
        )
        assert (await h.sender.interaction(click))[0] == 200
        await h.fake.wait_for(lambda: h.fake.responses)
        [vote] = await votes_on(database, button["value"])
        assert vote.positive and vote.user_id == MEMBER_USER_ID and vote.thread_id


async def test_weaviate_unreachable_ends_in_an_error_message_in_the_thread(
    make_plain_settings, embedder
) -> None:
    port = free_port()  # nothing listens here: Weaviate is down
    settings = make_plain_settings(
        weaviate_url=f"http://127.0.0.1:{port}", weaviate_grpc_url=f"127.0.0.1:{free_port()}"
    )
    store = WeaviateVectorStore(settings)
    database = Database(settings.database_dsn)
    await database.create()
    chat = await create_chat_service(settings, Retriever(settings, store, embedder), database)
    indexer = Indexer(settings, store, embedder)
    try:
        async with running_bot(make_plain_settings, chat, indexer, claim_event=database.claim_event) as h:
            await h.sender.event(event_body(mention("3100.1", "how do I restore a backup?")))
            [post] = await h.fake.wait_for(lambda: h.fake.calls_to("chat.postMessage"), timeout=60)
            assert post.args["thread_ts"] == "3100.1"
            assert post.args["text"].startswith(":warning: Sorry, I could not answer")
            assert (
                "vector store is unavailable" in post.args["text"]
                and f"127.0.0.1:{port}" in post.args["text"]
            )
            await asyncio.sleep(0.5)
            assert [c.method for c in h.fake.calls if c.method.startswith("chat.")] == ["chat.postMessage"]
    finally:
        await database.dispose()
        await store.close()
