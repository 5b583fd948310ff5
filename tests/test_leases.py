"""Leases and the index run log, on a real SQLite file and a real PostgreSQL cluster.

A lease must have one holder however many processes ask at once, pass on when its holder stops
renewing it (at once when that process is gone from this machine), and tell a holder that lost it.
The holders in other processes here are real processes, stopped and killed with real signals.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from test_chat_store import dsn, index_result, postgres_dsn, server_dsn  # noqa: F401  (fixtures)

from configs.config import PROJECT_ROOT
from data.database import Database
from data.index_runs import IndexRunRow
from data.leases import LeaseLost, LeaseRow, LeaseTaken

NAME = "index:Leased"

# Another process holding the lease (until killed): prints "held" once it does.
HOLDER = """
import asyncio, sys
from data.database import Database

async def main() -> None:
    database = Database(sys.argv[1])
    await database.create()
    lease = await database.leases.acquire(sys.argv[2], ttl=600, heartbeat=1, progress={"phase": "indexing"})
    lease.keep_alive(lambda: {"phase": "indexing", "documents_done": 3})
    print("held", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.fixture
async def database(dsn: str) -> AsyncIterator[Database]:  # noqa: F811  (the imported fixture)
    db = Database(dsn)
    await db.create()
    yield db
    await db.dispose()


async def test_one_holder_however_many_ask_at_once(dsn: str) -> None:  # noqa: F811
    """Separate engines, as separate processes would have: exactly one wins, the others see it."""
    databases = [Database(dsn) for _ in range(6)]
    await databases[0].create()
    try:
        outcomes = await asyncio.gather(
            *(db.leases.acquire(NAME, ttl=60, heartbeat=5) for db in databases), return_exceptions=True
        )
        winners = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
        refused = [outcome for outcome in outcomes if isinstance(outcome, LeaseTaken)]
        assert len(winners) == 1 and len(refused) == 5, outcomes
        assert {taken.holder.token for taken in refused} == {winners[0].token}
        await winners[0].release()
        again = await databases[1].leases.acquire(NAME, ttl=60, heartbeat=5)  # released: free at once
        await again.release()
    finally:
        for db in databases:
            await db.dispose()


async def test_the_holder_writes_its_progress_with_each_heartbeat(database: Database) -> None:
    done = {"documents_done": 0}
    lease = await database.leases.acquire(NAME, ttl=3, heartbeat=0.1, progress={"documents_done": 0})
    lease.keep_alive(lambda: dict(done))
    try:
        first = await database.leases.holder(NAME)
        assert first is not None and first.progress == {"documents_done": 0} and first.alive
        done["documents_done"] = 7
        await asyncio.sleep(0.4)
        later = await database.leases.holder(NAME)
        assert later is not None and later.progress == {"documents_done": 7}
        assert later.heartbeat_at > first.heartbeat_at and later.expires_at > first.expires_at
        assert f"pid {os.getpid()} on " in later.describe()
        with pytest.raises(LeaseTaken) as caught:
            await database.leases.acquire(NAME, ttl=3, heartbeat=0.1)
        assert caught.value.holder.progress == {"documents_done": 7}
    finally:
        await lease.release()
    assert await database.leases.holder(NAME) is None


async def test_an_expired_lease_passes_on_and_its_old_holder_finds_out(database: Database) -> None:
    old = await database.leases.acquire(NAME, ttl=1, heartbeat=0.3)  # and never renewed: "paused"
    await old.confirm()  # fresh: trusted without asking
    with pytest.raises(LeaseTaken):
        await database.leases.acquire(NAME, ttl=1, heartbeat=0.3)
    await asyncio.sleep(1.2)
    new = await database.leases.acquire(NAME, ttl=60, heartbeat=5)
    with pytest.raises(LeaseLost, match=f"lost its lease {NAME}.*pid {os.getpid()}"):
        await old.confirm()  # its renewal is older than half the lease: it asks, and learns
    with pytest.raises(LeaseLost):
        await old.confirm(fresh=True)
    await old.release()  # must not release the new holder's lease
    holder = await database.leases.holder(NAME)
    assert holder is not None and holder.token == new.token
    await new.release()


async def test_a_lost_lease_is_noticed_by_the_heartbeat(database: Database) -> None:
    lease = await database.leases.acquire(NAME, ttl=3, heartbeat=0.1)
    lease.keep_alive(dict)
    async with database.sessions.begin() as session:  # an operator (or a bug) removes the row
        await session.delete(await session.get(LeaseRow, NAME))
    await asyncio.sleep(0.4)
    with pytest.raises(LeaseLost):
        await lease.confirm()  # no database round trip: the heartbeat already found out
    await lease.release()


async def spawn_holder(database_dsn: str) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        database_dsn,
        NAME,
        stdout=asyncio.subprocess.PIPE,
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 60)
    assert line == b"held\n", line
    return process


async def heartbeat_seen(database: Database) -> None:
    """Return just after the other process's first heartbeat reached the database."""
    for _ in range(500):
        holder = await database.leases.holder(NAME)
        if holder is not None and holder.progress == {"phase": "indexing", "documents_done": 3}:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the holder never renewed its lease")


async def test_a_paused_holder_keeps_it_a_killed_one_loses_it_at_once(
    database: Database,
    dsn: str,  # noqa: F811
) -> None:
    """Same machine: a stopped process is alive (it may resume), a killed one is gone."""
    holder = await spawn_holder(dsn)
    try:
        await heartbeat_seen(database)  # stopped right after one: not in the middle of a write
        holder.send_signal(signal.SIGSTOP)
        with pytest.raises(LeaseTaken) as caught:
            await database.leases.acquire(NAME, ttl=60, heartbeat=5)
        assert caught.value.holder.pid == holder.pid and not caught.value.holder.gone
        assert caught.value.holder.progress == {"phase": "indexing", "documents_done": 3}
    finally:
        holder.kill()
        await holder.wait()
    lease = await database.leases.acquire(NAME, ttl=60, heartbeat=5)  # its lease had 10 minutes left
    await lease.release()


async def test_the_run_log_records_runs_as_they_start_and_end(database: Database) -> None:
    log = database.index_runs
    assert await log.last_run() is None
    lease, first = await log.begin_run(NAME, full=True, ttl=1, heartbeat=0.3, progress={"phase": "scanning"})
    running = await log.last_run()
    assert running is not None and running["status"] == "running" and running["full"] is True
    assert running["progress"] == {"phase": "scanning"} and "seen" not in running
    with pytest.raises(LeaseTaken):  # a refused run leaves no record
        await log.begin_run(NAME, full=False, ttl=1, heartbeat=0.3, progress={})
    await log.record_run(index_result(3), run_id=first)
    await lease.release()
    done = await log.last_run()
    assert done is not None and done["status"] == "succeeded" and done["added"] == 3

    # A run whose process died: nobody records its end; its lease expires.
    await log.begin_run(NAME, full=False, ttl=1, heartbeat=0.3, progress={"phase": "indexing"})
    await asyncio.sleep(1.2)
    interrupted = await log.last_run()
    assert interrupted is not None and interrupted["status"] == "interrupted"
    assert "its process stopped before the run finished (last heartbeat" in interrupted["error"]
    assert interrupted["progress"] == {"phase": "indexing"}

    # The next run under that lease writes it down: the row itself says interrupted now.
    successor, _ = await log.begin_run(NAME, full=False, ttl=60, heartbeat=5, progress={})
    await successor.release()  # (and dies without recording its end: its row stays running)
    async with database.sessions() as session:
        rows = list(await session.scalars(select(IndexRunRow).order_by(IndexRunRow.id)))
    statuses = [json.loads(row.result)["status"] for row in rows]
    assert statuses == ["succeeded", "interrupted", "running"]
    last = await log.last_run()
    assert last is not None and last["status"] == "interrupted"  # its lease is gone: not running


async def test_a_finished_run_recorded_in_one_go(database: Database) -> None:
    await database.index_runs.record_run(index_result(2))
    failed = index_result(1)
    failed.error = "indexing stopped while embedding chunks: boom"
    await database.index_runs.record_run(failed)
    last = await database.index_runs.last_run()
    assert last is not None and last["status"] == "failed" and last["error"] == failed.error
