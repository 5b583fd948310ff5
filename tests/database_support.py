"""Reads the conversation database the way an operator would, with SQL (the app has no such reader)."""

from __future__ import annotations

from sqlalchemy import select

from data.database import Database, FeedbackRow


async def votes_on(database: Database, answer_id: str) -> list[FeedbackRow]:
    """Every vote stored on an answer, oldest first."""
    async with database.sessions() as session:
        query = select(FeedbackRow).where(FeedbackRow.answer_id == answer_id).order_by(FeedbackRow.id)
        return list(await session.scalars(query))
