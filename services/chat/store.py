"""chatkit's `Store` over the SQL database, so threads and items survive restarts and are shared.

Threads, items and attachments are stored as their pydantic JSON; `seq` columns give a stable
order for pagination (`after` is the id of the last item of the previous page).

Nobody reads a conversation that isn't theirs: every thread has an owner (see
`RequestContext.owner`), and every method that reads or writes by thread id acts only on the
asker's threads. Someone else's thread raises the same `NotFoundError` as a missing one, so ids
can't be probed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chatkit.store import NotFoundError, Store
from chatkit.types import Attachment, Page, ThreadItem, ThreadMetadata
from pydantic import TypeAdapter
from sqlalchemy import ColumnElement, delete, false, select
from sqlalchemy.ext.asyncio import AsyncSession

from data.database import AttachmentRow, Database, ItemRow, ThreadRow

_ITEM = TypeAdapter[ThreadItem](ThreadItem)
_ATTACHMENT = TypeAdapter[Attachment](Attachment)


CHATKIT_OWNER = "chatkit:"  # the owner of a POST /chatkit thread: "chatkit:<X-User-Id>"


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who is asking; passed through chatkit to the store and the agent. One per request: it
    remembers what the request read (see `newest_items`) and which threads it may use."""

    user_id: str | None = None
    # The adapter conversation ("slack:…", "discord:…", "cli:…") a chat adapter's turn belongs
    # to; None when the request came through POST /chatkit, as the ChatKit user `user_id`.
    conversation_key: str | None = None
    # The sources this turn may search (the space of the place it was asked in); None: all.
    sources: tuple[str, ...] | None = None
    # The newest items read per thread during this request, until it writes to that thread:
    # chatkit reads the last two items right after the history was read.
    newest_items: dict[str, Page[ThreadItem]] = field(default_factory=dict)
    # Threads this request has seen to be its owner's (ownership never changes).
    owned_threads: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.conversation_key is not None and self.conversation_key.startswith(CHATKIT_OWNER):
            raise ValueError(
                f"A conversation key cannot start with {CHATKIT_OWNER!r}: that names ChatKit users"
            )

    @property
    def owner(self) -> str | None:
        """Whose threads this request sees: the adapter conversation's, else the ChatKit user's.

        A Slack thread is its conversation's, not one member's: everyone in it sees its answers.
        None (no user, no conversation) owns nothing and so sees nothing.
        """
        if self.conversation_key is not None:
            return self.conversation_key
        return CHATKIT_OWNER + self.user_id if self.user_id else None


def as_request_context(context: RequestContext | Mapping[str, Any] | None) -> RequestContext:
    """A `RequestContext` from whatever a caller of chatkit's `process` passed (a mapping names
    the ChatKit user: `{"user_id": ...}`)."""
    if isinstance(context, RequestContext):
        return context
    if isinstance(context, Mapping):
        user_id = context.get("user_id")
        return RequestContext(user_id=str(user_id) if user_id else None)
    return RequestContext()


def _thread_json(thread: ThreadMetadata) -> str:
    """Only the metadata: chatkit sometimes passes a `Thread` carrying a page of items."""
    return ThreadMetadata.model_validate(thread.model_dump(exclude={"items"})).model_dump_json()


def _first(page: Page[ThreadItem], limit: int) -> Page[ThreadItem]:
    """The first `limit` items of a page read with a larger limit."""
    items = page.data[:limit]
    has_more = len(page.data) > limit or page.has_more
    return Page(data=items, has_more=has_more, after=items[-1].id if has_more and items else None)


def _owned_by(context: RequestContext) -> ColumnElement[bool]:
    """The SQL condition for the asker's threads; with no owner, none (`owner = NULL` would be
    rendered `owner IS NULL`, matching the threads that are nobody's)."""
    owner = context.owner
    return ThreadRow.owner == owner if owner is not None else false()


def _not_found(thread_id: str) -> NotFoundError:
    """The one error for a thread that is missing or someone else's: the two look the same."""
    return NotFoundError(f"Thread {thread_id} not found")


class SqlStore(Store[RequestContext]):
    """Every chatkit Store method over `Database`, each limited to the asker's threads."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def _check_owner(self, session: AsyncSession, thread_id: str, context: RequestContext) -> None:
        """Raise `NotFoundError` unless the thread exists and is the asker's (once per request)."""
        if thread_id in context.owned_threads:
            return
        owner = await session.scalar(select(ThreadRow.owner).where(ThreadRow.id == thread_id))
        if owner is None or owner != context.owner:
            raise _not_found(thread_id)
        context.owned_threads.add(thread_id)

    # --- Threads ---------------------------------------------------------------------
    async def load_thread(self, thread_id: str, context: RequestContext) -> ThreadMetadata:
        async with self.database.sessions() as session:
            data = await session.scalar(
                select(ThreadRow.data).where(ThreadRow.id == thread_id, _owned_by(context))
            )
        if data is None:
            raise _not_found(thread_id)
        context.owned_threads.add(thread_id)
        return ThreadMetadata.model_validate_json(data)

    async def save_thread(self, thread: ThreadMetadata, context: RequestContext) -> None:
        """Create the thread as the asker's, or update it if it is theirs."""
        owner = context.owner
        if owner is None:
            raise ValueError("A thread needs an owner: a RequestContext with a user_id or a conversation_key")
        if not await self.database.save_owned_thread(thread.id, owner, _thread_json(thread)):
            raise _not_found(thread.id)
        context.owned_threads.add(thread.id)

    async def load_threads(
        self, limit: int, after: str | None, order: str, context: RequestContext
    ) -> Page[ThreadMetadata]:
        async with self.database.sessions() as session:
            mine = _owned_by(context)
            query = select(ThreadRow.seq, ThreadRow.id, ThreadRow.data).where(mine)
            if after is not None:
                cursor = await session.scalar(select(ThreadRow.seq).where(ThreadRow.id == after, mine))
                if cursor is None:
                    raise _not_found(after)
                query = query.where(ThreadRow.seq < cursor if order == "desc" else ThreadRow.seq > cursor)
            query = query.order_by(ThreadRow.seq.desc() if order == "desc" else ThreadRow.seq.asc())
            rows = (await session.execute(query.limit(limit + 1))).all()
        has_more = len(rows) > limit
        threads = [ThreadMetadata.model_validate_json(row.data) for row in rows[:limit]]
        return Page(data=threads, has_more=has_more, after=threads[-1].id if has_more and threads else None)

    async def delete_thread(self, thread_id: str, context: RequestContext) -> None:
        context.newest_items.pop(thread_id, None)
        async with self.database.sessions.begin() as session:
            await self._check_owner(session, thread_id, context)
            await session.execute(delete(ItemRow).where(ItemRow.thread_id == thread_id))
            await session.execute(delete(ThreadRow).where(ThreadRow.id == thread_id))
        await self.database.unlink_threads(thread_id)

    # --- Items -----------------------------------------------------------------------
    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: RequestContext
    ) -> Page[ThreadItem]:
        newest = context.newest_items.get(thread_id) if after is None and order == "desc" else None
        if newest is not None and (limit <= len(newest.data) or not newest.has_more):
            return _first(newest, limit)
        async with self.database.sessions() as session:
            await self._check_owner(session, thread_id, context)
            query = select(ItemRow.data).where(ItemRow.thread_id == thread_id)
            if after is not None:
                cursor = await session.scalar(
                    select(ItemRow.seq).where(ItemRow.thread_id == thread_id, ItemRow.id == after)
                )
                if cursor is None:
                    raise NotFoundError(f"Item {after} not found in thread {thread_id}")
                query = query.where(ItemRow.seq < cursor if order == "desc" else ItemRow.seq > cursor)
            query = query.order_by(ItemRow.seq.desc() if order == "desc" else ItemRow.seq.asc())
            rows = (await session.scalars(query.limit(limit + 1))).all()
        has_more = len(rows) > limit
        items = [_ITEM.validate_json(data) for data in rows[:limit]]
        page = Page(data=items, has_more=has_more, after=items[-1].id if has_more and items else None)
        if after is None and order == "desc":
            context.newest_items[thread_id] = page
        return page

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: RequestContext) -> None:
        await self.save_item(thread_id, item, context)

    async def save_item(self, thread_id: str, item: ThreadItem, context: RequestContext) -> None:
        """Upsert by id; a new item goes to the end of the thread, an updated one keeps its place."""
        context.newest_items.pop(thread_id, None)
        if thread_id not in context.owned_threads:
            async with self.database.sessions() as session:
                await self._check_owner(session, thread_id, context)
        data = _ITEM.dump_json(item).decode()
        await self.database.upsert(
            ItemRow, key="id", values={"id": item.id, "thread_id": thread_id, "data": data}
        )

    async def load_item(self, thread_id: str, item_id: str, context: RequestContext) -> ThreadItem:
        async with self.database.sessions() as session:
            await self._check_owner(session, thread_id, context)
            data = await session.scalar(
                select(ItemRow.data).where(ItemRow.thread_id == thread_id, ItemRow.id == item_id)
            )
        if data is None:
            raise NotFoundError(f"Item {item_id} not found in thread {thread_id}")
        return _ITEM.validate_json(data)

    async def delete_thread_item(self, thread_id: str, item_id: str, context: RequestContext) -> None:
        context.newest_items.pop(thread_id, None)
        async with self.database.sessions.begin() as session:
            await self._check_owner(session, thread_id, context)
            await session.execute(
                delete(ItemRow).where(ItemRow.thread_id == thread_id, ItemRow.id == item_id)
            )

    # --- Attachments -----------------------------------------------------------------
    async def save_attachment(self, attachment: Attachment, context: RequestContext) -> None:
        data = _ATTACHMENT.dump_json(attachment).decode()
        await self.database.upsert(AttachmentRow, key="id", values={"id": attachment.id, "data": data})

    async def load_attachment(self, attachment_id: str, context: RequestContext) -> Attachment:
        async with self.database.sessions() as session:
            row = await session.get(AttachmentRow, attachment_id)
        if row is None:
            raise NotFoundError(f"Attachment {attachment_id} not found")
        return _ATTACHMENT.validate_json(row.data)

    async def delete_attachment(self, attachment_id: str, context: RequestContext) -> None:
        async with self.database.sessions.begin() as session:
            await session.execute(delete(AttachmentRow).where(AttachmentRow.id == attachment_id))
