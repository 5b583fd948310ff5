"""When each source is refreshed, and how each one stands: for `serve`, `status` and `/reindex status`.

Each source has its own interval (`refresh_minutes` in the sources file, else
REINDEX_INTERVAL_MINUTES; 0 = only on demand). The clock is the run log in the database, not
this process's memory, so replicas agree on what is due: after one replica refreshed a source,
the others see it as done. One replica at a time decides and runs (the lease
"schedule:<collection>"), so two cannot find the same source due and refresh it twice. Due
sources are refreshed together, in one run; a failing source is reported in the run and retried
at its next interval, without holding up the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from configs.config import Settings
from data.leases import Leases, LeaseTaken
from data.timestamps import parse_utc
from services.indexing.contract import IndexAlreadyRunning, IndexResult, IndexRunLog
from services.sources.catalog import Catalog, SourceEntry, load_catalog
from services.sources.naming import GitSpec, LocalSpec

log = logging.getLogger(__name__)

TICK_SECONDS = 30.0  # how often `serve` looks for due sources (at most; shorter intervals tick faster)
SCHEDULE_LEASE_SECONDS = 60.0  # one replica decides what is due; renewed while it runs
SCHEDULE_HEARTBEAT_SECONDS = 15.0


def _kind(entry: SourceEntry) -> str:
    return (
        "git"
        if isinstance(entry.spec, GitSpec)
        else "local"
        if isinstance(entry.spec, LocalSpec)
        else "website"
    )


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """One source: where it is, its interval, its latest run, and when it runs next."""

    name: str
    location: str
    kind: str
    interval_minutes: float  # 0: only on demand
    last: dict[str, Any] | None  # `IndexRunLog.last_source_runs()` entry
    next_run: datetime | None  # None: not scheduled

    @property
    def finished_at(self) -> datetime | None:
        return parse_utc(self.last.get("finished_at")) if self.last else None

    def due(self, now: datetime) -> bool:
        return self.next_run is not None and self.next_run <= now

    def describe(self, now: datetime) -> str:
        return describe_source(self.to_dict(), now)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "location": self.location,
            "kind": self.kind,
            "interval_minutes": self.interval_minutes,
            "last_run": self.last,
            "next_run": self.next_run.isoformat() if self.next_run else None,
        }


def describe_source(status: dict[str, Any], now: datetime) -> str:
    """One line of `status` from `SourceStatus.to_dict()`:
    "handbook (local /srv/hb): 40 documents, last run 2 min ago: ok (2 added); next run in 9 min"."""
    name, location = status["name"], status["location"]
    head = f"{name} ({status['kind']} {location})" if name != location else name
    last = status.get("last_run")
    if last is None:
        state = "never indexed"
    else:
        finished = _ago(now, parse_utc(last.get("finished_at")))
        if last.get("error"):
            result = f"FAILED: {last['error']}"
        else:
            result = "ok" if last.get("status") == "succeeded" else "the run failed"
        kinds = ("added", "updated", "deleted", "failed")
        counts = ", ".join(f"{last[key]} {key}" for key in kinds if last.get(key))
        state = f"{last.get('documents', 0)} documents, last run {finished}: {result}"
        state += f" ({counts})" if counts else ""
    next_run = parse_utc(status.get("next_run"))
    if next_run is None:
        upcoming = "refreshed on demand"
    elif next_run <= now:
        upcoming = "next run due now"
    else:
        upcoming = f"next run in {_duration(next_run - now)}"
    return f"{head}: {state}; {upcoming}"


def _duration(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 90 * 60:
        return f"{seconds // 60} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _ago(now: datetime, then: datetime | None) -> str:
    return "at an unknown time" if then is None else f"{_duration(now - then)} ago"


def source_statuses(
    catalog: Catalog, last_runs: dict[str, dict[str, Any]], default_interval_minutes: float, now: datetime
) -> list[SourceStatus]:
    """Every configured source, in the catalog's order."""
    statuses = []
    for entry in catalog.entries:
        interval = entry.refresh_minutes if entry.refresh_minutes is not None else default_interval_minutes
        last = last_runs.get(entry.name)
        finished = parse_utc(last.get("finished_at")) if last else None
        next_run = None
        if interval > 0:
            next_run = now if finished is None else finished + timedelta(minutes=interval)
        statuses.append(SourceStatus(entry.name, entry.location, _kind(entry), interval, last, next_run))
    return statuses


RunSources = Callable[[Sequence[str]], Awaitable[IndexResult]]


async def refresh_on_schedule(
    run: RunSources,
    run_log: IndexRunLog,
    leases: Leases,
    lease_name: str,
    catalog: Callable[[], Catalog],
    default_interval_minutes: float,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    tick_seconds: float = TICK_SECONDS,
) -> None:
    """Refresh each source when its interval has passed, until cancelled (`serve`'s task).

    A replica decides and runs under the lease `lease_name`, so reading the run log and running
    what is due are one step across replicas: another replica cannot find the same source due
    meanwhile and refresh it twice. `catalog` is read on every tick, so an edited sources file
    applies without a restart; a broken one is logged and the tick skipped.
    """
    while True:
        sleep = tick_seconds
        try:
            configured = await asyncio.to_thread(catalog)
            intervals = [_interval(entry, default_interval_minutes) for entry in configured.entries]
            sleep = min([tick_seconds, *(minutes * 30 for minutes in intervals if minutes > 0)])
            if any(minutes > 0 for minutes in intervals):
                await _tick(run, run_log, leases, lease_name, configured, default_interval_minutes, clock)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("The source schedule could not be checked; trying again")
        await asyncio.sleep(sleep)


def _interval(entry: SourceEntry, default_minutes: float) -> float:
    return default_minutes if entry.refresh_minutes is None else entry.refresh_minutes


async def _tick(
    run: RunSources,
    run_log: IndexRunLog,
    leases: Leases,
    lease_name: str,
    catalog: Catalog,
    default_interval_minutes: float,
    clock: Callable[[], datetime],
) -> None:
    try:
        lease = await leases.acquire(
            lease_name, ttl=SCHEDULE_LEASE_SECONDS, heartbeat=SCHEDULE_HEARTBEAT_SECONDS
        )
    except LeaseTaken:
        return  # another replica is deciding (or running what was due)
    try:
        lease.keep_alive(lambda: {"schedule": "refreshing due sources"})
        now = clock()
        statuses = source_statuses(catalog, await run_log.last_source_runs(), default_interval_minutes, now)
        due = [status.name for status in statuses if status.due(now)]
        if due:
            await _refresh(run, due)
    finally:
        await lease.release()


async def _refresh(run: RunSources, names: list[str]) -> None:
    try:
        result = await run(names)
    except IndexAlreadyRunning:
        return  # another run (maybe another replica's) is going: the next tick looks again
    except Exception as exc:  # the next interval tries again; the previous index keeps serving
        log.error("Scheduled refresh of %s failed: %s", ", ".join(names), exc)
        return
    if result.added or result.updated or result.deleted or result.failed:
        log.info("Scheduled refresh of %s:\n%s", ", ".join(names), result.summary())


class ConfiguredSources:
    """`SourceDirectory` over the sources file (or DOCS_PATHS) and the shared run log."""

    def __init__(self, settings: Settings, run_log: IndexRunLog | None) -> None:
        self.settings = settings
        self.run_log = run_log

    async def names(self) -> list[str]:
        return (await asyncio.to_thread(load_catalog, self.settings)).names

    async def statuses(self) -> list[SourceStatus]:
        catalog = await asyncio.to_thread(load_catalog, self.settings)
        last_runs = await self.run_log.last_source_runs() if self.run_log is not None else {}
        return source_statuses(catalog, last_runs, self.settings.reindex_interval_minutes, datetime.now(UTC))

    async def status_lines(self) -> list[str]:
        now = datetime.now(UTC)
        return [status.describe(now) for status in await self.statuses()]
