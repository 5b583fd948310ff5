"""What an index run reports (progress, failures, the result) and what starting one takes (`Reindexer`).

Kept apart from the pipeline so adapters (Slack, Discord, CLI) can start runs and render them
without pulling in the indexing machinery; `services.indexer` implements `Reindexer` and
re-exports everything here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from configs.errors import UserFacingError

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


@dataclass(frozen=True)
class IndexFailure:
    """A file (or root) that could not be indexed, and why, in words a user can act on."""

    path: str
    reason: str


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


class IndexAlreadyRunning(UserFacingError):
    """Only one run at a time; carries the running one's progress so callers can show it."""

    def __init__(self, progress: IndexProgress) -> None:
        self.progress = progress
        super().__init__(f"A reindex is already running ({progress.describe()}); try again when it is done.")


class IndexRunFailed(UserFacingError):
    """A run stopped part-way (embedder or store failure); the message says what still serves.

    `result` holds the partial counts; the original exception is chained as `__cause__`.
    """

    def __init__(self, message: str, result: IndexResult) -> None:
        self.result = result
        super().__init__(message)


ProgressCallback = Callable[[IndexProgress], Awaitable[None] | None]
DoneCallback = Callable[[IndexResult | BaseException], Awaitable[None]]


class Reindexer(Protocol):
    """What a chat command needs to run the indexer: start a run in the background, watch it.

    Adapters depend on this, not on `services.indexer.Indexer`, so a command answers within the
    platform's deadline (the run goes on in a task) and can be tested against any implementation.
    """

    @property
    def progress(self) -> IndexProgress | None:
        """A snapshot of the running run's progress, or None when no run is active."""
        ...

    def start_background(
        self,
        *,
        full: bool = False,
        on_progress: ProgressCallback | None = None,
        progress_interval: float = 3.0,
        on_done: DoneCallback | None = None,
    ) -> asyncio.Task[IndexResult]:
        """Start a run (`full`: a rebuild) in a task and return at once; one run at a time.

        Raises `IndexAlreadyRunning`, carrying the live progress, while another run is active.
        `on_progress` gets a snapshot at most every `progress_interval` seconds and once at the end;
        `on_done` gets the result or the exception, so a caller need not keep the task.
        """
        ...


class IndexRunLog(Protocol):
    """Where runs are remembered (`data.database` implements it)."""

    async def record_run(self, result: IndexResult) -> None: ...

    async def last_run(self) -> dict[str, Any] | None: ...
