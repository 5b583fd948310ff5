"""The weekly digest's schedule: replicas on one database (SQLite file, PostgreSQL) post it once a week.

Each replica is its own `Database` engine, `InsightsService` and poster, as separate `serve`
processes have; they share one clock, passed in, which their sleeps move forward. Posts go over
HTTP to the fake Slack (or the fake Discord). A replica "killed" here is a real process holding
the digest's lease, stopped with SIGKILL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import discord
import pytest
from fake_discord import FakeDiscord
from fake_slack import FakeSlack
from sqlalchemy import select, update
from test_chat_store import dsn, postgres_dsn, server_dsn  # noqa: F401  (fixtures)

from configs.config import PROJECT_ROOT, ConfigError, Settings
from data.database import Database, ProcessedEventRow
from data.embeddings import LocalOnnxEmbedder
from data.leases import LeaseRow
from services.insights.config import InsightsConfig
from services.insights.digest import DIGEST_LEASE, DIGEST_MARK, run_weekly_digest
from services.insights.digest_posting import digest_poster, slack_escaped
from services.insights.service import InsightsService

MakeSettings = Callable[..., Settings]
MONDAY_8 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # the digest is due on Mondays at 9:00 UTC

# A replica that took the digest's lease and then died (killed before it could post).
HOLDER = """
import asyncio, sys
from data.database import Database

async def main() -> None:
    database = Database(sys.argv[1])
    await database.create()
    await database.leases.acquire(sys.argv[2], ttl=600, heartbeat=60)
    print("held", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


class Stop(BaseException):
    """Ends a replica's schedule (a BaseException: the schedule logs and survives any Exception)."""


class Clock:
    """One clock for every replica: a sleep moves it to the sleeper's wake-up time (never back) and
    yields for a moment of real time, so the other replicas and the fake servers get to run."""

    def __init__(self, now: datetime, stop_at: datetime) -> None:
        self.now = now
        self.stop_at = stop_at
        self.waits: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        wake = self.now + timedelta(seconds=seconds)
        if wake >= self.stop_at:
            raise Stop
        self.now = max(self.now, wake)
        await asyncio.sleep(0.02)


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    await fake.start()
    yield fake
    await fake.stop()


def digest_settings(make_plain_settings: MakeSettings, slack: FakeSlack) -> Settings:
    return make_plain_settings(
        slack_bot_token="xoxb-test",
        slack_api_url=slack.api_url,
        insights_digest_channel="slack:C0DIGEST",
        insights_digest_weekday=0,
        insights_digest_hour_utc=9,
    )


async def replicas(
    dsn: str,  # noqa: F811
    count: int,
    settings: Settings,
    embedder: LocalOnnxEmbedder,
    clock: Clock,
) -> list[tuple[Database, InsightsService]]:
    started = []
    for _ in range(count):
        database = Database(dsn)
        await database.create()
        config = InsightsConfig.from_settings(settings)
        started.append((database, InsightsService(database, embedder, config, clock=clock)))
    return started


async def run_replicas(
    running: list[tuple[Database, InsightsService]], settings: Settings, clock: Clock
) -> None:
    """Every replica's schedule, each with its own poster, until the clock reaches `stop_at`."""
    try:
        schedules = [
            run_weekly_digest(insights, digest_poster(settings), sleep=clock.sleep, retry_seconds=60)
            for _, insights in running
        ]
        ended = await asyncio.wait_for(asyncio.gather(*schedules, return_exceptions=True), 60)
        assert all(isinstance(end, Stop) for end in ended), ended
    finally:
        for database, _ in running:
            await database.dispose()


async def marks(database: Database) -> list[str]:
    async with database.sessions() as session:
        query = select(ProcessedEventRow.event_key).where(ProcessedEventRow.event_key.startswith(DIGEST_MARK))
        return sorted(await session.scalars(query))


def digest_posts(slack: FakeSlack) -> list[str]:
    calls = slack.calls_to("chat.postMessage")
    assert all(call.args["channel"] == "C0DIGEST" for call in calls)
    return [str(call.args["text"]) for call in calls]


async def test_replicas_post_the_digest_once_a_week(
    dsn: str,  # noqa: F811
    make_plain_settings: MakeSettings,
    slack: FakeSlack,
    embedder: LocalOnnxEmbedder,
) -> None:
    settings = digest_settings(make_plain_settings, slack)
    clock = Clock(MONDAY_8, stop_at=MONDAY_8 + timedelta(days=14))
    running = await replicas(dsn, 3, settings, embedder, clock)
    checker = Database(dsn)
    try:
        await run_replicas(running, settings, clock)

        posts = digest_posts(slack)
        assert [post.splitlines()[0] for post in posts] == [
            "Docs bot, 2026-11-23 to 2026-11-30",
            "Docs bot, 2026-11-30 to 2026-12-07",
        ]
        assert posts[0].splitlines()[1].startswith("0 questions")
        assert await marks(checker) == [f"{DIGEST_MARK}2026-11-30T09:00Z", f"{DIGEST_MARK}2026-12-07T09:00Z"]
        assert await checker.leases.holder(DIGEST_LEASE) is None  # released after each week
        assert clock.waits[0] == 3600  # from 8:00 to 9:00
    finally:
        await checker.dispose()


async def test_a_replica_killed_holding_the_lease_blocks_neither_this_week_nor_the_next(
    dsn: str,  # noqa: F811
    make_plain_settings: MakeSettings,
    slack: FakeSlack,
    embedder: LocalOnnxEmbedder,
) -> None:
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        dsn,
        DIGEST_LEASE,
        stdout=asyncio.subprocess.PIPE,
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    assert holder.stdout is not None
    assert await asyncio.wait_for(holder.stdout.readline(), 60) == b"held\n"
    holder.send_signal(signal.SIGKILL)  # no release, no mark: it died with the lease
    await holder.wait()

    settings = digest_settings(make_plain_settings, slack)
    clock = Clock(MONDAY_8, stop_at=MONDAY_8 + timedelta(days=14))
    await run_replicas(await replicas(dsn, 2, settings, embedder, clock), settings, clock)
    assert len(digest_posts(slack)) == 2  # the dead holder's lease was taken over at once


async def test_a_holder_elsewhere_that_stopped_is_waited_for_until_its_lease_expires(
    dsn: str,  # noqa: F811
    make_plain_settings: MakeSettings,
    slack: FakeSlack,
    embedder: LocalOnnxEmbedder,
) -> None:
    """A replica on another machine, frozen or killed: nothing here can see its process, so the
    others wait for its lease to run out (it never renews) and then one of them posts."""
    settings = digest_settings(make_plain_settings, slack)
    clock = Clock(MONDAY_8, stop_at=MONDAY_8 + timedelta(days=7))
    running = await replicas(dsn, 2, settings, embedder, clock)
    frozen = await running[0][0].leases.acquire(DIGEST_LEASE, ttl=1.5, heartbeat=60)
    async with running[0][0].sessions.begin() as session:  # as if taken on another machine
        await session.execute(update(LeaseRow).where(LeaseRow.name == DIGEST_LEASE).values(machine=""))
    assert frozen.token
    await run_replicas(running, settings, clock)
    assert len(digest_posts(slack)) == 1
    assert clock.waits.count(60) >= 10  # the replicas retried while the lease was held


async def test_a_digest_missed_while_no_replica_ran_goes_out_when_one_starts(
    dsn: str,  # noqa: F811
    make_plain_settings: MakeSettings,
    slack: FakeSlack,
    embedder: LocalOnnxEmbedder,
) -> None:
    settings = digest_settings(make_plain_settings, slack)
    late = MONDAY_8 + timedelta(hours=3)  # 11:00: every replica was down at 9:00
    clock = Clock(late, stop_at=late + timedelta(days=1))
    await run_replicas(await replicas(dsn, 1, settings, embedder, clock), settings, clock)
    assert len(digest_posts(slack)) == 1 and clock.waits[0] == 0

    clock = Clock(late + timedelta(hours=1), stop_at=late + timedelta(days=1))  # a replica starting later
    await run_replicas(await replicas(dsn, 1, settings, embedder, clock), settings, clock)
    assert len(digest_posts(slack)) == 1  # this week's was sent: it waits for next week

    tuesday = MONDAY_8 + timedelta(days=1)  # too late to catch up: it waits for next Monday
    clock = Clock(tuesday, stop_at=tuesday + timedelta(days=1))
    await run_replicas(await replicas(dsn, 1, settings, embedder, clock), settings, clock)
    assert clock.waits == [(MONDAY_8 + timedelta(days=7, hours=1) - tuesday).total_seconds()]


async def test_the_digest_goes_to_discord_without_pinging_anyone(
    make_plain_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeDiscord()
    await fake.start()
    monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
    try:
        settings = make_plain_settings(
            discord_token="digest-token", insights_digest_channel=f"discord:{fake.channel_id}"
        )
        await digest_poster(settings)("Docs bot, 2026-11-23 to 2026-11-30\n• “@everyone help”: 2 questions")
    finally:
        await fake.stop()
    (sent,) = [
        r for r in fake.requests if r.method == "POST" and r.path == f"/channels/{fake.channel_id}/messages"
    ]
    assert sent.body["content"].startswith("Docs bot, 2026-11-23")
    assert sent.body["allowed_mentions"]["parse"] == []
    assert fake.unrouted == []


async def test_slack_shows_quoted_mentions_as_text(
    slack: FakeSlack, make_plain_settings: MakeSettings
) -> None:
    await digest_poster(digest_settings(make_plain_settings, slack))("• “<!channel> why & how?”")
    assert (
        digest_posts(slack)
        == ["• “&lt;!channel&gt; why &amp; how?”"]
        == [slack_escaped("• “<!channel> why & how?”")]
    )


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"insights_digest_channel": "slack:C0DIGEST"}, "needs SLACK_BOT_TOKEN"),
        ({"insights_digest_channel": "discord:1234"}, "needs DISCORD_TOKEN"),
        ({"insights_digest_channel": "discord:general", "discord_token": "t"}, "discord:<channel id>"),
    ],
)
def test_a_digest_channel_without_what_it_needs_is_refused_at_start(
    make_plain_settings: MakeSettings, values: dict[str, str], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        digest_poster(make_plain_settings(**values))
