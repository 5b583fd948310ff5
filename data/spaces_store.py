"""What chat places remember across replicas: settings changed from the chat, questions per user
per minute, and "Ask a human" requests with the experts' replies.

All three live in the database so every replica agrees: a `/docs-bot use` on one replica applies
to the next message whichever replica gets it; a user's rate limit counts the questions all
replicas took; an expert's reply is matched to its question by the thread, wherever it arrives.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import BigInteger, DateTime, Integer, String, Text, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from data.timestamps import as_utc

__all__ = ["HumanAnswer", "PlaceOverride", "SpacesBase", "SpacesStore"]


class SpacesBase(DeclarativeBase):
    """The tables of this module (`data.database.Database.create` creates them)."""


def _id_column() -> Mapped[int]:
    return mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True)


class PlaceSettingRow(SpacesBase):
    __tablename__ = "place_settings"

    place: Mapped[str] = mapped_column(String(200), primary_key=True)  # "slack:C123", "discord:42"
    spaces: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON list, or NULL: not set here
    mode: Mapped[str | None] = mapped_column(String(20), nullable=True)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class QuestionRow(SpacesBase):
    """One question a user asked (for the per-user rate limit); old rows are pruned as it counts."""

    __tablename__ = "rate_questions"

    id: Mapped[int] = _id_column()
    user_key: Mapped[str] = mapped_column(String(200), index=True)
    asked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class HumanAskRow(SpacesBase):
    """An "Ask a human" request: the question, where it was asked, and the expert's reply once given."""

    __tablename__ = "human_asks"

    id: Mapped[int] = _id_column()
    thread: Mapped[str] = mapped_column(String(300), index=True)  # the conversation key of the thread
    space: Mapped[str] = mapped_column(String(100))
    question: Mapped[str] = mapped_column(Text)
    bot_answer: Mapped[str] = mapped_column(Text)
    asked_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    asked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expert: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reply: Mapped[str | None] = mapped_column(Text, nullable=True)
    replied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


@dataclass(frozen=True, slots=True)
class PlaceOverride:
    """What was set from the chat for one place; None fields were not set there."""

    place: str
    spaces: tuple[str, ...] | None
    mode: str | None
    updated_by: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class HumanAnswer:
    """A question the docs did not answer and what a person replied (a docs change to write)."""

    thread: str
    space: str
    question: str
    bot_answer: str
    asked_at: datetime
    expert: str | None
    reply: str | None
    replied_at: datetime | None


class SpacesStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    # -- settings changed from the chat ---------------------------------------------------------
    async def override(self, place: str) -> PlaceOverride | None:
        async with self._sessions() as session:
            row = await session.get(PlaceSettingRow, place)
        if row is None:
            return None
        spaces = tuple(json.loads(row.spaces)) if row.spaces is not None else None
        return PlaceOverride(row.place, spaces, row.mode, row.updated_by, as_utc(row.updated_at))

    async def set_override(
        self, place: str, *, by: str, spaces: tuple[str, ...] | None = None, mode: str | None = None
    ) -> None:
        """Set the spaces and/or the mode of `place` (what is None stays as it was)."""
        async with self._sessions.begin() as session:
            row = await session.get(PlaceSettingRow, place, with_for_update=True)
            if row is None:
                row = PlaceSettingRow(place=place, spaces=None, mode=None)
                session.add(row)
            if spaces is not None:
                row.spaces = json.dumps(list(spaces))
            if mode is not None:
                row.mode = mode
            row.updated_by = by
            row.updated_at = datetime.now(UTC)

    async def clear_override(self, place: str) -> None:
        async with self._sessions.begin() as session:
            await session.execute(delete(PlaceSettingRow).where(PlaceSettingRow.place == place))

    # -- per-user rate limit --------------------------------------------------------------------
    async def take_question(self, user_key: str, per_minute: int, now: datetime | None = None) -> bool:
        """Count a question of `user_key` unless it already asked `per_minute` in the last minute.

        Counting and recording happen in one transaction; on PostgreSQL concurrent questions of the
        same user may both pass at the boundary (a few over the limit), never lose a question.
        """
        now = now or datetime.now(UTC)
        since = now - timedelta(minutes=1)
        async with self._sessions.begin() as session:
            await session.execute(
                delete(QuestionRow).where(QuestionRow.asked_at < now - timedelta(minutes=10))
            )
            recent = await session.scalar(
                select(func.count()).where(QuestionRow.user_key == user_key, QuestionRow.asked_at >= since)
            )
            if (recent or 0) >= per_minute:
                return False
            session.add(QuestionRow(user_key=user_key, asked_at=now))
        return True

    # -- "Ask a human" ----------------------------------------------------------------------------
    async def ask_human(
        self, thread: str, space: str, question: str, bot_answer: str, asked_by: str | None
    ) -> None:
        async with self._sessions.begin() as session:
            session.add(
                HumanAskRow(
                    thread=thread,
                    space=space,
                    question=question,
                    bot_answer=bot_answer,
                    asked_by=asked_by,
                    asked_at=datetime.now(UTC),
                )
            )

    async def record_reply(self, thread: str, expert: str, reply: str) -> bool:
        """Store an expert's reply with the newest open request of `thread`; False when none is open."""
        async with self._sessions.begin() as session:
            row = await session.scalar(
                select(HumanAskRow)
                .where(HumanAskRow.thread == thread, HumanAskRow.reply.is_(None))
                .order_by(HumanAskRow.id.desc())
                .limit(1)
            )
            if row is None:
                return False
            row.expert, row.reply, row.replied_at = expert, reply, datetime.now(UTC)
        return True

    async def open_request(self, thread: str) -> bool:
        """Whether `thread` has a request still waiting for an expert."""
        async with self._sessions() as session:
            found = await session.scalar(
                select(HumanAskRow.id)
                .where(HumanAskRow.thread == thread, HumanAskRow.reply.is_(None))
                .limit(1)
            )
        return found is not None

    async def human_answers(
        self, since: datetime | None = None, space: str | None = None
    ) -> list[HumanAnswer]:
        """Requests (newest first), answered or not, for the report."""
        query = select(HumanAskRow).order_by(HumanAskRow.id.desc())
        if since is not None:
            query = query.where(HumanAskRow.asked_at >= since)
        if space is not None:
            query = query.where(HumanAskRow.space == space)
        async with self._sessions() as session:
            rows = list(await session.scalars(query))
        return [
            HumanAnswer(
                row.thread,
                row.space,
                row.question,
                row.bot_answer,
                as_utc(row.asked_at),
                row.expert,
                row.reply,
                as_utc(row.replied_at) if row.replied_at else None,
            )
            for row in rows
        ]
