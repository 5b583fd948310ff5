"""The weekly digest: the week's top coverage gaps and 👎 answers, posted to one configured channel.

The text is plain (bullets, no bold), which reads the same in Slack and Discord, and stays under
Discord's 2000-character message limit. How it is posted is the adapter's business: the
scheduler takes a `post(text)` callable (Slack: `chat_postMessage`, Discord: `channel.send`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

from services.insights.records import Filters
from services.insights.service import InsightsService, Report

log = logging.getLogger(__name__)

MAX_CHARS = 1900  # Discord refuses messages over 2000 characters
TOP_GAPS = 5
TOP_ANSWERS = 5
WEEK = timedelta(days=7)

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


async def send_digest(insights: InsightsService, post: Post, *, admin_url: str | None = None) -> str:
    """Build the last seven days' digest and post it; returns the text posted."""
    now = insights.clock()
    report = await insights.report(Filters(now - WEEK, now))
    text = digest_text(report, admin_url=admin_url)
    await post(text)
    return text


async def run_weekly_digest(
    insights: InsightsService,
    post: Post,
    *,
    admin_url: str | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Post the digest every week at the configured time, until cancelled; a failure waits a week."""
    config = insights.config
    while True:
        now = insights.clock()
        due = next_digest_at(now, config.digest_weekday, config.digest_hour_utc)
        await sleep((due - now).total_seconds())
        try:
            await send_digest(insights, post, admin_url=admin_url)
        except Exception:
            log.exception("The weekly digest could not be posted to %s", config.digest_channel)
