"""The weekly digest: the week's top coverage gaps and 👎 answers, posted to one configured channel.

The text is plain (bullets, no bold), which reads the same in Slack and Discord, and stays under
Discord's 2000-character message limit. How it is posted is the adapter's business: the
scheduler takes a `post(text)` callable (`digest_posting.digest_poster`).

Every `serve` replica runs the schedule, and one posts: a lease in the shared database lets one
replica at a time try, and a row marking the week (in `processed_events`, where handled platform
events are marked) tells the others it went out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

from data.database import Database, ProcessedEventRow
from data.leases import HeldLease, LeaseLost, LeaseTaken
from services.insights.records import Filters
from services.insights.service import InsightsService, Report

log = logging.getLogger(__name__)

MAX_CHARS = 1900  # Discord refuses messages over 2000 characters
TOP_GAPS = 5
TOP_ANSWERS = 5
WEEK = timedelta(days=7)
# A digest not sent at its time (no replica up, or its poster died) still goes out this late.
CATCH_UP = timedelta(hours=6)
DIGEST_LEASE = "insights:digest"
DIGEST_MARK = "insights:digest:"  # + the due time: one row per week handled
LEASE_SECONDS = 120.0  # a holder killed without releasing blocks the others this long at most
HEARTBEAT_SECONDS = 30.0
RETRY_SECONDS = 60.0  # how often a waiting replica looks for the mark or a free lease
MARK_SECONDS = 35 * 24 * 3600  # marks outlive their week by far; expired ones are cleaned up

Post = Callable[[str], Awaitable[None]]


def parse_digest_channel(value: str) -> tuple[Literal["slack", "discord"], str]:
    """INSIGHTS_DIGEST_CHANNEL ("slack:C0123", "discord:112233") as (platform, channel id)."""
    platform, _, channel = value.strip().partition(":")
    if platform == "slack" and channel:
        return "slack", channel
    if platform == "discord" and channel.isdigit():
        return "discord", channel
    raise ValueError(
        f"INSIGHTS_DIGEST_CHANNEL={value!r}: use slack:<channel id> (e.g. slack:C0123ABC) "
        "or discord:<channel id> (digits)"
    )


def digest_text(report: Report, *, admin_url: str | None = None) -> str:
    """The digest of `report` (normally the last seven days)."""
    o = report.overview
    f = report.filters
    rate = f" ({o.up / (o.up + o.down):.0%} positive)" if o.up + o.down else ""
    lines = [
        f"Docs bot, {f.since:%Y-%m-%d} to {f.until:%Y-%m-%d}",
        f"{o.questions} questions: {o.answered} answered, {o.not_covered} not covered, "
        f"{o.unanswered} without an answer · {o.up} 👍, {o.down} 👎{rate}",
        "",
    ]
    if report.coverage_gaps:
        lines.append("Top coverage gaps:")
        for cluster in report.coverage_gaps[:TOP_GAPS]:
            words = f" ({', '.join(cluster.keywords)})" if cluster.keywords else ""
            plural = "s" if cluster.count != 1 else ""
            lines.append(f"• “{_short(cluster.label)}”: {cluster.count} question{plural}{words}")
    else:
        lines.append("No coverage gaps this week.")
    worst = report.feedback.worst_answers[:TOP_ANSWERS]
    if worst:
        lines += ["", "👎 answers:"]
        for answer in worst:
            sources = ", ".join(s.location for s in answer.sources[:3]) or "no sources"
            lines.append(f"• “{_short(answer.question)}”: {answer.down} 👎 · sources: {sources}")
    if admin_url:
        lines += ["", f"Details: {admin_url.rstrip('/')}/admin/gaps"]
    text = "\n".join(lines)
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1].rstrip() + "…"


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def next_digest_at(now: datetime, weekday: int, hour_utc: int) -> datetime:
    """The next `weekday` (0 = Monday) at `hour_utc`:00 UTC strictly after `now`."""
    now = now.astimezone(UTC)
    candidate = now.replace(hour=hour_utc, minute=0, second=0, microsecond=0)
    candidate += timedelta(days=(weekday - now.weekday()) % 7)
    return candidate if candidate > now else candidate + WEEK


async def weekly_digest_text(insights: InsightsService, *, admin_url: str | None = None) -> str:
    """The digest of the last seven days."""
    now = insights.clock()
    return digest_text(await insights.report(Filters(now - WEEK, now)), admin_url=admin_url)


async def send_digest(insights: InsightsService, post: Post, *, admin_url: str | None = None) -> str:
    """Build the last seven days' digest and post it (no lease, no mark); returns the text posted."""
    text = await weekly_digest_text(insights, admin_url=admin_url)
    await post(text)
    return text


async def run_weekly_digest(
    insights: InsightsService,
    post: Post,
    *,
    admin_url: str | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    retry_seconds: float = RETRY_SECONDS,
) -> None:
    """Post the digest every week at the configured time, until cancelled.

    Every replica runs this; the lease and the week's mark make one of them post it (see
    `deliver_digest`). A digest missed because no replica was up at its time still goes out
    when one starts within `CATCH_UP` of it.
    """
    config = insights.config
    done: datetime | None = None
    while True:
        now = insights.clock()
        due = next_digest_at(max(now, done) if done else now, config.digest_weekday, config.digest_hour_utc)
        if done is None and now - (due - WEEK) <= CATCH_UP:
            due -= WEEK  # this week's, if nobody has sent it yet
        await sleep(max(0.0, (due - now).total_seconds()))
        try:
            await deliver_digest(
                insights, post, due, admin_url=admin_url, sleep=sleep, retry_seconds=retry_seconds
            )
        except Exception:  # e.g. the database went away while the lease was released: next week
            log.exception("The weekly digest due %s failed", due)
        done = due


async def deliver_digest(
    insights: InsightsService,
    post: Post,
    due: datetime,
    *,
    admin_url: str | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    retry_seconds: float = RETRY_SECONDS,
) -> bool:
    """Post the digest due at `due` unless a replica did; True when this replica handled it.

    Whoever takes the lease checks the week's mark, posts, then marks the week: the others wait
    for the mark (or for the lease to fall free, when its holder died before marking) until
    `CATCH_UP` after `due`. A holder killed between posting and marking lets the digest go out
    twice; one killed earlier lets the next replica post it. Each week has its own mark, so no
    failure holds up the next one. A failed post is logged and marked like a sent one: it waits
    a week rather than being retried by every replica.
    """
    database = insights.database
    mark = f"{DIGEST_MARK}{due.astimezone(UTC):%Y-%m-%dT%H:%MZ}"
    while True:
        try:
            if await _marked(database, mark):
                return False
            lease = await database.leases.acquire(
                DIGEST_LEASE, ttl=LEASE_SECONDS, heartbeat=HEARTBEAT_SECONDS
            )
        except LeaseTaken:
            pass  # another replica is on it: wait for its mark, or for its lease to expire
        except Exception:
            log.warning("The weekly digest could not check the database; trying again", exc_info=True)
        else:
            try:
                return await _post_once(insights, post, lease, mark, admin_url)
            finally:
                await lease.release()  # also when cancelled: the next replica can go on at once
        if insights.clock() >= due + CATCH_UP:
            log.warning("The weekly digest due %s was not confirmed sent by any replica", due)
            return False
        await sleep(retry_seconds)


async def _post_once(
    insights: InsightsService, post: Post, lease: HeldLease, mark: str, admin_url: str | None
) -> bool:
    lease.keep_alive(lambda: {"digest": mark})
    if await _marked(insights.database, mark):  # sent while we waited for the lease
        return False
    try:
        text = await weekly_digest_text(insights, admin_url=admin_url)
        await lease.confirm(fresh=True)  # we may have been paused past the lease: then another posts
        await post(text)
    except LeaseLost:
        log.warning("The weekly digest's lease was lost before posting; another replica posts it")
        return False
    except Exception:
        log.exception("The weekly digest could not be posted to %s", insights.config.digest_channel)
    try:
        await insights.database.claim_event(mark, MARK_SECONDS)
    except Exception:
        log.exception("The weekly digest went out but could not be marked; another replica may post it")
    return True


async def _marked(database: Database, mark: str) -> bool:
    """The week's digest was handled (the mark is a `processed_events` row, like a handled event)."""
    async with database.sessions() as session:
        return await session.get(ProcessedEventRow, mark) is not None
