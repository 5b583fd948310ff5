"""What an index run reports (progress, failures, the result) and what starting one takes (`Reindexer`).

Kept apart from the pipeline so adapters (Slack, Discord, CLI) can start runs and render them
without pulling in the indexing machinery; `services.indexer` implements `Reindexer` and
re-exports everything here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from configs.errors import UserFacingError
from data.index_runs import RunStatus
from data.leases import HeldLease, LeaseHolder, Progress

Phase = Literal["scanning", "indexing", "deleting", "committing", "done"]

MAX_FAILURES_SHOWN = 20  # chat messages have length limits; the rest are counted


def _seconds(value: float) -> str:
    return f"{value:.0f}s" if value >= 10 else f"{value:.1f}s"


@dataclass
class IndexProgress:
    """A snapshot of a run in progress (the indexer hands out copies, never its live object)."""

    phase: str
    documents_total: int | None
    documents_done: int
    chunks_written: int
    started_at: float  # time.time() when the run started
    full: bool

    def describe(self) -> str:
        """One line such as "indexing: 12/40 documents, 310 chunks written, 8s"."""
        total = "" if self.documents_total is None else f"/{self.documents_total}"
        kind = " (full rebuild)" if self.full else ""
        elapsed = _seconds(max(0.0, time.time() - self.started_at))
        return (
            f"{self.phase}{kind}: {self.documents_done}{total} documents, "
            f"{self.chunks_written} chunks written, {elapsed}"
        )

    def snapshot(self) -> IndexProgress:
        return dataclasses.replace(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (the lease carries them to runs refused in other processes)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> IndexProgress:
        """Back from `to_dict()`; what is missing reads as a run just started."""
        data = data or {}
        total = data.get("documents_total")
        return cls(
            phase=str(data.get("phase", "scanning")),
            documents_total=None if total is None else int(total),
            documents_done=int(data.get("documents_done", 0)),
            chunks_written=int(data.get("chunks_written", 0)),
            started_at=float(data.get("started_at", time.time())),
            full=bool(data.get("full", False)),
        )


@dataclass(frozen=True)
class IndexFailure:
    """A file (or root) that could not be indexed, and why, in words a user can act on."""

    path: str
    reason: str
    source: str | None = None  # the source's name, when the run read named sources


@dataclass
class SourceOutcome:
    """What a run did to one source (`status` and `/reindex status` show the latest per source)."""

    name: str
    location: str  # without credentials
    seen: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: int = 0
    documents: int = 0  # this source's documents in the index after the run
    complete: bool = False  # the whole source was read (so removals were decided)
    error: str | None = None  # the source could not be read at all; its documents were kept

    def describe(self) -> str:
        """One line such as "handbook: 40 documents (2 added, 38 unchanged)"."""
        counts = ", ".join(
            f"{getattr(self, name)} {name}"
            for name in ("added", "updated", "unchanged", "deleted", "failed")
            if getattr(self, name)
        )
        line = f"{self.name}: {self.documents} documents" + (f" ({counts})" if counts else "")
        return line + (f"; FAILED: {self.error}" if self.error else "")


@dataclass
class IndexResult:
    """What a run did; `summary()` is the text adapters show."""

    seen: int  # supported files found under the roots
    added: int
    updated: int
    unchanged: int
    deleted: int
    failed: int
    failures: list[IndexFailure]
    chunks_written: int
    embeddings_computed: int
    seconds: float
    full: bool
    empty_source: bool
    collection: str
    notes: list[str] = field(default_factory=list)
    error: str | None = None  # set when the run failed part-way (the result is then partial)
    sources: list[SourceOutcome] = field(default_factory=list)  # per source, in the order indexed

    def summary(self) -> str:
        """Several lines: outcome, counts, notes and failures (path: reason)."""
        kind = "Full rebuild" if self.full else "Incremental index"
        if self.error is not None:
            head = f"{kind} of `{self.collection}` FAILED after {_seconds(self.seconds)}: {self.error}"
        elif self.empty_source:
            head = f"{kind}: no supported documents were found, so nothing was indexed."
        else:
            head = f"{kind} of `{self.collection}` finished in {_seconds(self.seconds)}."
        lines = [
            head,
            f"{self.seen} documents seen: {self.added} added, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.deleted} deleted, {self.failed} failed.",
            f"{self.chunks_written} chunks written, {self.embeddings_computed} embeddings computed"
            + (f" ({self.chunks_written / self.seconds:.0f} chunks/s)." if self.seconds > 0 else "."),
        ]
        if len(self.sources) > 1 or any(source.error for source in self.sources):
            lines.extend(f"Source {source.describe()}" for source in self.sources)
        lines.extend(f"Note: {note}" for note in self.notes)
        if self.failures:
            lines.append("Failed:")
            lines.extend(f"- {f.path}: {f.reason}" for f in self.failures[:MAX_FAILURES_SHOWN])
            if len(self.failures) > MAX_FAILURES_SHOWN:
                lines.append(f"- … and {len(self.failures) - MAX_FAILURES_SHOWN} more")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (for the run log, `status --json` and HTTP)."""
        return dataclasses.asdict(self)


def describe_run(run: dict[str, Any] | None) -> str:
    """One line for `status` about a recorded run (`IndexRunLog.last_run`): when, what kind, the
    counts, and how it ended, or how far it is. A run is recorded as it starts, so it may still be
    running (its holder's live progress is shown) or have been interrupted before it counted."""
    if not run:
        return "never"
    kind = "full rebuild" if run.get("full") else "incremental"
    when = run.get("recorded_at", "?")
    if run.get("status") == "running":
        progress = IndexProgress.from_dict(run.get("progress")).describe()
        return f"running since {when}: {progress} (in {run.get('owner', 'another process')})"
    if "seen" not in run:  # it died before counting: its last heartbeat's progress is all there is
        so_far = IndexProgress.from_dict(run.get("progress"))
        done = f"{so_far.documents_done} documents done, {so_far.chunks_written} chunks written"
        return f"{when} ({kind}): {done}; {run.get('error') or 'interrupted'}"
    counts = ", ".join(
        f"{run.get(name, 0)} {name}" for name in ("added", "updated", "unchanged", "deleted", "failed")
    )
    line = f"{when} ({kind}, {float(run.get('seconds', 0)):.1f}s): {run.get('seen', 0)} seen — {counts}"
    if not run.get("error"):
        return line
    return line + (f"; {run['error']}" if run.get("status") == "interrupted" else f"; failed: {run['error']}")


class IndexAlreadyRunning(UserFacingError):
    """Only one run at a time; carries the running one's progress so callers can show it.

    `holder` names the process holding the run's lease when it is another one (pid, host and how
    fresh the progress is: it is as of the holder's last heartbeat).
    """

    def __init__(self, progress: IndexProgress, holder: str | None = None) -> None:
        self.progress = progress
        self.holder = holder
        where = f"; {holder}" if holder else ""
        super().__init__(
            f"A reindex is already running ({progress.describe()}{where}); try again when it is done."
        )


class IndexRunFailed(UserFacingError):
    """A run stopped part-way (embedder or store failure); the message says what still serves.

    `result` holds the partial counts; the original exception is chained as `__cause__`.
    """

    def __init__(self, message: str, result: IndexResult) -> None:
        self.result = result
        super().__init__(message)


ProgressCallback = Callable[[IndexProgress], Awaitable[None] | None]
DoneCallback = Callable[[IndexResult | BaseException], Awaitable[None]]


class SourceDirectory(Protocol):
    """The configured sources as a chat command sees them (`services.indexing.schedule` implements it)."""

    async def names(self) -> list[str]:
        """The names `/reindex NAME` accepts, in the order they are indexed."""
        ...

    async def status_lines(self) -> list[str]:
        """One line per source: its last run, its documents and its next scheduled run."""
        ...


class Reindexer(Protocol):
    """What a chat command needs to run the indexer: start a run in the background, watch it.

    Adapters depend on this, not on `services.indexer.Indexer`, so a command answers within the
    platform's deadline (the run goes on in a task) and can be tested against any implementation.
    """

    @property
    def progress(self) -> IndexProgress | None:
        """A snapshot of the running run's progress, or None when no run is active."""
        ...

    @property
    def sources(self) -> SourceDirectory:
        """The sources a run can be limited to, and how each stands."""
        ...

    def start_background(
        self,
        *,
        full: bool = False,
        sources: Sequence[str] | None = None,
        on_progress: ProgressCallback | None = None,
        progress_interval: float = 3.0,
        on_done: DoneCallback | None = None,
    ) -> asyncio.Task[IndexResult]:
        """Start a run (`full`: a rebuild; `sources`: only these names) in a task and return at
        once; one run at a time.

        Raises `IndexAlreadyRunning`, carrying the live progress, while another run is active.
        `on_progress` gets a snapshot at most every `progress_interval` seconds and once at the end;
        `on_done` gets the result or the exception, so a caller need not keep the task.
        """
        ...


class RunGuard(Protocol):
    """What a run checks before each write: that it may still write (`data.leases.HeldLease`).

    A run that was paused or cut off for longer than its lease may have been replaced by another
    one; its writes would then land beside (or under) the other run's, so it stops instead.
    """

    async def confirm(self, *, fresh: bool = False) -> None:
        """Raise (`data.leases.LeaseLost`) unless the run still holds its lease; `fresh` asks the
        database instead of trusting a recent renewal (before the step that makes a run serve)."""
        ...


class IndexRunLog(Protocol):
    """Where runs are coordinated and remembered (`data.index_runs.SqlIndexRunLog` implements it):
    the leases that keep runs of one source (and rebuilds of the index) apart across processes,
    and the run records `status` reads."""

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
        """Take the lease `name` and record the run as running, together (before the run does
        anything); returns the lease and the run's id for `record_run`. Raises
        `data.leases.LeaseTaken`, with the holder, while another run holds the lease."""
        ...

    async def acquire_all(
        self, names: Sequence[str], *, ttl: float, heartbeat: float, progress: Progress | None = None
    ) -> list[HeldLease]:
        """Every lease of `names` or none (`LeaseTaken` for the first one held)."""
        ...

    async def holder(self, name: str) -> LeaseHolder | None:
        """Who holds the lease `name`, if anybody (alive or not)."""
        ...

    async def record_run(
        self, result: IndexResult, *, run_id: int | None = None, status: RunStatus | None = None
    ) -> None:
        """Record how the run ended (succeeded, failed or interrupted) with its result."""
        ...

    async def last_run(self) -> dict[str, Any] | None: ...

    async def last_source_runs(self) -> dict[str, dict[str, Any]]:
        """Per source name, its entry in the latest ended run that read it (`SourceOutcome` as a
        dict, plus the run's `status`, `full` and `finished_at`)."""
        ...
