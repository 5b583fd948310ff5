"""Fault injection over real processes: `main.py index` runs paused, replaced and killed.

Every run here is a real `python main.py index` process against one real Weaviate (the session's
server, as WEAVIATE_URL: "against one Weaviate") and one SQLite database in a shared DATA_DIR, as
two shells or replicas of a deployment would have them. Runs are paused with SIGSTOP and killed
with SIGKILL, SIGTERM and SIGINT at random points (the seed is printed; FAULT_SEED=n repeats a
sequence). Afterwards the index must equal a clean build of the same files: the same documents,
their chunks and nothing else, and no generation besides the serving one.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from docs_corpus import LARGE, build_corpus
from indexing_support import assert_clean_build, clean_build, until
from sqlalchemy import select

from configs.config import PROJECT_ROOT, Settings
from data.database import Database
from data.index_runs import IndexRunRow
from data.leases import LeaseHolder, LeaseRow
from data.vector_store import WeaviateVectorStore
from data.weaviate_server import EmbeddedWeaviate
from services.indexing.contract import describe_run

MakeSettings = Callable[..., Settings]
CHANGELOG_BYTES = 45_000  # the start of the fixture changelog: ~80 chunks, two embedding batches
_INHERITED = ("PATH", "HOME", "TMPDIR", "LANG", "LC_ALL")


@dataclass
class Finished:
    code: int
    stdout: str
    stderr: str


class IndexProcess:
    """One `main.py index` process and what the test can see of it: its lease, its exit."""

    def __init__(self, process: asyncio.subprocess.Process, deployment: Deployment) -> None:
        self.process = process
        self.deployment = deployment
        self.pid = process.pid

    async def lease(self) -> LeaseHolder | None:
        """The index lease, when this process holds it."""
        holder = await self.deployment.lease()
        return holder if holder is not None and holder.pid == self.pid else None

    @property
    def exited(self) -> bool:
        return self.process.returncode is not None

    async def until_writing(self, chunks: int = 1) -> None:
        """Until the lease shows at least `chunks` written (or the process ended)."""

        async def written() -> bool:
            lease = await self.lease()
            return self.exited or (
                lease is not None and (lease.progress or {}).get("chunks_written", 0) >= chunks
            )

        await until(written, f"index run {self.pid} writing", seconds=120, every=0.02)

    async def pause_between_heartbeats(self) -> None:
        """SIGSTOP just after a heartbeat reached the database, so the process is stopped between
        two writes to it and not while holding SQLite's write lock (which would block the others)."""
        first = await self.lease()
        assert first is not None, "not the lease holder"

        async def renewed() -> bool:
            lease = await self.lease()
            return lease is not None and lease.heartbeat_at > first.heartbeat_at

        await until(renewed, "a heartbeat", seconds=30, every=0.005)
        self.process.send_signal(signal.SIGSTOP)

    async def finish(self) -> Finished:
        stdout, stderr = await asyncio.wait_for(self.process.communicate(), 180)
        assert self.process.returncode is not None
        return Finished(self.process.returncode, stdout.decode(), stderr.decode())


@dataclass
class Deployment:
    """DATA_DIR, DOCS_PATHS and WEAVIATE_* as the processes see them, and the same for the test."""

    settings: Settings
    env: dict[str, str]
    cwd: Path
    database: Database
    files: list[Path]
    started: list[asyncio.subprocess.Process] = field(default_factory=list)

    async def start(self, *args: str, **env: str) -> IndexProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(PROJECT_ROOT / "main.py"),
            *args,
            cwd=self.cwd,
            env={**self.env, **env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self.started.append(process)
        return IndexProcess(process, self)

    async def stop_all(self) -> None:
        """After a failed test: no stopped or running process may outlive it."""
        for process in self.started:
            if process.returncode is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
                await process.wait()

    async def run(self, *args: str, **env: str) -> Finished:
        return await (await self.start(*args, **env)).finish()

    async def lease(self) -> LeaseHolder | None:
        """The lease a run records itself under (a rebuild's `index:<collection>`, an incremental
        run's own `index:<collection>:run:<id>`), the newest if several are held."""
        family = f"index:{self.settings.weaviate_collection}"
        async with self.database.sessions() as session:
            rows = await session.scalars(select(LeaseRow).where(LeaseRow.name.startswith(family)))
            held = [LeaseHolder.from_row(row) for row in rows if row.name == family or ":run:" in row.name]
        return max(held, key=lambda holder: holder.acquired_at, default=None)

    async def runs(self) -> list[dict[str, object]]:
        """Every recorded run, oldest first, as stored."""
        async with self.database.sessions() as session:
            rows = await session.scalars(select(IndexRunRow).order_by(IndexRunRow.id))
            return [json.loads(row.result) for row in rows]

    async def assert_clean_build(self) -> None:
        async with WeaviateVectorStore(self.settings) as store:
            await assert_clean_build(store, self.settings, self.files)


@pytest.fixture
async def deployment(
    tmp_path: Path, make_settings: MakeSettings, weaviate_server: EmbeddedWeaviate
) -> AsyncIterator[Deployment]:
    docs = build_corpus(tmp_path / "docs")
    (docs / LARGE.name).write_text(LARGE.read_text(encoding="utf-8")[:CHANGELOG_BYTES], encoding="utf-8")
    settings = make_settings(data_dir=tmp_path / "data", docs_paths=[str(docs)])
    env = {name: os.environ[name] for name in _INHERITED if name in os.environ}
    env.update(
        DATA_DIR=str(settings.data_dir),
        DOCS_PATHS=str(docs),
        WEAVIATE_URL=weaviate_server.url,
        WEAVIATE_GRPC_URL=weaviate_server.grpc_url,
        WEAVIATE_API_KEY=weaviate_server.api_key.get_secret_value(),
        WEAVIATE_COLLECTION=settings.weaviate_collection,
        INDEX_LEASE_SECONDS="600",  # a paused holder keeps it however slowly the others start
        INDEX_HEARTBEAT_SECONDS="0.2",
    )
    settings.data_dir.mkdir()
    database = Database(settings.database_dsn)
    await database.create()
    deployment = Deployment(settings, env, tmp_path, database, sorted(docs.iterdir()))
    try:
        yield deployment
    finally:
        await deployment.stop_all()
        await database.dispose()


async def test_a_second_run_is_refused_while_the_first_is_paused(deployment: Deployment) -> None:
    """Two `--full` runs (and an incremental one) at once: the later ones are refused, saying how far
    the first is, even while it is stopped; the first then finishes into a clean index."""
    first = await deployment.start("index", "--full")
    await first.until_writing()
    await first.pause_between_heartbeats()
    try:
        second, third = await asyncio.gather(deployment.run("index", "--full"), deployment.run("index"))
    finally:
        first.process.send_signal(signal.SIGCONT)
    for refused in (second, third):
        assert refused.code != 0, refused
        assert "A reindex is already running (indexing (full rebuild): " in refused.stderr
        assert f"in pid {first.pid} on " in refused.stderr and "chunks written" in refused.stderr
    done = await first.finish()
    assert done.code == 0, done.stderr
    assert "Full rebuild of" in done.stdout and f"{len(deployment.files)} added" in done.stdout
    await deployment.assert_clean_build()
    assert [run["status"] for run in await deployment.runs()] == ["succeeded"]  # refused runs never ran


async def test_a_paused_run_that_lost_its_lease_stops_without_touching_the_index(
    deployment: Deployment,
) -> None:
    """The first run (on an empty index) is stopped for longer than its lease; a `--full` takes over
    and finishes; the first, resumed, finds out before its next write and fails, changing nothing."""
    short = {"INDEX_LEASE_SECONDS": "2", "INDEX_HEARTBEAT_SECONDS": "0.2"}
    first = await deployment.start("index", **short)
    await first.until_writing()
    await first.pause_between_heartbeats()
    try:
        await asyncio.sleep(2.5)  # its lease expires
        takeover = await deployment.run("index", "--full", **short)
        assert takeover.code == 0, takeover.stderr
        assert f"{len(deployment.files)} added" in takeover.stdout
    finally:
        first.process.send_signal(signal.SIGCONT)
    resumed = await first.finish()
    assert resumed.code != 0, resumed.stdout
    # Usually it learns before its next write that its lease is gone ("lost its lease"); a batch it
    # was already sending when it was stopped finds its collection dropped by the takeover instead.
    assert "Indexing stopped while " in resumed.stderr, resumed.stderr
    print(f"\nthe resumed run: {resumed.stderr.strip().splitlines()[-1]}")
    await deployment.assert_clean_build()
    statuses = [(run["status"], run["full"]) for run in await deployment.runs()]
    assert statuses == [("failed", False), ("succeeded", True)]


async def test_killed_runs_leave_nothing_a_clean_build_would_not_have(deployment: Deployment) -> None:
    """SIGKILL, SIGTERM and SIGINT at random points of a first build, a rebuild and an incremental
    run re-indexing a changed file; the run after them leaves the index equal to a clean build, and
    every run is recorded."""
    seed = int(os.environ.get("FAULT_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    built = clean_build(deployment.settings, deployment.files).registry
    changelog = deployment.cwd / "docs" / LARGE.name
    everything = sum(count for _, count in built.values())
    faults = (
        (("index",), signal.SIGKILL, everything),
        (("index", "--full"), signal.SIGTERM, everything),
        (("index",), signal.SIGINT, built[str(changelog.resolve())][1]),  # once changed, below
    )
    stopped: list[str] = [f"FAULT_SEED={seed}"]
    finished: list[bool] = []
    for args, kill, total in faults:
        if kill == signal.SIGINT:  # an update cut short leaves new chunks over old ones
            changelog.write_text("Maintenance window: Sundays.\n\n" + changelog.read_text(encoding="utf-8"))
        run = await deployment.start(*args)
        threshold, delay = rng.randrange(total), rng.uniform(0.0, 0.6)
        await run.until_writing(threshold)
        await asyncio.sleep(delay)
        if not run.exited:
            run.process.send_signal(kill)
        ended = await run.finish()
        finished.append("finished in" in ended.stdout)  # the kill came after the run had ended
        stopped.append(
            f"{' '.join(args)}: {kill.name} at {threshold}/{total} chunks + {delay:.2f}s: exit {ended.code}"
        )
        if kill == signal.SIGKILL and not finished[-1]:  # what `status` says after a crash
            line = describe_run(await deployment.database.index_runs.last_run())
            assert "interrupted: its process stopped before the run finished" in line, line
    print("\n" + "\n".join(stopped))

    final = await deployment.run("index")
    assert final.code == 0, final.stderr
    await deployment.assert_clean_build()
    runs = await deployment.runs()
    assert len(runs) == 4 and runs[-1]["status"] == "succeeded", (stopped, runs)
    expected = ["succeeded" if done else "interrupted" for done in finished]
    assert [run["status"] for run in runs[:3]] == expected, (stopped, runs)
