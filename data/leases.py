"""Leases: at most one holder of a named job (such as "index:DocChunks") across processes and replicas.

A lease is a row in the SQL database (the SQLite file, or PostgreSQL via DATABASE_URL): the one
place every process of a deployment already shares (chat threads and event dedupe live there),
and one with an atomic conditional write, which Weaviate lacks. Taking a lease is a single
INSERT … ON CONFLICT DO UPDATE … WHERE expired, so two processes can never both win. The holder
renews it every heartbeat and writes its progress into it, so a refused caller can show how far
the holder is; a holder that stops renewing (crashed, killed, paused) loses it `ttl` seconds after
its last heartbeat, so nobody waits forever. On Linux, a holder whose process is gone from this
very machine is replaced at once, without waiting for the expiry.

Expiry compares the writers' own clocks: machines sharing a database must keep them in step
(NTP), to well within the lease time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Integer, String, Text, delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

log = logging.getLogger(__name__)

Progress = dict[str, Any]
# Statements to run in the transaction that takes a lease (both happen, or neither).
WhenTaken = Callable[[AsyncSession, "HeldLease"], Awaitable[None]]


class LeaseBase(DeclarativeBase):
    """The table of this module (`data.database.Database.create` creates it)."""


class LeaseRow(LeaseBase):
    """The current holder of one named lease; a released lease has no row."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    token: Mapped[str] = mapped_column(String(64))  # this acquisition, so a late holder can't renew
    owner: Mapped[str] = mapped_column(String(255))  # "pid 4242 on build-1", for messages
    machine: Mapped[str] = mapped_column(String(255))  # where `pid` names the holder ("" when unknown)
    pid: Mapped[int] = mapped_column(Integer)
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    progress: Mapped[str | None] = mapped_column(Text, nullable=True)  # the holder's JSON


def _utc(value: datetime) -> datetime:
    """SQLite hands datetimes back without a zone; every one stored here is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@functools.cache
def this_machine() -> str:
    """This host, boot and PID namespace: where a pid of ours means the same process to everyone.

    Empty when that cannot be known (not Linux), which turns off the dead-process shortcut: a
    container on the host network shares the hostname but not the pids.
    """
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    return f"{socket.gethostname()}/{boot}/{namespace}"


def _process_gone(pid: int) -> bool:
    """True when no process `pid` runs here (a zombie counts as gone: it will never renew)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's process: alive
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] in (["Z"], ["X"])


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds a lease, since when, their last heartbeat and the progress they reported."""

    name: str
    token: str
    owner: str
    machine: str
    pid: int
    acquired_at: datetime
    heartbeat_at: datetime
    expires_at: datetime
    progress: Progress | None

    @classmethod
    def from_row(cls, row: LeaseRow) -> LeaseHolder:
        return cls(
            name=row.name,
            token=row.token,
            owner=row.owner,
            machine=row.machine,
            pid=row.pid,
            acquired_at=_utc(row.acquired_at),
            heartbeat_at=_utc(row.heartbeat_at),
            expires_at=_utc(row.expires_at),
            progress=json.loads(row.progress) if row.progress else None,
        )

    @property
    def gone(self) -> bool:
        """Its process is known to have ended (only knowable for a process of this machine)."""
        return bool(self.machine) and self.machine == this_machine() and _process_gone(self.pid)

    @property
    def alive(self) -> bool:
        """Renewed within its lease time and not known to be dead."""
        return datetime.now(UTC) < self.expires_at and not self.gone

    def heartbeat_age(self) -> float:
        return max(0.0, (datetime.now(UTC) - self.heartbeat_at).total_seconds())

    def describe(self) -> str:
        """E.g. "pid 4242 on build-1, last heartbeat 2s ago"."""
        return f"{self.owner}, last heartbeat {self.heartbeat_age():.0f}s ago"


class LeaseTaken(Exception):
    """Someone else holds the lease; `holder` says who and how far they are."""

    def __init__(self, holder: LeaseHolder) -> None:
        self.holder = holder
        super().__init__(f"The lease {holder.name} is held by {holder.describe()}")


class LeaseLost(Exception):
    """A holder found its lease gone: it expired (no heartbeat in time) and was taken or released."""


class Leases:
    """Named leases in one database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._sqlite = engine.dialect.name == "sqlite"

    async def acquire(
        self,
        name: str,
        *,
        ttl: float,
        heartbeat: float,
        progress: Progress | None = None,
        when_taken: WhenTaken | None = None,
    ) -> HeldLease:
        """Take `name` for `ttl` seconds (renewed every `heartbeat` once `keep_alive` runs).

        `when_taken` runs in the same transaction as the taking (a run's record: no run is ever
        without one, however it is killed). Raises `LeaseTaken` with the holder while it is held.
        """
        token = uuid.uuid4().hex
        for _attempt in range(3):  # the holder may release (or die) between our two statements
            lease = HeldLease(self, self._values(name, token, ttl, progress), heartbeat=heartbeat)
            insert = sqlite.insert(LeaseRow) if self._sqlite else postgresql.insert(LeaseRow)
            claim = (
                insert.values(**lease.row)
                .on_conflict_do_update(
                    index_elements=["name"],
                    set_={key: value for key, value in lease.row.items() if key != "name"},
                    where=LeaseRow.expires_at < lease.row["acquired_at"],
                )
                .returning(LeaseRow.token)
            )
            async with self._sessions.begin() as session:
                won = (await session.execute(claim)).scalar_one_or_none() == token
                if won and when_taken is not None:
                    await when_taken(session, lease)
            holder = None if won else await self.holder(name)
            if holder is not None and holder.gone:
                log.warning("Taking over lease %s from %s: that process is gone", name, holder.owner)
                won = await self._replace(holder, lease, when_taken)
            if won:
                return lease
            if holder is not None:
                raise LeaseTaken(holder)
        raise LeaseTaken(await self._holder_or_fail(name))

    async def holder(self, name: str) -> LeaseHolder | None:
        """The current holder (possibly expired but not yet replaced), or None."""
        async with self._sessions() as session:
            row = await session.get(LeaseRow, name)
        return None if row is None else LeaseHolder.from_row(row)

    async def _holder_or_fail(self, name: str) -> LeaseHolder:
        holder = await self.holder(name)
        if holder is None:
            raise RuntimeError(f"The lease {name} could be neither taken nor read")
        return holder

    @staticmethod
    def _values(name: str, token: str, ttl: float, progress: Progress | None) -> dict[str, Any]:
        now = datetime.now(UTC)
        return {
            "name": name,
            "token": token,
            "owner": f"pid {os.getpid()} on {socket.gethostname()}",
            "machine": this_machine(),
            "pid": os.getpid(),
            "acquired_at": now,
            "heartbeat_at": now,
            "expires_at": now + timedelta(seconds=ttl),
            "progress": json.dumps(progress) if progress is not None else None,
        }

    async def _replace(self, stale: LeaseHolder, lease: HeldLease, when_taken: WhenTaken | None) -> bool:
        """Take the lease from `stale` (a dead holder) unless someone else did first."""
        replace = (
            update(LeaseRow)
            .where(LeaseRow.name == stale.name, LeaseRow.token == stale.token)
            .values(**{key: value for key, value in lease.row.items() if key != "name"})
        )
        async with self._sessions.begin() as session:
            won = (await session.execute(replace)).rowcount == 1  # type: ignore[attr-defined]
            if won and when_taken is not None:
                await when_taken(session, lease)
        return bool(won)

    async def _renew(self, name: str, token: str, ttl: float, progress: Progress | None) -> bool:
        """Extend our lease; False when it is no longer ours (expired and taken, or released)."""
        now = datetime.now(UTC)
        values: dict[str, Any] = {"heartbeat_at": now, "expires_at": now + timedelta(seconds=ttl)}
        if progress is not None:
            values["progress"] = json.dumps(progress)
        renew = update(LeaseRow).where(LeaseRow.name == name, LeaseRow.token == token).values(**values)
        async with self._sessions.begin() as session:
            return (await session.execute(renew)).rowcount == 1  # type: ignore[attr-defined]

    async def _release(self, name: str, token: str) -> None:
        async with self._sessions.begin() as session:
            await session.execute(delete(LeaseRow).where(LeaseRow.name == name, LeaseRow.token == token))


class HeldLease:
    """A lease this process holds: renew it, check it before acting on it, release it.

    Between heartbeats the holder trusts its last renewal for half the lease time (by the
    monotonic clock, which also counts time spent paused); `confirm` asks the database once that
    is up, so a holder that was stopped for longer than its lease finds out before its next write.
    """

    def __init__(self, leases: Leases, row: dict[str, Any], *, heartbeat: float) -> None:
        self.row = row  # as taken: name, token, owner, times
        self.name: str = row["name"]
        self.token: str = row["token"]
        self.owner: str = row["owner"]
        self.ttl: float = (row["expires_at"] - row["acquired_at"]).total_seconds()
        self.heartbeat = heartbeat
        self._leases = leases
        self._renewed = time.monotonic()  # when the last renewal was sent (before it was written)
        self._lost: str | None = None
        self._progress: Callable[[], Progress] | None = None
        self._beat: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()  # set by `release`: the heartbeat ends between two renewals

    async def renew(self) -> None:
        """Extend the lease (with the current progress); raises `LeaseLost` when it is not ours."""
        if self._lost is not None:
            raise LeaseLost(self._lost)
        sent = time.monotonic()
        progress = self._progress() if self._progress is not None else None
        # Shielded: a run cancelled (Ctrl-C, SIGTERM) while renewing must not cut the database
        # call in half (its connection would be left to the garbage collector, not the pool).
        if await asyncio.shield(self._leases._renew(self.name, self.token, self.ttl, progress)):
            self._renewed = sent
            return
        holder = await self._leases.holder(self.name)
        now_held = f"; {holder.describe()} holds it now" if holder is not None else ""
        self._lost = (
            f"this run lost its lease {self.name}: no heartbeat reached the database for "
            f"{time.monotonic() - self._renewed:.0f}s (the lease lasts {self.ttl:g}s){now_held}"
        )
        raise LeaseLost(self._lost)

    async def confirm(self, *, fresh: bool = False) -> None:
        """Raise `LeaseLost` unless the lease is still ours; `fresh` always asks the database."""
        if self._lost is not None:
            raise LeaseLost(self._lost)
        if fresh or time.monotonic() - self._renewed > self.ttl / 2:
            await self.renew()

    def keep_alive(self, progress: Callable[[], Progress]) -> None:
        """Renew every `heartbeat` seconds from a task, writing `progress()` into the lease."""
        self._progress = progress
        if self._beat is None:
            self._beat = asyncio.create_task(self._heartbeats(), name=f"lease-heartbeat:{self.name}")

    async def _heartbeats(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.heartbeat)
                return  # released
            try:
                await self.renew()
            except LeaseLost as exc:
                log.error("%s", exc)
                return
            except Exception:  # the database hiccuped: `confirm` refuses writes once the lease may be gone
                log.warning("Could not renew the lease %s; trying again", self.name, exc_info=True)

    async def release(self) -> None:
        """Stop the heartbeat and give the lease up (unless it was lost: then it is someone else's)."""
        beat, self._beat = self._beat, None
        if beat is not None:
            # Let a renewal in flight finish: a database call cancelled half-way can leave its
            # connection to the garbage collector instead of the pool.
            self._stop.set()
            done, _ = await asyncio.wait([beat], timeout=max(1.0, self.heartbeat))
            if not done:
                beat.cancel()
                await asyncio.wait([beat])  # (not `await beat`: its CancelledError is not ours to raise)
        if self._lost is None:
            await asyncio.shield(self._leases._release(self.name, self.token))
        self._lost = self._lost or "the lease was released"


class LeaseGroup:
    """Several leases one job holds together (a run's sources, and its own): confirmed, kept
    alive and released as one; `name` is the first's (the one its record names)."""

    def __init__(self, leases: Sequence[HeldLease]) -> None:
        if not leases:
            raise ValueError("a lease group needs at least one lease")
        self.leases = list(leases)
        self.name = self.leases[0].name

    async def confirm(self, *, fresh: bool = False) -> None:
        for lease in self.leases:
            await lease.confirm(fresh=fresh)

    def keep_alive(self, progress: Callable[[], Progress]) -> None:
        for lease in self.leases:
            lease.keep_alive(progress)

    async def release(self) -> None:
        """Give every lease up; one that cannot be released expires by itself."""
        for lease in reversed(self.leases):
            try:
                await lease.release()
            except Exception:
                log.warning("Could not release the lease %s; it expires by itself", lease.name, exc_info=True)


async def acquire_all(
    leases: Leases, names: Sequence[str], *, ttl: float, heartbeat: float, progress: Progress | None = None
) -> list[HeldLease]:
    """Every lease of `names` or none (`LeaseTaken` for the first one held). Taken in sorted order,
    so two jobs wanting overlapping sets never each hold part of what the other needs for long."""
    held: list[HeldLease] = []
    try:
        for name in sorted(set(names)):
            held.append(await leases.acquire(name, ttl=ttl, heartbeat=heartbeat, progress=progress))
    except BaseException:
        if held:
            await LeaseGroup(held).release()
        raise
    return held
