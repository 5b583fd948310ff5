"""The SQL chatkit Store and the database helpers, over a real SQLite file."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from chatkit.store import NotFoundError
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    FileAttachment,
    InferenceOptions,
    ThreadMetadata,
    UserMessageItem,
    UserMessageTextContent,
)
from database_support import votes_on
from sqlalchemy import event, text

from data.database import Database
from data.weaviate_server import free_port
from services.chat.store import RequestContext, SqlStore
from services.indexing.contract import IndexFailure, IndexResult


def ctx() -> RequestContext:
    """A fresh request context, as each request gets (it memoizes reads until it writes)."""
    return RequestContext(user_id="u1")


def sqlite_dsn(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def run(*command: str) -> None:
    """Run a command (as the `postgres` user when we are root: initdb refuses root)."""
    if os.geteuid() == 0:
        command = ("runuser", "-u", "postgres", "--", *command)
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({process.returncode}): {output.decode()}")


def postgres_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)
    if found is None:
        raise AssertionError(f"PostgreSQL's `{name}` is missing: install the Debian package `postgresql`.")
    return found


@pytest.fixture(scope="module")
async def postgres_dsn() -> AsyncIterator[str]:
    """A throwaway PostgreSQL cluster (initdb + pg_ctl) on a free port, for this module.

    Its folder is a fresh /tmp dir (pytest's tmp dirs are private to root, and the server runs
    as `postgres` when the tests run as root).
    """
    root = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="docsbot-pg-"))
    data, sockets = root / "data", root / "sockets"
    await asyncio.to_thread(sockets.mkdir)
    if os.geteuid() == 0:
        for path in (root, sockets):
            await asyncio.to_thread(shutil.chown, path, "postgres", "postgres")
    port = free_port()
    await run(postgres_bin("initdb"), "-D", str(data), "-U", "docsbot", "--auth=trust", "-E", "UTF8")
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    log = str(root / "log.txt")
    await run(postgres_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", log, "-w", "start")
    try:
        yield f"postgresql+asyncpg://docsbot@127.0.0.1:{port}/postgres"
    finally:
        await run(postgres_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        await asyncio.to_thread(shutil.rmtree, root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def server_dsn(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test runs on SQLite and on PostgreSQL (the cluster starts only when needed)."""
    if request.param == "sqlite":
        return sqlite_dsn(tmp_path / "nested" / "chat.sqlite3")
    return str(request.getfixturevalue("postgres_dsn"))


@pytest.fixture
async def dsn(server_dsn: str) -> str:
    """A fresh database: the SQLite file, or a new database in the PostgreSQL cluster."""
    if server_dsn.startswith("sqlite"):
        return server_dsn
    name = "t" + uuid.uuid4().hex
    admin = Database(server_dsn)
    try:
        async with admin.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f"CREATE DATABASE {name}"))
    finally:
        await admin.dispose()
    return server_dsn.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
async def database(dsn: str) -> AsyncIterator[Database]:
    db = Database(dsn)
    await db.create()
    yield db
    await db.dispose()


def thread(thread_id: str, title: str | None = None) -> ThreadMetadata:
    return ThreadMetadata(id=thread_id, created_at=datetime.now(), title=title)


def user_item(item_id: str, thread_id: str, text: str) -> UserMessageItem:
    return UserMessageItem(
        id=item_id,
        thread_id=thread_id,
        created_at=datetime.now(),
        content=[UserMessageTextContent(text=text)],
        attachments=[],
        inference_options=InferenceOptions(),
    )


def assistant_item(item_id: str, thread_id: str, text: str) -> AssistantMessageItem:
    return AssistantMessageItem(
        id=item_id,
        thread_id=thread_id,
        created_at=datetime.now(),
        content=[AssistantMessageContent(text=text)],
    )


async def test_create_makes_the_sqlite_folder(tmp_path: Path) -> None:
    database = Database(sqlite_dsn(tmp_path / "a" / "b" / "chat.sqlite3"))
    await database.create()
    try:
        assert (tmp_path / "a" / "b" / "chat.sqlite3").is_file()
        assert await database.is_healthy()
    finally:
        await database.dispose()


async def test_unreachable_database_is_unhealthy() -> None:
    database = Database(f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/none")
    try:
        assert not await database.is_healthy()
        assert "127.0.0.1" in database.display_url
    finally:
        await database.dispose()


async def test_threads_crud_and_pagination(database: Database) -> None:
    store = SqlStore(database)
    for n in range(5):
        await store.save_thread(thread(f"thr_{n}", title=f"T{n}"), ctx())
    updated = thread("thr_2", title="renamed")
    await store.save_thread(updated, ctx())
    assert (await store.load_thread("thr_2", ctx())).title == "renamed"

    first = await store.load_threads(2, None, "desc", ctx())
    assert [t.id for t in first.data] == ["thr_4", "thr_3"]
    assert first.has_more and first.after == "thr_3"
    second = await store.load_threads(2, first.after, "desc", ctx())
    assert [t.id for t in second.data] == ["thr_2", "thr_1"]
    last = await store.load_threads(2, second.after, "desc", ctx())
    assert [t.id for t in last.data] == ["thr_0"] and not last.has_more and last.after is None
    ascending = await store.load_threads(10, "thr_1", "asc", ctx())
    assert [t.id for t in ascending.data] == ["thr_2", "thr_3", "thr_4"]

    await store.add_thread_item("thr_2", user_item("msg_a", "thr_2", "hi"), ctx())
    await database.link_conversation("slack:C1:1", "thr_2")
    await store.delete_thread("thr_2", ctx())
    with pytest.raises(NotFoundError):
        await store.load_thread("thr_2", ctx())
    with pytest.raises(NotFoundError):
        await store.load_item("thr_2", "msg_a", ctx())
    assert await database.thread_for_conversation("slack:C1:1") is None


async def test_items_crud_order_and_pagination(database: Database) -> None:
    store = SqlStore(database)
    await store.save_thread(thread("thr_x"), ctx())
    await store.save_thread(thread("thr_other"), ctx())
    ids = [f"msg_{n}" for n in range(5)]
    for n, item_id in enumerate(ids):
        make = user_item if n % 2 == 0 else assistant_item
        await store.add_thread_item("thr_x", make(item_id, "thr_x", f"text {n}"), ctx())
    await store.add_thread_item("thr_other", user_item("msg_elsewhere", "thr_other", "other"), ctx())

    page = await store.load_thread_items("thr_x", None, 3, "asc", ctx())
    assert [i.id for i in page.data] == ids[:3] and page.has_more and page.after == "msg_2"
    rest = await store.load_thread_items("thr_x", page.after, 3, "asc", ctx())
    assert [i.id for i in rest.data] == ids[3:] and not rest.has_more
    newest = await store.load_thread_items("thr_x", None, 2, "desc", ctx())
    assert [i.id for i in newest.data] == ["msg_4", "msg_3"]
    older = await store.load_thread_items("thr_x", "msg_3", 10, "desc", ctx())
    assert [i.id for i in older.data] == ["msg_2", "msg_1", "msg_0"]

    loaded = await store.load_item("thr_x", "msg_1", ctx())
    assert isinstance(loaded, AssistantMessageItem) and loaded.content[0].text == "text 1"
    # save_item updates in place: the item keeps its position.
    await store.save_item("thr_x", assistant_item("msg_1", "thr_x", "edited"), ctx())
    again = await store.load_thread_items("thr_x", None, 10, "asc", ctx())
    assert [i.id for i in again.data] == ids
    edited = again.data[1]
    assert isinstance(edited, AssistantMessageItem) and edited.content[0].text == "edited"

    await store.delete_thread_item("thr_x", "msg_0", ctx())
    remaining = await store.load_thread_items("thr_x", None, 10, "asc", ctx())
    assert [i.id for i in remaining.data] == ids[1:]
    with pytest.raises(NotFoundError):
        await store.load_item("thr_other", "msg_1", ctx())


async def test_a_request_reads_the_newest_items_once_until_it_writes(database: Database) -> None:
    store = SqlStore(database)
    statements: list[str] = []
    event.listen(database.engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    thread_id = f"t-{uuid.uuid4().hex[:8]}"
    request = ctx()
    await store.save_thread(thread(thread_id), request)
    for n in range(3):
        await store.add_thread_item(thread_id, user_item(f"{thread_id}-{n}", thread_id, f"q{n}"), request)
    history = await store.load_thread_items(thread_id, None, 40, "desc", request)
    statements.clear()
    newest = await store.load_thread_items(thread_id, None, 2, "desc", request)
    assert statements == []  # served from what the request already read
    assert [i.id for i in newest.data] == [i.id for i in history.data[:2]] and newest.has_more
    assert newest.after == history.data[1].id
    await store.add_thread_item(thread_id, assistant_item(f"{thread_id}-a", thread_id, "a"), request)
    after_write = await store.load_thread_items(thread_id, None, 2, "desc", request)
    assert statements and [i.id for i in after_write.data] == [f"{thread_id}-a", f"{thread_id}-2"]
    statements.clear()
    other_request = await store.load_thread_items(thread_id, None, 1, "desc", ctx())
    assert statements and [i.id for i in other_request.data] == [f"{thread_id}-a"]


async def test_attachments_crud(database: Database) -> None:
    store = SqlStore(database)
    attachment = FileAttachment(id="atc_1", name="a.pdf", mime_type="application/pdf")
    await store.save_attachment(attachment, ctx())
    await store.save_attachment(attachment.model_copy(update={"name": "b.pdf"}), ctx())
    loaded = await store.load_attachment("atc_1", ctx())
    assert isinstance(loaded, FileAttachment) and loaded.name == "b.pdf"
    await store.delete_attachment("atc_1", ctx())
    with pytest.raises(NotFoundError):
        await store.load_attachment("atc_1", ctx())


async def test_data_survives_a_restart(dsn: str) -> None:
    first = Database(dsn)
    await first.create()
    store = SqlStore(first)
    await store.save_thread(thread("thr_keep", title="kept"), ctx())
    await store.add_thread_item("thr_keep", user_item("msg_q", "thr_keep", "question"), ctx())
    await store.add_thread_item("thr_keep", assistant_item("msg_r", "thr_keep", "answer [1]"), ctx())
    await first.link_conversation("discord:42", "thr_keep")
    await first.dispose()

    second = Database(dsn)
    await second.create()  # idempotent on an existing file
    try:
        reopened = SqlStore(second)
        assert (await reopened.load_thread("thr_keep", ctx())).title == "kept"
        items = await reopened.load_thread_items("thr_keep", None, 10, "asc", ctx())
        assert [i.id for i in items.data] == ["msg_q", "msg_r"]
        assert await second.thread_for_conversation("discord:42") == "thr_keep"
    finally:
        await second.dispose()


async def test_claim_event_is_atomic_and_expires(database: Database) -> None:
    results = await asyncio.gather(*(database.claim_event("slack:Ev1", 60) for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]
    assert await database.claim_event("slack:Ev2", 60) is True
    # An expired claim is purged, so the key can be claimed again.
    assert await database.claim_event("slack:Ev3", -1) is True
    assert await database.claim_event("slack:Ev3", 60) is True
    assert await database.claim_event("slack:Ev3", 60) is False


async def test_conversation_link_first_writer_wins(database: Database) -> None:
    await database.link_conversation("k", "thr_1")
    await database.link_conversation("k", "thr_2")
    assert await database.thread_for_conversation("k") == "thr_1"
    assert await database.thread_for_conversation("missing") is None


async def test_feedback_is_stored(database: Database) -> None:
    await database.add_feedback("msg_1", positive=True, user_id="u1", thread_id="thr_1")
    await database.add_feedback("msg_1", positive=False, user_id=None)
    rows = await votes_on(database, "msg_1")
    assert [(r.positive, r.user_id, r.thread_id) for r in rows] == [
        (True, "u1", "thr_1"),
        (False, None, None),
    ]
    assert rows[0].created_at is not None


def index_result(added: int) -> IndexResult:
    return IndexResult(
        seen=added + 1,
        added=added,
        updated=0,
        unchanged=1,
        deleted=0,
        failed=1,
        failures=[IndexFailure("docs/bad.pdf", "not a PDF", "docs")],
        chunks_written=added * 4,
        embeddings_computed=added * 4,
        seconds=1.5,
        full=False,
        empty_source=False,
        collection="DocChunks_v1",
    )


async def test_index_run_log(database: Database) -> None:
    assert await database.index_runs.last_run() is None
    await database.index_runs.record_run(index_result(3))
    await database.index_runs.record_run(index_result(5))
    last = await database.index_runs.last_run()
    assert last is not None and last["added"] == 5 and last["chunks_written"] == 20
    assert last["failures"] == [{"path": "docs/bad.pdf", "reason": "not a PDF", "source": "docs"}]
    assert datetime.fromisoformat(last["recorded_at"]).tzinfo is not None


async def test_replicas_creating_the_tables_at_once_all_start(dsn: str) -> None:
    """Replicas starting together on an empty database: PostgreSQL's CREATE TABLE races itself
    (a unique violation in pg_type) unless creation is serialised; every one must start."""
    replicas = [Database(dsn) for _ in range(4)]
    try:
        await asyncio.gather(*(replica.create() for replica in replicas))
        assert await replicas[0].spaces.override("slack:C1") is None  # the tables are there
    finally:
        for replica in replicas:
            await replica.dispose()
