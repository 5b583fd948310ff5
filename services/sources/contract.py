"""What a knowledge source tells the index run: one outcome per document, and a cursor to keep.

A source only fetches and says what changed; it never embeds or writes. The run that consumes a
scan decides what to parse (in its worker threads, via `Fetched.parse`), embed, write and delete.
The rules that keep incremental runs safe live here, so every kind of source obeys the same ones:

- `Gone` is the only outcome that deletes. A document of `known` that a scan does not mention is
  kept as it is, so a scan that stopped early (unreachable host, page limit, failed fetch) never
  deletes by omission.
- `Failed(temporary=True)` (timeout, 5xx, 429, host unreachable) must not change the document's
  index entry; the next run retries it. `Failed(temporary=False)` is bad input (too large, not a
  document, a trap): reported, and the old entry (if any) stays too.
- `memo` holds what the source needs next time to skip the document without parsing (HTTP
  validators, the sitemap's lastmod, the Git blob id, a page's links). Persist it with the
  document once its chunks are written, and pass it back in `KnownDocument`; a memo whose
  `content_hash` no longer matches the index must not be passed back (see `state.py`).
- `SourceScan.cursor` (the indexed Git commit, …) is valid once the scan ended normally; persist
  it after the run committed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from services.indexing.chunking import HEADING_SEPARATOR
from services.indexing.loader import LoadFailure, ParsedDocument

Memo = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class KnownDocument:
    """A document of this source that the index holds, and the memo saved with it."""

    document_id: str
    content_hash: str  # as recorded in the index (sha256 of the raw bytes)
    memo: Memo = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SourceDocument:
    """A parsed document plus where each of its sections can be opened (citation per heading)."""

    document: ParsedDocument
    # heading path joined with " > " -> a URL with the heading's #fragment (web pages with ids)
    anchors: Mapping[str, str] = field(default_factory=dict)

    def citation(self, heading_path: str) -> str:
        """The most precise link for a chunk: its heading's anchor, a parent's, else the document."""
        parts = heading_path.split(HEADING_SEPARATOR) if heading_path else []
        while parts:
            anchor = self.anchors.get(HEADING_SEPARATOR.join(parts))
            if anchor:
                return anchor
            parts.pop()
        return self.document.source


@dataclass(frozen=True, slots=True)
class Unchanged:
    """Same content as indexed: nothing to parse or embed. `memo` replaces the saved one."""

    document_id: str
    memo: Memo = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Fetched:
    """New or changed content. `parse()` blocks (run it in a worker thread); it never raises."""

    document_id: str
    source: str  # what a reader opens: page URL, hosted file URL at the commit, or path
    content_hash: str  # sha256 of the raw bytes; equal to the known hash means unchanged
    modified_time: datetime  # UTC
    memo: Memo
    parser: Callable[[], SourceDocument | LoadFailure] = field(repr=False, compare=False)
    renamed_from: str | None = None  # a Gone document with the same content (a Git rename)

    def parse(self) -> SourceDocument | LoadFailure:
        return self.parser()


@dataclass(frozen=True, slots=True)
class Gone:
    """The document no longer exists at its source (404/410, dropped from the sitemap, deleted)."""

    document_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Failed:
    """Could not be read this time; `target` is a URL or path without credentials."""

    target: str
    reason: str
    temporary: bool  # True: retried next run (timeout, 5xx, 429, unreachable); never deletes
    document_id: str | None = None  # set when the target is a known document


Change = Unchanged | Fetched | Gone | Failed


class SourceScan(AsyncIterator[Change]):
    """The changes of one scan, in any order; `cursor` and `notes` are final once it is exhausted.

    Breaking out early is allowed: `aclose()` (or garbage collection) stops the scan's tasks.
    """

    def __init__(self, run: Callable[[SourceScan], AsyncIterator[Change]]) -> None:
        self.cursor: dict[str, str] = {}  # persist after the run commits (Git: the indexed commit)
        self.notes: list[str] = []  # remarks for the run's report (limits reached, traps skipped)
        self.complete = False  # True once the source was fully scanned (deletions were decided)
        self._changes = run(self)  # the source's generator fills cursor/notes/complete as it goes

    def __aiter__(self) -> SourceScan:
        return self

    async def __anext__(self) -> Change:
        return await anext(self._changes)

    async def aclose(self) -> None:
        closer = getattr(self._changes, "aclose", None)
        if closer is not None:
            await closer()


class Source(Protocol):
    """One named source: a local path, a website or a Git repository."""

    @property
    def name(self) -> str:
        """The source as the user named it, without credentials: the key for its saved state."""
        ...

    def owns(self, document_id: str) -> bool:
        """Whether a document id could come from this source (when no saved state says so)."""
        ...

    def scan(self, known: Mapping[str, KnownDocument], cursor: Mapping[str, str]) -> SourceScan:
        """Compare the source with what the index holds (`known`: this source's documents only)."""
        ...
