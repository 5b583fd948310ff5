"""Timestamps as the bot stores and compares them: aware, in UTC.

SQLite hands back naive datetimes (stored as UTC), PostgreSQL aware ones, and JSON run records,
sitemaps and HTTP headers carry ISO 8601 text with or without an offset; every comparison of
"when" goes through here, so none of them mixes naive and aware times.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["as_utc", "parse_utc"]


def as_utc(moment: datetime) -> datetime:
    """The same moment, aware and in UTC (a naive one is taken to be UTC already)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_utc(value: object) -> datetime | None:
    """ISO 8601 text (a run record's `finished_at`, a sitemap's lastmod) in UTC; None when it is
    missing or not a timestamp."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return as_utc(datetime.fromisoformat(value.strip()))
    except ValueError:
        return None
