"""What one index run counts, for the whole run and per source, and the progress it reports.

The scan, parse and write stages update one ledger, so the totals, the per-source lines of
`status` and the live progress can never disagree.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from services.indexing.contract import IndexFailure, IndexProgress, IndexResult, SourceOutcome


@dataclass
class RunLedger:
    """Counts of one run. `notify` wakes the progress reporter after each change."""

    progress: IndexProgress
    notify: Callable[[], None]
    full: bool
    collection: str
    sources: dict[str, SourceOutcome] = field(default_factory=dict)
    failures: list[IndexFailure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    embedded: int = 0
    deleted: int = 0
    empty_source: bool = False
    started: float = field(default_factory=time.perf_counter)

    def source(self, name: str, location: str) -> SourceOutcome:
        return self.sources.setdefault(name, SourceOutcome(name, location))

    def _total(self, name: str) -> int:
        return sum(getattr(outcome, name) for outcome in self.sources.values())

    @property
    def seen(self) -> int:
        return self._total("seen")

    @property
    def added(self) -> int:
        return self._total("added")

    @property
    def updated(self) -> int:
        return self._total("updated")

    @property
    def unchanged(self) -> int:
        return self._total("unchanged")

    def set(self, **changes: object) -> None:
        for name, value in changes.items():
            setattr(self.progress, name, value)
        self.notify()

    def saw(self, outcome: SourceOutcome) -> None:
        """One more document of a source is known to exist (the total grows as sources are read)."""
        outcome.seen += 1
        self.set(documents_total=self.seen)

    def done(self, outcome: SourceOutcome, kind: str, count: int = 1) -> None:
        """`count` documents of the source ended as `kind` (added, updated, unchanged or failed)."""
        setattr(outcome, kind, getattr(outcome, kind) + count)
        self.set(documents_done=self.progress.documents_done + count)

    def fail(self, outcome: SourceOutcome, target: str, reason: str, *, counted: bool = True) -> None:
        """A document (or, not `counted`, a whole source or a URL that is no document) failed."""
        self.failures.append(IndexFailure(target, reason, outcome.name))
        if counted:
            self.done(outcome, "failed")

    def note(self, note: str | None) -> None:
        if note is not None:
            self.notes.append(note)

    def result(self, error: str | None = None) -> IndexResult:
        """What the run did so far (all of it once it ended); `error` says why it stopped."""
        return IndexResult(
            seen=self.seen,
            added=self.added,
            updated=self.updated,
            unchanged=self.unchanged,
            deleted=self.deleted,
            failed=len(self.failures),
            failures=list(self.failures),
            chunks_written=self.progress.chunks_written,
            embeddings_computed=self.embedded,
            seconds=time.perf_counter() - self.started,
            full=self.full,
            empty_source=self.empty_source,
            collection=self.collection,
            notes=list(self.notes),
            error=error,
            sources=[SourceOutcome(**vars(outcome)) for outcome in self.sources.values()],
        )
