"""Retention (delete or anonymise, counts kept) and the weekly digest, over the seeded database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fake_slack import FakeSlack
from insights_seed import NOW, at, open_seeded
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import func, select

from data.database import AnswerEventRow, ConversationRow, Database, FeedbackRow, ItemRow, ThreadRow
from data.embeddings import LocalOnnxEmbedder
from services.insights.config import InsightsConfig
from services.insights.digest import (
    MAX_CHARS,
    digest_text,
    next_digest_at,
    parse_digest_channel,
    run_weekly_digest,
    send_digest,
)
from services.insights.records import Filters
from services.insights.retention import apply_retention, run_retention_periodically
from services.insights.service import InsightsService

ALL_TIME = Filters(datetime(2026, 1, 1, tzinfo=UTC), NOW)


@pytest.fixture
async def seeded(tmp_path: Path) -> AsyncIterator[Database]:
    async with open_seeded(tmp_path) as database:
        yield database


def service(database: Database, embedder: LocalOnnxEmbedder, **config: object) -> InsightsService:
    return InsightsService(database, embedder, InsightsConfig(**config), clock=lambda: NOW)  # type: ignore[arg-type]


async def count(database: Database, column: object, *where: object) -> int:
    async with database.sessions() as session:
        return int(await session.scalar(select(func.count(column)).where(*where)) or 0)  # type: ignore[arg-type]


async def test_delete_removes_old_conversations_and_keeps_the_counts_anonymous(
    seeded: Database, embedder: LocalOnnxEmbedder
) -> None:
    before = (await service(seeded, embedder).report(ALL_TIME)).overview
    await seeded.thread_for_conversation("slack:T1:C2:2000.2")  # remembered in the process too

    # 3 days before 30 Nov 12:00: the password thread of the 27th, deploy and on-call (26th), console (20th)
    result = await apply_retention(seeded, 3, "delete", now=NOW)

    assert (result.threads, result.items_deleted) == (4, 8)
    assert await count(seeded, ThreadRow.id) == 5 and await count(seeded, ItemRow.id) == 21 - 8
    for thread in ("thr_pw3", "thr_deploy", "thr_old", "thr_oncall"):
        assert await count(seeded, ConversationRow.thread_id, ConversationRow.thread_id == thread) == 0
    assert await seeded.thread_for_conversation("slack:T1:C2:2000.2") is None
    # votes and events stay, without user ids; event keys keep the channel, not the conversation
    # U4's 👎 on the deploy answer, changed to 👍 later, goes first: it no longer counted
    assert result.votes_anonymised == 6 and result.events_anonymised == 4
    assert await count(seeded, FeedbackRow.id) == 10 - 1
    assert (
        await count(
            seeded, FeedbackRow.id, FeedbackRow.user_id.is_not(None), FeedbackRow.created_at < at(27, 12)
        )
        == 0
    )
    async with seeded.sessions() as session:
        keys = set(await session.scalars(select(AnswerEventRow.conversation_key)))
    assert {"slack:T1:C2", "console", "slack:T1:C1:1000.1"} <= keys and "slack:T1:C2:2000.2" not in keys

    after = (await service(seeded, embedder).report(ALL_TIME)).overview
    assert (after.up, after.down) == (before.up, before.down)  # the votes are still counted
    assert after.questions == before.questions - 4  # pw3, deploy, on-call and console questions are gone

    again = await apply_retention(seeded, 3, "delete", now=NOW)
    assert (again.threads, again.votes_anonymised, again.events_anonymised) == (0, 0, 0)


async def test_anonymise_keeps_the_questions_and_channels_but_not_who_or_which_conversation(
    seeded: Database, embedder: LocalOnnxEmbedder
) -> None:
    result = await apply_retention(seeded, 3, "anonymise", now=NOW)
    assert (result.threads, result.items_deleted) == (3, 0)  # on-call came over /chatkit: no link to cut
    assert await count(seeded, ItemRow.id) == 21
    report = await service(seeded, embedder).report(ALL_TIME)
    assert report.overview.questions == 11
    where = {turn.question_id: turn.where.label for c in report.coverage_gaps for turn in c.turns}
    assert where["q_pw3"] == where["q_pw1"] == "slack T1 #C1"  # from the event, its key cut to the channel
    async with seeded.sessions() as session:
        assert await session.get(ConversationRow, "slack:T1:C1:1000.3") is None  # the Slack thread link
        assert await session.get(ConversationRow, "slack:T1:C1:1000.1") is not None  # a recent one
    assert (await apply_retention(seeded, 3, "anonymise", now=NOW)).threads == 0


async def test_retention_is_off_at_zero_days(seeded: Database) -> None:
    assert (await apply_retention(seeded, 0, "delete", now=NOW)).threads == 0
    # the schedule returns at once instead of looping when retention is off
    await asyncio.wait_for(run_retention_periodically(seeded, InsightsConfig(retention_days=0)), 1)


async def test_the_weekly_digest_posted_to_slack(seeded: Database, embedder: LocalOnnxEmbedder) -> None:
    insights = service(seeded, embedder, digest_channel="slack:C0DIGEST")
    report = await insights.report(Filters(NOW - timedelta(days=7), NOW))
    text = digest_text(report, admin_url="https://bot.example.com/")
    lines = text.splitlines()
    assert lines[0] == "Docs bot, 2026-11-23 to 2026-11-30"
    assert lines[1] == (
        "10 questions: 4 answered, 5 not covered, 1 without an answer · 5 👍, 3 👎 (62% positive)"
    )
    assert "• “How do I reset my password?”: 3 questions (password, reset, forgot)" in lines
    assert (
        "• “I forgot my password, how do I reset it?”: 2 👎 · sources: docs/accounts.md, docs/handbook.md"
        in lines
    )
    assert lines[-1] == "Details: https://bot.example.com/admin/gaps"
    assert len(text) <= MAX_CHARS

    slack = FakeSlack()
    await slack.start()
    client = AsyncWebClient(token="xoxb-test", base_url=slack.api_url)
    try:

        async def post(message: str) -> None:
            await client.chat_postMessage(channel="C0DIGEST", text=message)

        posted = await send_digest(insights, post, admin_url="https://bot.example.com")
    finally:
        await slack.stop()
    (call,) = slack.calls_to("chat.postMessage")
    assert call.args["channel"] == "C0DIGEST" and call.args["text"] == posted == text


async def test_the_digest_waits_for_its_weekday_and_hour(
    seeded: Database, embedder: LocalOnnxEmbedder
) -> None:
    assert next_digest_at(NOW, 0, 9) == at(30, 9) + timedelta(days=7)  # NOW is Monday 12:00: next Monday
    assert next_digest_at(NOW, 0, 13) == at(30, 13)
    assert next_digest_at(NOW, 4, 9) == datetime(2026, 12, 4, 9, tzinfo=UTC)

    insights = service(seeded, embedder, digest_weekday=0, digest_hour_utc=13)
    waits: list[float] = []
    posted: list[str] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) > 1:
            raise asyncio.CancelledError  # stop after the first digest

    async def post(text: str) -> None:
        posted.append(text)

    with pytest.raises(asyncio.CancelledError):
        await run_weekly_digest(insights, post, sleep=sleep)
    assert waits[0] == 3600 and len(posted) == 1 and posted[0].startswith("Docs bot, 2026-11-23")


def test_the_digest_channel_names_its_platform() -> None:
    assert parse_digest_channel("slack:C0DIGEST") == ("slack", "C0DIGEST")
    assert parse_digest_channel(" discord:1122334455 ") == ("discord", "1122334455")
    for wrong in ("C0DIGEST", "discord:general", "teams:abc", "slack:"):
        with pytest.raises(ValueError, match="INSIGHTS_DIGEST_CHANNEL"):
            parse_digest_channel(wrong)
