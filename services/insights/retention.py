"""Retention: conversations older than RETENTION_DAYS are deleted or anonymised, on a schedule.

A conversation's age is that of its newest message, so one still in use is kept whole. Either
way the counts survive: votes and answer events keep their outcome and time but lose the user id
(a vote a user later changed is dropped first, so it is not counted twice), and an event's
conversation key is cut back to its channel. "delete" removes the messages and the
thread; "anonymise" keeps the messages (the questions are what coverage gaps are made of) and cuts
the thread's link to the platform conversation and its owner. Free text a user typed is not
rewritten: delete it if it may hold personal data.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, update

from data.database import AnswerEventRow, ConversationRow, Database, FeedbackRow, ItemRow, ThreadRow
from data.timestamps import as_utc
from services.insights.config import InsightsConfig, RetentionMode
from services.insights.records import channel_part

log = logging.getLogger(__name__)

RETENTION_INTERVAL_SECONDS = 24 * 3600
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class RetentionResult:
    threads: int  # deleted or anonymised
    items_deleted: int
    votes_anonymised: int
    events_anonymised: int


async def expired_threads(database: Database, cutoff: datetime) -> list[str]:
    """Threads whose newest message (or, with none, the thread itself) is older than `cutoff`."""
    async with database.sessions() as session:
        newest = func.max(ItemRow.created_at)
        old = await session.scalars(
            select(ItemRow.thread_id).group_by(ItemRow.thread_id).having(newest < cutoff)
        )
        empty = await session.scalars(
            select(ThreadRow.id).where(
                ThreadRow.created_at < cutoff,
                ~select(ItemRow.id).where(ItemRow.thread_id == ThreadRow.id).exists(),
            )
        )
        return sorted({*old, *empty})


async def apply_retention(
    database: Database, days: int, mode: RetentionMode, *, now: datetime | None = None
) -> RetentionResult:
    """Delete or anonymise what is older than `days` days; nothing when `days` is 0."""
    if days <= 0:
        return RetentionResult(0, 0, 0, 0)
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    threads = await expired_threads(database, cutoff)
    if mode == "anonymise":
        threads = await _still_linked(database, threads)
    items = 0
    for chunk in (threads[i : i + _CHUNK] for i in range(0, len(threads), _CHUNK)):
        items += await _forget(database, chunk, delete_messages=mode == "delete")
    for thread_id in threads:
        await database.unlink_threads(thread_id)  # also drops the remembered conversation -> thread
    votes, events = await _anonymise_counts(database, cutoff)
    result = RetentionResult(len(threads), items, votes, events)
    if threads or votes or events:
        log.info("Retention (%s days, %s): %s", days, mode, result)
    return result


async def _still_linked(database: Database, thread_ids: Sequence[str]) -> list[str]:
    """The threads still tied to a platform conversation or an owner (not anonymised yet)."""
    owner = getattr(ThreadRow, "owner", None)
    linked: set[str] = set()
    async with database.sessions() as session:
        for chunk in (thread_ids[i : i + _CHUNK] for i in range(0, len(thread_ids), _CHUNK)):
            query = select(ConversationRow.thread_id).where(ConversationRow.thread_id.in_(chunk))
            linked.update(await session.scalars(query))
            if owner is not None:
                owned = select(ThreadRow.id).where(ThreadRow.id.in_(chunk), owner.is_not(None))
                linked.update(await session.scalars(owned))
    return sorted(linked)


async def _forget(database: Database, thread_ids: Sequence[str], *, delete_messages: bool) -> int:
    async with database.sessions.begin() as session:
        if not delete_messages:
            owner = getattr(ThreadRow, "owner", None)  # thread ownership; older schemas lack it
            if owner is not None:
                await session.execute(
                    update(ThreadRow).where(ThreadRow.id.in_(thread_ids)).values({owner: None})
                )
            return 0
        deleted = await session.execute(delete(ItemRow).where(ItemRow.thread_id.in_(thread_ids)))
        await session.execute(delete(ThreadRow).where(ThreadRow.id.in_(thread_ids)))
        return int(getattr(deleted, "rowcount", 0) or 0)


async def _anonymise_counts(database: Database, cutoff: datetime) -> tuple[int, int]:
    async with database.sessions.begin() as session:
        # A user's latest vote on an answer is the one that counts: drop the earlier ones before the
        # user id goes, or they would all count as separate anonymous votes.
        voted = (
            await session.execute(
                select(FeedbackRow.id, FeedbackRow.answer_id, FeedbackRow.user_id, FeedbackRow.created_at)
                .where(FeedbackRow.user_id.is_not(None))
                .order_by(FeedbackRow.created_at, FeedbackRow.id)
            )
        ).all()
        latest = {(answer_id, user_id): row_id for row_id, answer_id, user_id, _ in voted}
        superseded = [
            row_id
            for row_id, answer_id, user_id, created_at in voted
            if latest[answer_id, user_id] != row_id and as_utc(created_at) < cutoff
        ]
        for chunk in (superseded[i : i + _CHUNK] for i in range(0, len(superseded), _CHUNK)):
            await session.execute(delete(FeedbackRow).where(FeedbackRow.id.in_(chunk)))
        votes = await session.execute(
            update(FeedbackRow)
            .where(FeedbackRow.created_at < cutoff, FeedbackRow.user_id.is_not(None))
            .values(user_id=None)
        )
        rows = (
            await session.execute(
                select(AnswerEventRow.id, AnswerEventRow.conversation_key, AnswerEventRow.user_id).where(
                    AnswerEventRow.created_at < cutoff
                )
            )
        ).all()
        changed = 0
        for row_id, key, user_id in rows:
            cut = channel_part(key) if key else None
            if user_id is None and cut == key:
                continue
            changed += 1
            await session.execute(
                update(AnswerEventRow)
                .where(AnswerEventRow.id == row_id)
                .values(user_id=None, conversation_key=cut)
            )
    return int(getattr(votes, "rowcount", 0) or 0), changed


async def run_retention_periodically(
    database: Database, config: InsightsConfig, *, interval_seconds: float = RETENTION_INTERVAL_SECONDS
) -> None:
    """Apply retention now and then every `interval_seconds`, until cancelled (off when days is 0)."""
    if config.retention_days <= 0:
        return
    while True:
        try:
            await apply_retention(database, config.retention_days, config.retention_mode)
        except Exception:
            log.exception("Applying the retention setting failed; trying again at the next interval")
        await asyncio.sleep(interval_seconds)
