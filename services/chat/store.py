"""chatkit's `Store` over the SQL database, so threads and items survive restarts and are shared.

Threads, items and attachments are stored as their pydantic JSON; `seq` columns give a stable
order for pagination (`after` is the id of the last item of the previous page).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chatkit.store import NotFoundError, Store
from chatkit.types import Attachment, Page, ThreadItem, ThreadMetadata
from pydantic import TypeAdapter
from sqlalchemy import delete, select

from data.database import AttachmentRow, Database, ItemRow, ThreadRow

_ITEM = TypeAdapter[ThreadItem](ThreadItem)
_ATTACHMENT = TypeAdapter[Attachment](Attachment)


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who is asking; passed through chatkit to the store and the agent. One per request: it
    remembers what the request read (see `newest_items`)."""

    user_id: str | None = None
    # The newest items read per thread during this request, until it writes to that thread:
    # chatkit reads the last two items right after the history was read.
    newest_items: dict[str, Page[ThreadItem]] = field(default_factory=dict)


def _thread_json(thread: ThreadMetadata) -> str:
    """Only the metadata: chatkit sometimes passes a `Thread` carrying a page of items."""
    return ThreadMetadata.model_validate(thread.model_dump(exclude={"items"})).model_dump_json()


def _first(page: Page[ThreadItem], limit: int) -> Page[ThreadItem]:
    """The first `limit` items of a page read with a larger limit."""
    items = page.data[:limit]
    has_more = len(page.data) > limit or page.has_more
    return Page(data=items, has_more=has_more, after=items[-1].id if has_more and items else None)


class SqlStore(Store[RequestContext]):
    """Every chatkit Store method over `Database`."""

    def __init__(self, database: Database) -> None:
        self.database = database

    # --- Threads ---------------------------------------------------------------------
    async def load_thread(self, thread_id: str, context: RequestContext) -> ThreadMetadata:
        async with self.database.sessions() as session:
            data = await session.scalar(select(ThreadRow.data).where(ThreadRow.id == thread_id))
        if data is None:
            raise NotFoundError(f"Thread {thread_id} not found")
        return ThreadMetadata.model_validate_json(data)

    async def save_thread(self, thread: ThreadMetadata, context: RequestContext) -> None:
        data = _thread_json(thread)
        await self.database.upsert(ThreadRow, key="id", values={"id": thread.id, "data": data})

    async def load_threads(
        self, limit: int, after: str | None, order: str, context: RequestContext
    ) -> Page[ThreadMetadata]:
        async with self.database.sessions() as session:
            query = select(ThreadRow.seq, ThreadRow.id, ThreadRow.data)
            if after is not None:
                cursor = await session.scalar(select(ThreadRow.seq).where(ThreadRow.id == after))
                if cursor is None:
                    raise NotFoundError(f"Thread {after} not found")
                query = query.where(ThreadRow.seq < cursor if order == "desc" else ThreadRow.seq > cursor)
            query = query.order_by(ThreadRow.seq.desc() if order == "desc" else ThreadRow.seq.asc())
            rows = (await session.execute(query.limit(limit + 1))).all()
        has_more = len(rows) > limit
        threads = [ThreadMetadata.model_validate_json(row.data) for row in rows[:limit]]
        return Page(data=threads, has_more=has_more, after=threads[-1].id if has_more and threads else None)

    async def delete_thread(self, thread_id: str, context: RequestContext) -> None:
        context.newest_items.pop(thread_id, None)
        async with self.database.sessions.begin() as session:
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
        data = _ITEM.dump_json(item).decode()
        await self.database.upsert(
            ItemRow, key="id", values={"id": item.id, "thread_id": thread_id, "data": data}
        )

    async def load_item(self, thread_id: str, item_id: str, context: RequestContext) -> ThreadItem:
        async with self.database.sessions() as session:
            data = await session.scalar(
                select(ItemRow.data).where(ItemRow.thread_id == thread_id, ItemRow.id == item_id)
            )
        if data is None:
            raise NotFoundError(f"Item {item_id} not found in thread {thread_id}")
        return _ITEM.validate_json(data)

    async def delete_thread_item(self, thread_id: str, item_id: str, context: RequestContext) -> None:
        context.newest_items.pop(thread_id, None)
        async with self.database.sessions.begin() as session:
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
