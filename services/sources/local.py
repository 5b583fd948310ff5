"""A local file or folder as a source, through the loader: same discovery, hashing and parsing.

It adds nothing to how files are read (the loader owns that); it only states the local rules in
the source contract, so an index run can treat every kind of source alike: unchanged hash ->
`Unchanged`, a file gone from a folder that was read -> `Gone`, a folder with no supported files
-> a note and no deletions (an emptied or unmounted folder must not wipe the index), a file over
MAX_FILE_BYTES -> `Failed` before it is read (hashing it would read it all).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from services.indexing.loader import (
    LoadFailure,
    discover,
    hash_file,
    oversize_reason,
    parse_document,
    resolve_path,
)
from services.sources.contract import (
    Change,
    Failed,
    Fetched,
    Gone,
    KnownDocument,
    SourceDocument,
    SourceScan,
    Unchanged,
)
from services.sources.naming import LocalSpec

__all__ = ["LocalSource"]


def _is_under(path: Path, roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _resolved(paths: list[str]) -> list[Path]:
    return [resolve_path(path) for path in paths]  # never raises, even for a link loop


def _fingerprint(path: Path, max_bytes: int) -> tuple[str, datetime] | str | None:
    """(sha256, mtime) of a file; why it is skipped when it is too large; None when it cannot be
    read (parsing then says why)."""
    try:
        stat = path.stat()
        if (oversized := oversize_reason(stat.st_size, max_bytes)) is not None:
            return oversized
        return hash_file(path), datetime.fromtimestamp(stat.st_mtime, tz=UTC)
    except OSError:
        return None


def _parse_file(path: Path, max_bytes: int) -> SourceDocument | LoadFailure:
    parsed = parse_document(path, max_bytes=max_bytes)
    return parsed if isinstance(parsed, LoadFailure) else SourceDocument(parsed)


class LocalSource:
    """A path on this machine; document ids are resolved absolute paths, as the loader makes them."""

    def __init__(self, spec: LocalSpec, max_file_bytes: int) -> None:
        self.spec = spec
        self.max_file_bytes = max_file_bytes  # MAX_FILE_BYTES; 0: no limit

    @property
    def name(self) -> str:
        return self.spec.name

    def _root(self) -> Path:
        return resolve_path(self.spec.path)

    def owns(self, document_id: str) -> bool:
        return _is_under(Path(document_id), [self._root()])

    def scan(self, known: Mapping[str, KnownDocument], cursor: Mapping[str, str]) -> SourceScan:
        return SourceScan(lambda scan: self._changes(scan, known))

    async def _changes(self, scan: SourceScan, known: Mapping[str, KnownDocument]) -> AsyncIterator[Change]:
        discovery = await discover([self.spec.path])
        for failure in discovery.failures:
            yield Failed(failure.path, failure.reason, temporary=False)
        if not discovery.files:
            if not discovery.failures:
                skipped = discovery.unsupported
                other = f" ({skipped} files of other types were skipped)" if skipped else ""
                scan.notes.append(f"no supported documents{other}; its documents were kept")
            return
        present: set[str] = set()
        for path in discovery.files:
            document_id = str(path)
            present.add(document_id)
            fingerprint = await asyncio.to_thread(_fingerprint, path, self.max_file_bytes)
            previous = known.get(document_id)
            if isinstance(fingerprint, str):
                yield Failed(document_id, fingerprint, temporary=False, document_id=document_id)
                continue
            if fingerprint is not None and previous is not None and fingerprint[0] == previous.content_hash:
                yield Unchanged(document_id)
                continue
            digest, modified = fingerprint or ("", datetime.now(UTC))
            parse = partial(_parse_file, path, self.max_file_bytes)
            yield Fetched(document_id, document_id, digest, modified, {}, parse)
        broken = await asyncio.to_thread(_resolved, [failure.path for failure in discovery.failures])
        for document_id in sorted(set(known) - present):
            if not _is_under(Path(document_id), broken):
                yield Gone(document_id, "file removed")
        scan.complete = True
