"""Nobody reads a conversation that isn't theirs: every thread has an owner, enforced by the Store.

A thread made through `POST /chatkit` belongs to the ChatKit user (X-User-Id) who made it; a
Slack, Discord or CLI thread belongs to its conversation. Someone else's thread looks exactly
like one that does not exist. Store tests run on SQLite and PostgreSQL, including the migration
of a database made before threads had owners.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from chatkit.store import NotFoundError
from chatkit.types import ThreadMetadata
from chatkit_support import ChatKitHttp, add_message_request, chatkit_http, create_request
from sqlalchemy import Column, DateTime, MetaData, String, Table, Text, text
from test_chat_store import (  # noqa: F401 (fixtures)
    assistant_item,
    dsn,
    postgres_dsn,
    server_dsn,
    sqlite_dsn,
    thread,
    user_item,
)

from configs.config import Settings
from data.database import ConversationRow, Database, ItemRow, SeqType
from data.embeddings import Embedder
from data.vector_store import WeaviateVectorStore
from services.chat.contract import Answer
from services.chat.metrics import REGISTRY
from services.chat.store import RequestContext, SqlStore

SLACK_KEY = "slack:T1:C1:100.1"


def alice() -> RequestContext:
    return RequestContext(user_id="alice")


def bob() -> RequestContext:
    return RequestContext(user_id="bob")


def slack() -> RequestContext:
    return RequestContext(user_id="U1", conversation_key=SLACK_KEY)


def other_slack() -> RequestContext:
    return RequestContext(user_id="U1", conversation_key="slack:T1:C1:200.1")


@pytest.fixture
async def database(dsn: str) -> AsyncIterator[Database]:  # noqa: F811
    db = Database(dsn)
    await db.create()
    yield db
    await db.dispose()


async def refused(store: SqlStore, thread_id: str, item_id: str, context: RequestContext) -> list[str]:
    """Every Store call by thread id (but `save_thread`, which creates a missing thread), as
    `context`: each must fail as for a missing thread."""
    calls = {
        "load_thread": store.load_thread(thread_id, context),
        "load_thread_items": store.load_thread_items(thread_id, None, 10, "asc", context),
        "load_item": store.load_item(thread_id, item_id, context),
        "add_thread_item": store.add_thread_item(thread_id, user_item("msg_new", thread_id, "hi"), context),
        "save_item": store.save_item(thread_id, assistant_item(item_id, thread_id, "rewritten"), context),
        "delete_thread_item": store.delete_thread_item(thread_id, item_id, context),
        "delete_thread": store.delete_thread(thread_id, context),
        "load_threads after it": store.load_threads(10, thread_id, "desc", context),
    }
    messages = []
    for name, call in calls.items():
        with pytest.raises(NotFoundError) as caught:
            await call
        messages.append(f"{name}: {caught.value}")
    return messages


async def test_threads_are_seen_only_by_their_owner(database: Database) -> None:
    store = SqlStore(database)
    await store.save_thread(thread("thr_alice"), alice())
    await store.add_thread_item("thr_alice", user_item("msg_alice", "thr_alice", "alice asks"), alice())
    await store.save_thread(thread("thr_slack"), slack())
    await store.add_thread_item("thr_slack", user_item("msg_slack", "thr_slack", "slack asks"), slack())

    assert [t.id for t in (await store.load_threads(10, None, "desc", alice())).data] == ["thr_alice"]
    assert (await store.load_threads(10, None, "desc", bob())).data == []
    assert (await store.load_threads(10, None, "desc", RequestContext())).data == []
    assert (await store.load_thread("thr_slack", slack())).id == "thr_slack"

    missing = await refused(store, "thr_nowhere", "msg_nowhere", bob())
    for foreign, thread_id, item_id in [
        (bob(), "thr_alice", "msg_alice"),
        (slack(), "thr_alice", "msg_alice"),
        (RequestContext(user_id=SLACK_KEY), "thr_slack", "msg_slack"),  # a ChatKit user named like one
        (alice(), "thr_slack", "msg_slack"),
        (other_slack(), "thr_slack", "msg_slack"),
    ]:
        messages = await refused(store, thread_id, item_id, foreign)
        expected = [m.replace("thr_nowhere", thread_id).replace("msg_nowhere", item_id) for m in missing]
        assert messages == expected  # indistinguishable from a thread that does not exist
        with pytest.raises(NotFoundError, match=f"^Thread {thread_id} not found$"):
            await store.save_thread(thread(thread_id, title="taken over"), foreign)

    # Nothing of theirs changed.
    assert (await store.load_thread("thr_alice", alice())).title is None
    items = await store.load_thread_items("thr_alice", None, 10, "asc", alice())
    assert [(i.id, i.content[0].text) for i in items.data] == [("msg_alice", "alice asks")]  # type: ignore[union-attr]
    slack_items = await store.load_thread_items("thr_slack", None, 10, "asc", slack())
    assert [i.id for i in slack_items.data] == ["msg_slack"]

    await store.delete_thread("thr_alice", alice())
    with pytest.raises(NotFoundError):
        await store.load_thread("thr_alice", alice())


async def test_a_thread_needs_someone_to_belong_to(tmp_path: Path) -> None:
    database = Database(sqlite_dsn(tmp_path / "chat.sqlite3"))
    await database.create()
    try:
        with pytest.raises(ValueError, match="owner"):
            await SqlStore(database).save_thread(thread("thr_nobody"), RequestContext())
    finally:
        await database.dispose()
    with pytest.raises(ValueError, match="chatkit:"):
        RequestContext(conversation_key="chatkit:alice")  # adapters cannot pose as ChatKit users


async def test_a_database_from_before_owners_is_migrated(dsn: str) -> None:  # noqa: F811
    """Adapter threads keep working (their owner is their conversation); old /chatkit threads,
    whose user was never recorded, are nobody's and so invisible."""
    old = Database(dsn)
    if old.is_sqlite:
        Path(str(old.url.database)).parent.mkdir(parents=True, exist_ok=True)
    before_owners = MetaData()
    Table(
        "chat_threads",
        before_owners,
        Column("seq", SeqType, primary_key=True, autoincrement=True),
        Column("id", String(64), unique=True),
        Column("data", Text),
        Column("created_at", DateTime(timezone=True)),
    )
    async with old.engine.begin() as conn:
        await conn.run_sync(before_owners.create_all)
        await conn.run_sync(
            lambda sync: ConversationRow.metadata.create_all(sync, [ConversationRow.__table__])
        )
        await conn.run_sync(lambda sync: ItemRow.metadata.create_all(sync, [ItemRow.__table__]))
        for thread_id in ("thr_slack_old", "thr_chatkit_old"):
            data = ThreadMetadata(id=thread_id, created_at=datetime.now()).model_dump_json()
            await conn.execute(
                text(
                    "INSERT INTO chat_threads (id, data, created_at) VALUES (:id, :data, CURRENT_TIMESTAMP)"
                ),
                {"id": thread_id, "data": data},
            )
        await conn.execute(
            text(
                "INSERT INTO conversations (conversation_key, thread_id, created_at) "
                "VALUES (:key, 'thr_slack_old', CURRENT_TIMESTAMP)"
            ),
            {"key": SLACK_KEY},
        )
    await old.dispose()

    for _start in range(2):  # every start runs the migration; the second finds nothing to do
        database = Database(dsn)
        await database.create()
        try:
            store = SqlStore(database)
            assert (await store.load_thread("thr_slack_old", slack())).id == "thr_slack_old"
            await store.add_thread_item(
                "thr_slack_old", user_item(f"msg_{_start}", "thr_slack_old", "still here"), slack()
            )
            for someone in (alice(), bob()):
                listed = {t.id for t in (await store.load_threads(10, None, "desc", someone)).data}
                assert not listed & {"thr_slack_old", "thr_chatkit_old"}
                for thread_id in ("thr_slack_old", "thr_chatkit_old"):
                    with pytest.raises(NotFoundError):
                        await store.load_thread(thread_id, someone)
            await store.save_thread(thread(f"thr_new_{_start}"), alice())
            assert f"thr_new_{_start}" in [
                t.id for t in (await store.load_threads(10, None, "desc", alice())).data
            ]
        finally:
            await database.dispose()


async def ask_in_slack(client: ChatKitHttp, text_: str) -> Answer:
    """A Slack conversation's turn, through the chat service exactly as the Slack adapter asks."""
    events = [event async for event in client.chat.ask(SLACK_KEY, text_, user_id="U1")]
    answer = events[-1]
    assert isinstance(answer, Answer), events
    return answer


def asks_counted(adapter: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("docsbot_asks_total", {"adapter": adapter, "outcome": outcome}) or 0.0


async def test_chatkit_users_see_only_their_own_threads_over_http(
    settings: Settings, embedder: Embedder
) -> None:
    async with WeaviateVectorStore(settings) as store, chatkit_http(settings, store, embedder) as client:
        slack_answer = await ask_in_slack(client, "What is in the incident report?")
        answered_before = asks_counted("chatkit", "answered")

        status, events = await client.post(create_request("How do I deploy?"), user="alice")
        assert status == 200 and events[0]["type"] == "thread.created", events
        assert events[-1]["type"] == "thread.item.done" and events[-1]["item"]["type"] == "assistant_message"
        alice_thread = events[0]["thread"]["id"]
        assert asks_counted("chatkit", "answered") == answered_before + 1  # /metrics counts /chatkit too
        async with client.http.get(f"{client.url}/metrics") as response:
            assert 'docsbot_asks_total{adapter="chatkit",outcome="answered"}' in await response.text()

        listing = {"type": "threads.list", "params": {}}
        status, page = await client.post(listing, user="alice")
        assert status == 200 and [t["id"] for t in page["data"]] == [alice_thread]
        for someone in ("bob", SLACK_KEY, "U1"):
            assert await client.post(listing, user=someone) == (200, {"data": [], "has_more": False})

        def requests(thread_id: str) -> list[dict[str, object]]:
            return [
                {"type": "threads.get_by_id", "params": {"thread_id": thread_id}},
                {"type": "items.list", "params": {"thread_id": thread_id}},
                {"type": "threads.update", "params": {"thread_id": thread_id, "title": "mine now"}},
                {
                    "type": "items.feedback",
                    "params": {
                        "thread_id": thread_id,
                        "item_ids": [slack_answer.answer_id],
                        "kind": "negative",
                    },
                },
                add_message_request(thread_id, "and the rest?"),
                {"type": "threads.delete", "params": {"thread_id": thread_id}},
            ]

        missing = [await client.post(request, user="bob") for request in requests("thr_nowhere")]
        assert all(status == 404 for status, _ in missing), missing
        for thread_id in (alice_thread, slack_answer.thread_id):
            seen = [await client.post(request, user="bob") for request in requests(thread_id)]
            assert seen == [(s, {"error": b["error"].replace("thr_nowhere", thread_id)}) for s, b in missing]

        status, own = await client.post({"type": "threads.get_by_id", "params": {"thread_id": alice_thread}})
        assert status == 200 and own["title"] == "How do I deploy?" and len(own["items"]["data"]) == 2
        follow_up = await ask_in_slack(client, "And who wrote it?")
        assert follow_up.thread_id == slack_answer.thread_id  # the Slack conversation kept its thread
