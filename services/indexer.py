"""The indexer: keeps the vector store in step with the documents, one run at a time.

`Indexer.index()` runs an incremental (or, with `full=True`, a blue/green) run of the
pipeline in `services.indexing.pipeline` over the configured sources (the sources file, else
DOCS_PATHS; `services.sources.catalog`) or the ones named; `start_background()` does the same in a
task for chat commands, which know it only as a `Reindexer` (services.indexing.contract). Progress
is reported through a throttled callback that never slows the pipeline (it runs in its own task).

One run per source at a time, held twice: in this process (refused at once, without an await),
and across processes and replicas through leases in the database (`services.indexing.run_leases`:
one per source, plus the index's own for a rebuild), renewed with the run's progress every
INDEX_HEARTBEAT_SECONDS so a refused run can show how far the holder is. Runs of different sources
go side by side; a rebuild excludes every other run. Every run is recorded as it starts and again
as it ends (succeeded, failed or interrupted); one whose process died shows as interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from configs.config import Settings
from data.embeddings import Embedder
from data.leases import LeaseGroup
from data.vector_store import VectorStore
from services.indexing.contract import (
    DoneCallback,
    IndexAlreadyRunning,
    IndexFailure,
    IndexProgress,
    IndexResult,
    IndexRunFailed,
    IndexRunLog,
    ProgressCallback,
    Reindexer,
)
from services.indexing.ledger import RunLedger
from services.indexing.pipeline import IndexRun
from services.indexing.run_leases import begin_run
from services.indexing.schedule import ConfiguredSources
from services.sources.catalog import SourceEntry, load_catalog, source_options
from services.sources.state import SourceStateFile

__all__ = [
    "DoneCallback",
    "IndexAlreadyRunning",
    "IndexFailure",
    "IndexProgress",
    "IndexResult",
    "IndexRunFailed",
    "IndexRunLog",
    "Indexer",
    "ProgressCallback",
    "Reindexer",
]

log = logging.getLogger(__name__)

# A run cut short (Ctrl-C, SIGTERM) still records that; a database that hangs must not keep it alive.
_RECORD_WHEN_INTERRUPTED_SECONDS = 5.0
INTERRUPTED = "interrupted: the run was stopped (Ctrl-C, SIGTERM or its task cancelled)"


@dataclass(frozen=True, slots=True)
class _Claim:
    """A run this process is making: what it reads, and its live progress."""

    progress: IndexProgress
    entries: list[SourceEntry]
    all_names: frozenset[str]  # every configured source (a rebuild holds them all)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(entry.name for entry in self.entries)

    def conflicts(self, other: _Claim) -> bool:
        """Runs of different sources may go side by side; a rebuild goes alone."""
        return self.progress.full or other.progress.full or bool(self.names & other.names)


class _ProgressReporter:
    """Calls the user's callback from its own task, at most once per `interval` (plus a final call).

    A slow callback (a chat message edit) thus delays only the next report, never the pipeline,
    and a failing one is logged instead of failing the run.
    """

    def __init__(self, callback: ProgressCallback | None, interval: float, progress: IndexProgress) -> None:
        self._callback = callback
        self._interval = max(0.0, interval)
        self._progress = progress
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._callback is not None:
            self._task = asyncio.create_task(self._loop(), name="index-progress")

    def changed(self) -> None:
        self._changed.set()

    async def _call(self) -> None:
        assert self._callback is not None
        try:
            outcome = self._callback(self._progress.snapshot())
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:
            log.warning("The index progress callback failed; indexing goes on", exc_info=True)

    async def _loop(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            await self._call()
            if self._interval:
                await asyncio.sleep(self._interval)

    def stop(self) -> None:
        """Stop the loop without a final call."""
        if self._task is not None:
            self._task.cancel()

    async def finish(self) -> None:
        """Stop the loop and make the final call with the last state."""
        if self._task is None:
            return
        self.stop()
        # Waits without taking on the loop's CancelledError, so only a cancellation of the run itself
        # propagates. (`current_task().cancelling()` cannot tell them apart on Python 3.11: a TaskGroup
        # whose child failed leaves a cancel request on its parent, so a failed run ended in
        # CancelledError instead of IndexRunFailed.)
        await asyncio.wait([self._task])
        await self._call()


class Indexer(Reindexer):
    """Indexes files into the vector store; one run at a time (a second one is refused)."""

    def __init__(
        self, settings: Settings, store: VectorStore, embedder: Embedder, run_log: IndexRunLog | None = None
    ) -> None:
        self._settings = settings
        self._store = store
        self._embedder = embedder
        self._run_log = run_log
        self._claims: list[_Claim] = []  # the runs this process is making (their sources' locks)
        self._tasks: set[asyncio.Task[IndexResult]] = set()

    @property
    def running(self) -> bool:
        return bool(self._claims)

    @property
    def sources(self) -> ConfiguredSources:
        """The configured sources and how each stands (for `/reindex status` and `status`)."""
        return ConfiguredSources(self._settings, self._run_log)

    @property
    def progress(self) -> IndexProgress | None:
        """A snapshot of a running run's progress (the earliest), or None when idle."""
        return self._claims[0].progress.snapshot() if self._claims else None

    def _claim(self, full: bool, sources: Sequence[str | Path] | None) -> _Claim:
        """Reserve the run's sources synchronously (no await between check and set); the sources
        file is read here (a small file) so a conflict is known before anything starts."""
        catalog = load_catalog(self._settings)
        claim = _Claim(
            IndexProgress("scanning", None, 0, 0, time.time(), full),
            catalog.select(sources),
            frozenset(catalog.names),
        )
        for other in self._claims:
            if claim.conflicts(other):
                raise IndexAlreadyRunning(other.progress.snapshot())
        self._claims.append(claim)
        return claim

    def _release(self, claim: _Claim) -> None:
        with contextlib.suppress(ValueError):
            self._claims.remove(claim)

    async def index(
        self,
        sources: Sequence[str | Path] | None = None,
        *,
        full: bool = False,
        on_progress: ProgressCallback | None = None,
        progress_interval: float = 0.0,
    ) -> IndexResult:
        """Index `sources` (configured names or locations; default: every configured source).

        Raises `IndexAlreadyRunning`, `IndexRunFailed`, or `SourcesFileError`/`SourceNameError`
        for a sources file or a name that cannot be used (before anything is changed).
        """
        claim = self._claim(full, sources)
        try:
            return await self._run(claim, on_progress, progress_interval)
        finally:
            self._release(claim)

    def start_background(
        self,
        *,
        full: bool = False,
        sources: Sequence[str | Path] | None = None,
        on_progress: ProgressCallback | None = None,
        progress_interval: float = 3.0,
        on_done: DoneCallback | None = None,
    ) -> asyncio.Task[IndexResult]:
        """Run in a task. Raises `IndexAlreadyRunning` right away when a run is active.

        `on_done` receives the result or the exception; without it a failure is logged. The task
        itself also ends with the result or the exception, for callers that await it.
        """
        claim = self._claim(full, sources)

        async def run() -> IndexResult:
            outcome: IndexResult | BaseException
            try:
                outcome = await self._run(claim, on_progress, progress_interval)
            except BaseException as exc:
                outcome = exc
            finally:
                self._release(claim)
            if on_done is not None:
                try:
                    await on_done(outcome)
                except Exception:
                    log.exception("The reindex completion callback failed")
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome

        coroutine = run()
        try:
            task = asyncio.create_task(coroutine, name="reindex")
        except BaseException:  # no running loop: give the sources back
            coroutine.close()
            self._release(claim)
            raise
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._background_done(t, reported=on_done is not None))
        return task

    async def cancel_background(self) -> None:
        """Stop runs started with `start_background` (a `/reindex` in chat) and wait until each has
        recorded that it was interrupted and released its lease: `serve` calls it while stopping,
        before the database closes, so the next replica can index at once."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _background_done(self, task: asyncio.Task[IndexResult], *, reported: bool) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()  # also marks it retrieved: no "never retrieved" noise
        if exc is not None and not reported:
            log.error("Background reindex failed: %s", exc, exc_info=exc)

    async def _run(
        self, claim: _Claim, on_progress: ProgressCallback | None, progress_interval: float
    ) -> IndexResult:
        settings = self._settings
        progress, full = claim.progress, claim.progress.full
        options = source_options(settings)
        sources = [entry.build(options) for entry in claim.entries]
        partial = claim.names != claim.all_names
        # A rebuild starts the memos afresh: they describe the generation it replaces.
        path = options.state_path
        state = SourceStateFile(path) if full else await SourceStateFile.load(path)
        lease, run_id = await self._begin(claim)
        reporter = _ProgressReporter(on_progress, progress_interval, progress)
        reporter.start()
        ledger = RunLedger(progress, reporter.changed, full, settings.weaviate_collection)
        run = IndexRun(settings, self._store, self._embedder, ledger, sources, state, lease, partial)
        try:
            result = await run.execute()
        except IndexRunFailed as exc:
            await self._record(lease, run_id, exc.result)
            await reporter.finish()
            raise
        except BaseException:  # cancelled: the run is going away; it says so in the log, briefly
            reporter.stop()
            await self._record(lease, run_id, ledger.result(error=INTERRUPTED), interrupted=True)
            raise
        await reporter.finish()
        await self._record(lease, run_id, result)
        return result

    async def _begin(self, claim: _Claim) -> tuple[LeaseGroup | None, int | None]:
        """Take the run's leases and record it as running; `IndexAlreadyRunning` when one is held."""
        if self._run_log is None:
            return None, None
        names = claim.names | claim.all_names if claim.progress.full else claim.names
        return await begin_run(self._run_log, self._settings, claim.progress, sorted(names))

    async def _record(
        self, lease: LeaseGroup | None, run_id: int | None, result: IndexResult, *, interrupted: bool = False
    ) -> None:
        """Record how the run ended and give the leases up.

        Interrupted (Ctrl-C, SIGTERM), the leases go first, each step bounded in time: another
        replica may then index at once, and a run whose record did not make it still reads as
        interrupted (its lease is gone). Otherwise the record goes first, so no other run can take
        the lease and find this one still "running".
        """
        run_log = self._run_log
        if run_log is None or lease is None:
            return

        async def record() -> None:
            try:
                await run_log.record_run(result, run_id=run_id, status="interrupted" if interrupted else None)
            except Exception:
                # The index itself is fine; losing the log entry must not turn success into failure.
                log.exception("Could not record the index run in the database")

        async def release() -> None:
            try:
                await lease.release()
            except Exception:  # it expires by itself
                log.exception("Could not release the index lease %s", lease.name)

        if not interrupted:
            await record()
            await release()
            return
        for step, what in ((release, "give its leases back"), (record, "record the interrupted run")):
            try:
                await asyncio.wait_for(step(), _RECORD_WHEN_INTERRUPTED_SECONDS)
            except TimeoutError:  # the leases expire by themselves; the next run marks it interrupted
                log.error("Could not %s in time", what)
