"""Reads what the bot stored for a period into turns, votes and answer events (one pass, any engine).

Threads and items are chatkit JSON in text columns, which SQL cannot look into the same way on
SQLite and PostgreSQL; so the threads active in the period are read whole and parsed here, off
the event loop. A docs bot's conversations are small: a month is a few thousand rows.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from chatkit.types import AssistantMessageItem
from sqlalchemy import select

from data.database import AnswerEventRow, ConversationRow, Database, FeedbackRow, ItemRow, ThreadRow
from data.timestamps import as_utc
from services.chat.citations import annotated_sources
from services.insights.outcomes import classify_answer
from services.insights.records import (
    ANSWERED,
    NOT_COVERED,
    AnswerEvent,
    Filters,
    SourceRef,
    Turn,
    Vote,
    Where,
    where_from_key,
)

_IN_CHUNK = 500  # ids per IN (...) list: well under every engine's parameter limit
_EVENT_MARGIN = timedelta(hours=1)  # an answer event is written when the turn ends, after the question


@dataclass(slots=True)
class Dataset:
    """The questions asked in a period (place filters applied), the votes cast and the answer events."""

    filters: Filters
    turns: list[Turn] = field(default_factory=list)
    votes: list[Vote] = field(default_factory=list)
    events: list[AnswerEvent] = field(default_factory=list)
    vote_turns: dict[str, Turn] = field(default_factory=dict)  # answer id -> turn, for every vote


@dataclass(slots=True)
class Message:
    """One message of a conversation, as the admin page shows it."""

    item_id: str
    role: str  # "user" or "assistant"
    text: str
    at: datetime
    sources: list[SourceRef] = field(default_factory=list)


@dataclass(slots=True)
class Conversation:
    """A whole thread, for the admin page's conversation view."""

    thread_id: str
    where: Where
    title: str
    messages: list[Message]
    turns: list[Turn]


def _chunks(values: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield list(values[start : start + _IN_CHUNK])


async def load_dataset(database: Database, filters: Filters) -> Dataset:
    """Everything the report's sections are computed from, for `filters`."""
    events = await _load_events(database, filters)
    raw_votes = await _votes_cast(database, filters)
    async with database.sessions() as session:
        active = await session.scalars(
            select(ItemRow.thread_id)
            .where(ItemRow.created_at >= filters.since, ItemRow.created_at < filters.until)
            .distinct()
        )
        thread_ids = set(active)
    thread_ids.update(vote.thread_id for vote in raw_votes if vote.thread_id)
    missing = [vote.answer_id for vote in raw_votes if not vote.thread_id]
    thread_ids.update(await _threads_of_items(database, missing))
    turns = await _load_turns(database, sorted(thread_ids), events)
    all_votes = await _votes_on(database, [t.answer_id for t in turns if t.answer_id], filters.until)
    by_answer = {turn.answer_id: turn for turn in turns if turn.answer_id}
    for vote in all_votes:
        if (turn := by_answer.get(vote.answer_id)) is not None:
            turn.votes.append(vote)
    dataset = Dataset(filters)
    dataset.turns = [t for t in turns if filters.covers(t.asked_at) and filters.admits(t.where, t.space)]
    for vote in raw_votes:
        turn = by_answer.get(vote.answer_id)
        where = turn.where if turn is not None else Where("unknown")
        if filters.admits(where, turn.space if turn is not None else None):
            dataset.votes.append(vote)
            if turn is not None:
                dataset.vote_turns[vote.answer_id] = turn
    dataset.events = [e for e in events if filters.covers(e.created_at) and filters.admits(e.where, e.space)]
    return dataset


async def load_conversation(database: Database, thread_id: str) -> Conversation | None:
    """The whole thread with its turns (votes and outcomes), or None when it is not stored."""
    events = await _events_of_thread(database, thread_id)
    async with database.sessions() as session:
        title_data = await session.scalar(select(ThreadRow.data).where(ThreadRow.id == thread_id))
        rows = (
            await session.execute(
                select(ItemRow.thread_id, ItemRow.data, ItemRow.created_at)
                .where(ItemRow.thread_id == thread_id)
                .order_by(ItemRow.seq)
            )
        ).all()
    if title_data is None and not rows:
        return None
    keys = await _keys_of_threads(database, [thread_id])
    parsed = await asyncio.to_thread(_parse_rows, rows)
    where = where_from_key(keys.get(thread_id))
    by_answer_event = {e.answer_id: e for e in events if e.answer_id}
    turns = _turns_of_thread(thread_id, parsed, where, by_answer_event)
    votes = await _votes_on(database, [t.answer_id for t in turns if t.answer_id], None)
    by_answer = {turn.answer_id: turn for turn in turns if turn.answer_id}
    for vote in votes:
        if (turn := by_answer.get(vote.answer_id)) is not None:
            turn.votes.append(vote)
    title = str(json.loads(title_data).get("title") or "") if title_data else ""
    messages = [m for m in (_message(item, at) for item, at in parsed) if m is not None]
    return Conversation(thread_id, where, title, messages, turns)


# --- Rows -> records ---------------------------------------------------------------------------


def _event(row: AnswerEventRow) -> AnswerEvent:
    return AnswerEvent(
        created_at=as_utc(row.created_at),
        platform=row.platform,
        outcome=row.outcome,
        error_kind=row.error_kind,
        conversation_key=row.conversation_key,
        thread_id=row.thread_id,
        answer_id=row.answer_id,
        space=row.space,
        user_id=row.user_id,
        latency_ms=row.latency_ms,
        first_text_ms=row.first_text_ms,
    )


def _vote(row: FeedbackRow) -> Vote:
    return Vote(row.answer_id, row.positive, as_utc(row.created_at), row.user_id, row.thread_id)


def _latest_per_user(votes: Iterable[Vote]) -> list[Vote]:
    """A user's latest vote on an answer replaces their earlier ones; anonymous votes all count."""
    latest: dict[tuple[str, str], Vote] = {}
    anonymous: list[Vote] = []
    for vote in sorted(votes, key=lambda v: v.voted_at):
        if vote.user_id is None:
            anonymous.append(vote)
        else:
            latest[vote.answer_id, vote.user_id] = vote
    return sorted([*latest.values(), *anonymous], key=lambda v: v.voted_at)


async def _load_events(database: Database, filters: Filters) -> list[AnswerEvent]:
    async with database.sessions() as session:
        rows = await session.scalars(
            select(AnswerEventRow)
            .where(
                AnswerEventRow.created_at >= filters.since,
                AnswerEventRow.created_at < filters.until + _EVENT_MARGIN,
            )
            .order_by(AnswerEventRow.id)
        )
        return [_event(row) for row in rows]


async def _events_of_thread(database: Database, thread_id: str) -> list[AnswerEvent]:
    async with database.sessions() as session:
        rows = await session.scalars(select(AnswerEventRow).where(AnswerEventRow.thread_id == thread_id))
        return [_event(row) for row in rows]


async def _votes_cast(database: Database, filters: Filters) -> list[Vote]:
    """The votes cast in the period, a user's latest only (a later one would be in the period too)."""
    async with database.sessions() as session:
        rows = await session.scalars(
            select(FeedbackRow)
            .where(FeedbackRow.created_at >= filters.since, FeedbackRow.created_at < filters.until)
            .order_by(FeedbackRow.id)
        )
        return _latest_per_user(_vote(row) for row in rows)


async def _votes_on(database: Database, answer_ids: Sequence[str], until: datetime | None) -> list[Vote]:
    votes: list[Vote] = []
    async with database.sessions() as session:
        for chunk in _chunks(answer_ids):
            query = select(FeedbackRow).where(FeedbackRow.answer_id.in_(chunk))
            if until is not None:
                query = query.where(FeedbackRow.created_at < until)
            votes.extend(_vote(row) for row in await session.scalars(query.order_by(FeedbackRow.id)))
    return _latest_per_user(votes)


async def _threads_of_items(database: Database, item_ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    async with database.sessions() as session:
        for chunk in _chunks(item_ids):
            found.update(await session.scalars(select(ItemRow.thread_id).where(ItemRow.id.in_(chunk))))
    return found


async def _keys_of_threads(database: Database, thread_ids: Sequence[str]) -> dict[str, str]:
    """Thread -> conversation key: the adapters' link, else the thread's owner where one is stored."""
    keys: dict[str, str] = {}
    owner = getattr(ThreadRow, "owner", None)  # added with thread ownership; older schemas lack it
    async with database.sessions() as session:
        for chunk in _chunks(thread_ids):
            if owner is not None:
                owned = await session.execute(
                    select(ThreadRow.id, owner).where(ThreadRow.id.in_(chunk), owner.is_not(None))
                )
                keys.update({thread_id: key for thread_id, key in owned.all()})
            linked = await session.execute(
                select(ConversationRow.thread_id, ConversationRow.conversation_key).where(
                    ConversationRow.thread_id.in_(chunk)
                )
            )
            keys.update({thread_id: key for thread_id, key in linked.all()})
    return keys


async def _load_turns(
    database: Database, thread_ids: Sequence[str], events: Sequence[AnswerEvent]
) -> list[Turn]:
    keys = await _keys_of_threads(database, thread_ids)
    rows: list[Any] = []
    async with database.sessions() as session:
        for chunk in _chunks(thread_ids):
            query = (
                select(ItemRow.thread_id, ItemRow.data, ItemRow.created_at)
                .where(ItemRow.thread_id.in_(chunk))
                .order_by(ItemRow.thread_id, ItemRow.seq)
            )
            rows.extend((await session.execute(query)).all())
    parsed = await asyncio.to_thread(_parse_rows, rows)
    by_thread: dict[str, list[tuple[dict[str, Any], datetime]]] = {}
    for item, at in parsed:
        by_thread.setdefault(str(item.get("thread_id", "")), []).append((item, at))
    by_answer = {event.answer_id: event for event in events if event.answer_id}
    turns: list[Turn] = []
    for thread_id, items in by_thread.items():
        turns.extend(_turns_of_thread(thread_id, items, where_from_key(keys.get(thread_id)), by_answer))
    return turns


def _parse_rows(rows: Sequence[Any]) -> list[tuple[dict[str, Any], datetime]]:
    """Item JSON -> dicts (assistant items carry their parsed sources under `_sources`)."""
    parsed = []
    for row in rows:
        item: dict[str, Any] = json.loads(row.data)
        item.setdefault("thread_id", row.thread_id)
        if item.get("type") == "assistant_message":
            answer = AssistantMessageItem.model_validate(item)
            item["_sources"] = [SourceRef(s.location, s.title) for s in annotated_sources(answer)]
        parsed.append((item, as_utc(row.created_at)))
    return parsed


def _text(item: dict[str, Any]) -> str:
    return "".join(str(part.get("text", "")) for part in item.get("content", []) if isinstance(part, dict))


def _message(item: dict[str, Any], at: datetime) -> Message | None:
    kind = item.get("type")
    if kind == "user_message":
        return Message(str(item["id"]), "user", _text(item), at)
    if kind == "assistant_message":
        return Message(str(item["id"]), "assistant", _text(item), at, list(item.get("_sources", [])))
    return None


def _turns_of_thread(
    thread_id: str,
    items: Sequence[tuple[dict[str, Any], datetime]],
    where: Where,
    events: dict[str, AnswerEvent],
) -> list[Turn]:
    """Each user message starts a turn; the assistant messages after it are its answer."""
    turns: list[Turn] = []
    for item, at in items:
        kind = item.get("type")
        if kind == "user_message":
            turns.append(Turn(str(item["id"]), thread_id, _text(item).strip(), at, where))
        elif kind == "assistant_message" and turns:
            turn = turns[-1]
            text = _text(item)
            turn.answer = f"{turn.answer}\n\n{text}" if turn.answer and text else turn.answer or text
            turn.answer_id, turn.answered_at = str(item["id"]), at
            turn.sources = list(item.get("_sources", []))
    for turn in turns:
        event = events.get(turn.answer_id) if turn.answer_id else None
        if event is not None:
            turn.where = event.where if where.platform == "chatkit" else where
            turn.space, turn.user_id = event.space, event.user_id
        if turn.answer_id is None:
            continue
        if event is not None and event.outcome in (ANSWERED, NOT_COVERED):
            turn.outcome = ANSWERED if event.outcome == ANSWERED else NOT_COVERED
        else:
            turn.outcome = classify_answer(turn.answer, len(turn.sources))
    return turns
