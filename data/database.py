"""The bot's SQL database (SQLite by default, PostgreSQL via DATABASE_URL), async via SQLAlchemy.

It keeps what must survive restarts and be shared by replicas: chatkit threads and items,
the conversation-key -> thread mapping, answer feedback, processed platform events
(deduplication), leases (one index run at a time: `data.leases`) and the index run log
(`data.index_runs`). JSON payloads are stored as text so both engines
read them the same way.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cachetools import LRUCache
from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    DateTime,
    Integer,
    String,
    Text,
    delete,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from data.errors import DatabaseUnavailable
from data.index_runs import RunLogBase, SqlIndexRunLog
from data.leases import LeaseBase, Leases
from data.redaction import redact_url
from data.spaces_store import SpacesBase, SpacesStore

_REMEMBERED_CONVERSATIONS = 10_000

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
SeqType = BigInteger().with_variant(Integer(), "sqlite")


def utc_now() -> datetime:
    return datetime.now(UTC)


# CREATE TABLE is not safe against itself: two processes creating the same tables at once fail
# (PostgreSQL: a unique violation in pg_type; SQLite: "already exists"). An advisory lock (any
# fixed key) serialises them on PostgreSQL; on SQLite the loser retries and finds them there.
_CREATE_LOCK = 7_356_218_004


class Base(DeclarativeBase):
    """Declarative base of every table here."""


class ThreadRow(Base):
    """A chatkit thread; `seq` gives a stable creation order for pagination.

    `owner` is who may read it: the conversation key of an adapter's thread ("slack:…"), or
    "chatkit:<user>" for one made through POST /chatkit. NULL (threads made through /chatkit
    before owners existed, their user never recorded) is nobody's.
    """

    __tablename__ = "chat_threads"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    owner: Mapped[str | None] = mapped_column(String(512), index=True, nullable=True)
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


class AnswerEventRow(Base):
    """How one question turned out, for the insights (services/insights/): the outcome, the
    timings and where it was asked. The conversation itself stays in `chat_items`."""

    __tablename__ = "answer_events"

    id: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now, index=True)
    platform: Mapped[str] = mapped_column(String(32))  # slack, discord, console, chatkit
    # answered, not_covered, failed, incomplete; human_requested for an "Ask a human" reply
    outcome: Mapped[str] = mapped_column(String(32))
    error_kind: Mapped[str | None] = mapped_column(String(64), nullable=True)  # when failed
    conversation_key: Mapped[str | None] = mapped_column(String(512), nullable=True)
    thread_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    answer_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    space: Mapped[str | None] = mapped_column(String(128), nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    latency_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)  # question to final answer
    first_text_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)  # question to first text


class ProcessedEventRow(Base):
    """A platform event already handled; the primary key makes claiming atomic across replicas."""

    __tablename__ = "processed_events"

    event_key: Mapped[str] = mapped_column(String(512), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class Database:
    """Engine, session factory and the small queries that are not chatkit's (see `chat_store`)."""

    def __init__(self, dsn: str) -> None:
        try:
            self.url = make_url(dsn)
            self.is_sqlite = self.url.get_backend_name() == "sqlite"
            connect_args: dict[str, Any] = {"timeout": 30} if self.is_sqlite else {}
            self.engine: AsyncEngine = create_async_engine(
                self.url, connect_args=connect_args, pool_pre_ping=not self.is_sqlite
            )
        except (SQLAlchemyError, ValueError, ImportError) as exc:  # a malformed URL, an unknown driver
            # Never the URL itself: it may hold a password (the reasons name a part of it at most).
            raise DatabaseUnavailable(
                f"DATABASE_URL is not a database URL this bot can use ({type(exc).__name__}: {exc}). "
                "Expected e.g. postgresql://user:password@host:5432/dbname, or empty for SQLite in DATA_DIR."
            ) from None
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )
        self.leases = Leases(self.engine)  # one run (or other job) at a time, across replicas
        self.index_runs = SqlIndexRunLog(self.sessions, self.leases)
        self.spaces = SpacesStore(self.sessions)  # chat-set place settings, rate limits, human answers
        self._threads: LRUCache[str, str] = LRUCache(maxsize=_REMEMBERED_CONVERSATIONS)  # key -> thread

    @property
    def display_url(self) -> str:
        """The URL without its `user:password@`, for messages and logs."""
        return redact_url(self.url.render_as_string(hide_password=True))

    async def create(self) -> None:
        """Create missing tables (and the SQLite file's folder); `DatabaseUnavailable` when it cannot."""
        database = self.url.database
        try:
            if self.is_sqlite and database and database != ":memory:" and not database.startswith("file:"):
                await asyncio.to_thread(Path(database).parent.mkdir, parents=True, exist_ok=True)
            for attempt in range(5):
                try:
                    await self._create_tables()
                    break
                except OperationalError as exc:  # SQLite: another process is creating them too
                    if attempt == 4 or not any(words in str(exc) for words in ("already exists", "locked")):
                        raise
                    await asyncio.sleep(0.1 * (attempt + 1))
        except (OSError, SQLAlchemyError) as exc:  # refused, unknown host, timeout, login, permissions
            raise self.unusable(exc) from exc

    async def _create_tables(self) -> None:
        async with self.engine.begin() as conn:
            if not self.is_sqlite:  # replicas starting together: one creates, the others wait
                await conn.execute(text(f"SELECT pg_advisory_xact_lock({_CREATE_LOCK})"))
            for base in (Base, LeaseBase, RunLogBase, SpacesBase):
                await conn.run_sync(base.metadata.create_all)
            await conn.run_sync(_add_thread_owners)

    def unusable(self, exc: BaseException) -> DatabaseUnavailable:
        """One line: which database (no credentials), the driver's reason, and the setting to check."""
        cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        reason = " ".join(f"{type(cause).__name__}: {cause}".split())  # the server's DETAIL/HINT lines too
        if self.url.password:
            reason = reason.replace(self.url.password, "***")
        check = (
            "Check DATA_DIR (the SQLite file is kept there) or set DATABASE_URL"
            if self.is_sqlite
            else "Check DATABASE_URL and that the database server is running"
        )
        return DatabaseUnavailable(
            f"The conversation database {self.display_url} cannot be used ({reason}). {check}."
        )

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

    # --- Answer events -----------------------------------------------------------------
    async def record_answer(
        self,
        *,
        platform: str,
        outcome: str,
        conversation_key: str | None = None,
        thread_id: str | None = None,
        answer_id: str | None = None,
        space: str | None = None,
        user_id: str | None = None,
        latency_ms: int | None = None,
        first_text_ms: int | None = None,
        error_kind: str | None = None,
        at: datetime | None = None,
    ) -> None:
        """Remember how a turn ended (one row per question), for coverage and usage insights."""
        async with self.sessions.begin() as session:
            session.add(
                AnswerEventRow(
                    created_at=at or utc_now(),
                    platform=platform,
                    outcome=outcome,
                    error_kind=error_kind,
                    conversation_key=conversation_key,
                    thread_id=thread_id,
                    answer_id=answer_id,
                    space=space,
                    user_id=user_id,
                    latency_ms=latency_ms,
                    first_text_ms=first_text_ms,
                )
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

    async def save_owned_thread(self, thread_id: str, owner: str, data: str) -> bool:
        """Insert the thread as `owner`'s, or update it when it is theirs; False when it is not.

        One statement (the update is conditional on the stored owner), so no concurrent request
        can slip between an ownership check and the write.
        """
        stmt = (
            self._insert(ThreadRow)
            .values(id=thread_id, owner=owner, data=data)
            .on_conflict_do_update(index_elements=["id"], set_={"data": data}, where=ThreadRow.owner == owner)
            .returning(ThreadRow.id)
        )
        async with self.sessions.begin() as session:
            return (await session.execute(stmt)).scalar_one_or_none() is not None

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


def _add_thread_owners(connection: Connection) -> None:
    """Give a database made before threads had owners its `owner` column (create_all adds tables,
    never columns). A thread linked to an adapter conversation becomes that conversation's; the
    others were made through POST /chatkit by users nobody recorded, and stay nobody's."""
    if "owner" in {column["name"] for column in inspect(connection).get_columns(ThreadRow.__tablename__)}:
        return
    # IF NOT EXISTS lets replicas of one PostgreSQL database start at the same time.
    guard = "" if connection.dialect.name == "sqlite" else "IF NOT EXISTS "
    connection.execute(text(f"ALTER TABLE chat_threads ADD COLUMN {guard}owner VARCHAR(512)"))
    connection.execute(
        text(
            "UPDATE chat_threads SET owner = (SELECT MIN(conversations.conversation_key) FROM conversations"
            " WHERE conversations.thread_id = chat_threads.id) WHERE owner IS NULL"
        )
    )
    for index in Base.metadata.tables[ThreadRow.__tablename__].indexes:
        index.create(connection, checkfirst=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL + busy timeout so readers and one writer from several tasks don't trip over locks."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL never corrupts the file; it only skips an fsync per commit (a chat turn
    # makes a dozen small commits), at the risk of losing the last turn on a power cut.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
