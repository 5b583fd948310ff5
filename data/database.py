"""The bot's SQL database (SQLite by default, PostgreSQL via DATABASE_URL), async via SQLAlchemy.

It keeps what must survive restarts and be shared by replicas: chatkit threads and items,
the conversation-key -> thread mapping, answer feedback, processed platform events
(deduplication) and the index run log. JSON payloads are stored as text so both engines
read them the same way.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from cachetools import LRUCache
from sqlalchemy import BigInteger, Boolean, DateTime, Integer, String, Text, delete, event, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

_REMEMBERED_CONVERSATIONS = 10_000

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
SeqType = BigInteger().with_variant(Integer(), "sqlite")


def utc_now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every table here."""


class ThreadRow(Base):
    """A chatkit thread; `seq` gives a stable creation order for pagination."""

    __tablename__ = "chat_threads"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    data: Mapped[str] = mapped_column(Text)  # ThreadMetadata JSON
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class ItemRow(Base):
    """A chatkit thread item; `seq` keeps insertion order (the order chatkit finished them)."""

    __tablename__ = "chat_items"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(128), unique=True)
    thread_id: Mapped[str] = mapped_column(String(64), index=True)
    data: Mapped[str] = mapped_column(Text)  # ThreadItem JSON
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class AttachmentRow(Base):
    """Attachment metadata (the Store interface requires it; files themselves live elsewhere)."""

    __tablename__ = "chat_attachments"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    data: Mapped[str] = mapped_column(Text)


class ConversationRow(Base):
    """Maps a platform conversation (e.g. a Slack thread) to its chatkit thread."""

    __tablename__ = "conversations"

    conversation_key: Mapped[str] = mapped_column(String(512), primary_key=True)
    thread_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class FeedbackRow(Base):
    """A 👍/👎 on an answer."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    answer_id: Mapped[str] = mapped_column(String(128), index=True)
    thread_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    positive: Mapped[bool] = mapped_column(Boolean)
    user_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class ProcessedEventRow(Base):
    """A platform event already handled; the primary key makes claiming atomic across replicas."""

    __tablename__ = "processed_events"

    event_key: Mapped[str] = mapped_column(String(512), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class IndexRunRow(Base):
    """One finished indexing run, its result as JSON."""

    __tablename__ = "index_runs"

    id: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    result: Mapped[str] = mapped_column(Text)


class IndexRunResult(Protocol):
    """What `record_run` needs from an indexing result."""

    def to_dict(self) -> dict[str, Any]: ...


class Database:
    """Engine, session factory and the small queries that are not chatkit's (see `chat_store`)."""

    def __init__(self, dsn: str) -> None:
        self.url = make_url(dsn)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        connect_args: dict[str, Any] = {"timeout": 30} if self.is_sqlite else {}
        self.engine: AsyncEngine = create_async_engine(
            self.url, connect_args=connect_args, pool_pre_ping=not self.is_sqlite
        )
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )
        self.index_runs = SqlIndexRunLog(self)
        self._threads: LRUCache[str, str] = LRUCache(maxsize=_REMEMBERED_CONVERSATIONS)  # key -> thread

    @property
    def display_url(self) -> str:
        """The URL with any password hidden, for messages and logs."""
        return self.url.render_as_string(hide_password=True)

    async def create(self) -> None:
        """Create missing tables (and the SQLite file's folder)."""
        database = self.url.database
        if self.is_sqlite and database and database != ":memory:" and not database.startswith("file:"):
            await asyncio.to_thread(Path(database).parent.mkdir, parents=True, exist_ok=True)
        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)

    async def is_healthy(self) -> bool:
        """True when a trivial query succeeds (for /healthz)."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()

    # --- Conversations ---------------------------------------------------------------
    async def thread_for_conversation(self, conversation_key: str) -> str | None:
        """The conversation's thread. Found mappings are remembered: they only change when the
        thread is deleted, and a turn on a deleted thread unlinks it and starts a new one."""
        if (thread_id := self._threads.get(conversation_key)) is not None:
            return thread_id
        async with self.sessions() as session:
            row = await session.get(ConversationRow, conversation_key)
        if row is None:
            return None
        self._threads[conversation_key] = row.thread_id
        return row.thread_id

    async def link_conversation(self, conversation_key: str, thread_id: str) -> None:
        """Remember the thread of a conversation (first writer wins)."""
        async with self.sessions.begin() as session:
            stmt = self._insert(ConversationRow).values(
                conversation_key=conversation_key, thread_id=thread_id
            )
            await session.execute(stmt.on_conflict_do_nothing(index_elements=["conversation_key"]))

    async def unlink_threads(self, thread_id: str) -> None:
        """Forget conversation mappings to a deleted thread."""
        for key in [key for key, thread in self._threads.items() if thread == thread_id]:
            del self._threads[key]
        async with self.sessions.begin() as session:
            await session.execute(delete(ConversationRow).where(ConversationRow.thread_id == thread_id))

    async def thread_of_item(self, item_id: str) -> str | None:
        """The thread a stored item (e.g. an answer) belongs to."""
        async with self.sessions() as session:
            return await session.scalar(select(ItemRow.thread_id).where(ItemRow.id == item_id))

    # --- Feedback --------------------------------------------------------------------
    async def add_feedback(
        self, answer_id: str, *, positive: bool, user_id: str | None = None, thread_id: str | None = None
    ) -> None:
        async with self.sessions.begin() as session:
            session.add(
                FeedbackRow(answer_id=answer_id, thread_id=thread_id, positive=positive, user_id=user_id)
            )

    # --- Event deduplication ---------------------------------------------------------
    async def claim_event(self, key: str, ttl_seconds: int) -> bool:
        """True the first time `key` is claimed within its TTL, on any replica (INSERT ... ON CONFLICT)."""
        now = utc_now()
        async with self.sessions.begin() as session:
            await session.execute(delete(ProcessedEventRow).where(ProcessedEventRow.expires_at < now))
            stmt = (
                self._insert(ProcessedEventRow)
                .values(event_key=key, expires_at=now + timedelta(seconds=ttl_seconds))
                .on_conflict_do_nothing(index_elements=["event_key"])
                .returning(ProcessedEventRow.event_key)
            )
            claimed = (await session.execute(stmt)).scalar_one_or_none()
        return claimed is not None

    async def upsert(self, table: type[Base], *, key: str, values: dict[str, Any]) -> None:
        """INSERT, or UPDATE the non-key columns when `key` exists (one atomic statement)."""
        stmt = self._insert(table).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[key], set_={name: value for name, value in values.items() if name != key}
        )
        async with self.sessions.begin() as session:
            await session.execute(stmt)

    def _insert(self, table: type[Base]) -> Any:
        """The dialect's INSERT, which has `on_conflict_do_nothing`."""
        return sqlite.insert(table) if self.is_sqlite else postgresql.insert(table)


class SqlIndexRunLog:
    """The indexer's `IndexRunLog` over the `index_runs` table (read by `status`)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def record_run(self, result: IndexRunResult) -> None:
        """Store an indexing result for `status`."""
        payload = json.dumps(result.to_dict(), default=str)
        async with self._database.sessions.begin() as session:
            session.add(IndexRunRow(result=payload))

    async def last_run(self) -> dict[str, Any] | None:
        """The latest recorded run (its `to_dict()` plus `recorded_at`), or None."""
        async with self._database.sessions() as session:
            row = await session.scalar(select(IndexRunRow).order_by(IndexRunRow.id.desc()).limit(1))
        if row is None:
            return None
        data: dict[str, Any] = json.loads(row.result)
        recorded_at = row.recorded_at if row.recorded_at.tzinfo else row.recorded_at.replace(tzinfo=UTC)
        data.setdefault("recorded_at", recorded_at.isoformat())
        return data


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL + busy timeout so readers and one writer from several tasks don't trip over locks."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL never corrupts the file; it only skips an fsync per commit (a chat turn
    # makes a dozen small commits), at the risk of losing the last turn on a power cut.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
