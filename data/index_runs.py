"""The index run log: every run is recorded when it starts and updated when it ends, for `status`.

A row says "running" until its run ends as succeeded, failed or interrupted. A run whose process
died (killed, crashed, its machine lost) cannot say so itself; its lease does (the heartbeat
stopped, or the process is gone), so `last_run` reports it as interrupted, and the next run under
the same lease writes that down for good.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from sqlalchemy import BigInteger, DateTime, Integer, Text, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from data.leases import HeldLease, LeaseHolder, LeaseRow, Leases, Progress, acquire_all

RunStatus = Literal["running", "succeeded", "failed", "interrupted"]
_STALE_SCAN = 20  # latest rows a starting run looks through for runs of its lease left "running"
_SOURCE_SCAN = 200  # latest rows looked through for each source's last run (a run names its sources)
DIED = "interrupted: its process stopped before the run finished"


class RunLogBase(DeclarativeBase):
    """The table of this module (`data.database.Database.create` creates it)."""


class IndexRunRow(RunLogBase):
    """One index run: its state, and once it ended its result, as JSON."""

    __tablename__ = "index_runs"

    # SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=lambda: datetime.now(UTC))
    result: Mapped[str] = mapped_column(Text)


class IndexRunResult(Protocol):
    """What `record_run` needs from an indexing result."""

    def to_dict(self) -> dict[str, Any]: ...


def _interrupted(run: dict[str, Any], holder: LeaseHolder | None) -> dict[str, Any]:
    """A run left "running" by a process that died, described as what it was."""
    died = DIED
    if holder is not None:
        died += f" (last heartbeat {holder.heartbeat_at.isoformat(timespec='seconds')})"
    interrupted = {**run, "status": "interrupted", "error": run.get("error") or died}
    if holder is not None and holder.progress is not None:
        interrupted.setdefault("progress", holder.progress)
    return interrupted


class SqlIndexRunLog:
    """The indexer's `IndexRunLog`: its lease, and the `index_runs` table that `status` reads."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], leases: Leases) -> None:
        self._sessions = sessions
        self._leases = leases

    async def begin_run(
        self,
        name: str,
        *,
        full: bool,
        ttl: float,
        heartbeat: float,
        progress: Progress,
        family: str | None = None,
    ) -> tuple[HeldLease, int]:
        """Take the lease `name` and record the run as running, in one transaction: no run goes
        unrecorded, however early it is killed. Raises `LeaseTaken` while another run holds it.

        Rows still marked running whose lease is `name`, or starts with `family` and is no longer
        held, are from runs that died: they are recorded as interrupted. Returns the lease and the
        row id for `record_run`.
        """
        started: list[int] = []

        async def record(session: AsyncSession, lease: HeldLease) -> None:
            latest = await session.scalars(
                select(IndexRunRow).order_by(IndexRunRow.id.desc()).limit(_STALE_SCAN)
            )
            running = [(row, json.loads(row.result)) for row in latest]
            running = [(row, run) for row, run in running if run.get("status") == "running"]
            held = {
                holder.name
                for holder in map(LeaseHolder.from_row, await session.scalars(select(LeaseRow)))
                if holder.alive
            }
            for row, run in running:
                other = str(run.get("lease", ""))
                if other == lease.name or (family and other.startswith(family) and other not in held):
                    row.result = json.dumps(_interrupted(run, None))
            state = {"status": "running", "full": full, "lease": name, "token": lease.token}
            row = IndexRunRow(result=json.dumps({**state, "owner": lease.owner}))
            session.add(row)
            await session.flush()
            started.append(row.id)

        lease = await self._leases.acquire(
            name, ttl=ttl, heartbeat=heartbeat, progress=progress, when_taken=record
        )
        return lease, started[0]

    async def record_run(
        self, result: IndexRunResult, *, run_id: int | None = None, status: RunStatus | None = None
    ) -> None:
        """Store how a run ended: into the row `start_run` made, or as a new row without `run_id`.

        `status` defaults to failed when the result has an error, else succeeded.
        """
        outcome = result.to_dict()
        outcome["status"] = status or ("failed" if outcome.get("error") else "succeeded")
        outcome["finished_at"] = datetime.now(UTC).isoformat()
        async with self._sessions.begin() as session:
            row = await session.get(IndexRunRow, run_id) if run_id is not None else None
            if row is None:
                session.add(IndexRunRow(result=json.dumps(outcome, default=str)))
            else:
                row.result = json.dumps({**json.loads(row.result), **outcome}, default=str)

    async def acquire_all(
        self, names: Sequence[str], *, ttl: float, heartbeat: float, progress: Progress | None = None
    ) -> list[HeldLease]:
        """Every lease of `names` or none (`LeaseTaken` for the first one held)."""
        return await acquire_all(self._leases, names, ttl=ttl, heartbeat=heartbeat, progress=progress)

    async def holder(self, name: str) -> LeaseHolder | None:
        return await self._leases.holder(name)

    async def last_source_runs(self, limit: int = _SOURCE_SCAN) -> dict[str, dict[str, Any]]:
        """Per source name, how the latest ended run that read it went: its `sources` entry plus
        the run's `status`, `full` and `finished_at` (what `status` and the schedule need)."""
        async with self._sessions() as session:
            rows = await session.scalars(select(IndexRunRow).order_by(IndexRunRow.id.desc()).limit(limit))
            results = [json.loads(row.result) for row in rows]
        latest: dict[str, dict[str, Any]] = {}
        for run in results:
            if run.get("status") in (None, "running"):
                continue
            for source in run.get("sources") or []:
                name = source.get("name")
                if isinstance(name, str) and name not in latest:
                    latest[name] = {
                        **source,
                        "status": run["status"],
                        "full": bool(run.get("full")),
                        "finished_at": run.get("finished_at"),
                    }
        return latest

    async def last_run(self) -> dict[str, Any] | None:
        """The latest run (its result's `to_dict()`, `status` and `recorded_at`), or None.

        A running one carries its holder's live `progress`; one whose holder died is interrupted.
        """
        async with self._sessions() as session:
            row = await session.scalar(select(IndexRunRow).order_by(IndexRunRow.id.desc()).limit(1))
        if row is None:
            return None
        run: dict[str, Any] = json.loads(row.result)
        recorded_at = row.recorded_at if row.recorded_at.tzinfo else row.recorded_at.replace(tzinfo=UTC)
        run.setdefault("recorded_at", recorded_at.isoformat())
        run.setdefault("status", "failed" if run.get("error") else "succeeded")  # rows from before statuses
        if run["status"] != "running":
            return run
        holder = await self._leases.holder(str(run.get("lease", "")))
        if holder is None or holder.token != run.get("token"):
            return _interrupted(run, None)
        if not holder.alive:
            return _interrupted(run, holder)
        return {**run, "progress": holder.progress, "heartbeat_at": holder.heartbeat_at.isoformat()}
