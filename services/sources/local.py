"""A local file or folder as a source, through the loader: same discovery, hashing and parsing.

It adds nothing to how files are read (the loader owns that); it only states the local rules in
the source contract, so an index run can treat every kind of source alike: unchanged hash ->
`Unchanged`, a file gone from a folder that was read -> `Gone`, a folder with no supported files
-> one `Failed` and no deletions (an emptied or unmounted folder must not wipe the index).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from services.indexing.loader import LoadFailure, discover, hash_file, parse_document
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
    return [Path(path).expanduser().resolve() for path in paths]


def _fingerprint(path: Path) -> tuple[str, datetime] | None:
    """(sha256, mtime) of a file, or None when it cannot be read (parsing then says why)."""
    try:
        return hash_file(path), datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    except OSError:
        return None


def _parse(path: Path) -> SourceDocument | LoadFailure:
    parsed = parse_document(path)
    return parsed if isinstance(parsed, LoadFailure) else SourceDocument(parsed)


class LocalSource:
    """A path on this machine; document ids are resolved absolute paths, as the loader makes them."""

    def __init__(self, spec: LocalSpec) -> None:
        self.spec = spec

    @property
    def name(self) -> str:
        return self.spec.name

    def _root(self) -> Path:
        return self.spec.path.expanduser().resolve()

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
                other = f" ({discovery.unsupported} files of other types)" if discovery.unsupported else ""
                yield Failed(self.name, f"no supported documents{other}; the index was left unchanged", False)
            return
        present: set[str] = set()
        for path in discovery.files:
            document_id = str(path)
            present.add(document_id)
            fingerprint = await asyncio.to_thread(_fingerprint, path)
            previous = known.get(document_id)
            if fingerprint is not None and previous is not None and fingerprint[0] == previous.content_hash:
                yield Unchanged(document_id)
                continue
            digest, modified = fingerprint or ("", datetime.now(UTC))
            yield Fetched(document_id, document_id, digest, modified, {}, partial(_parse, path))
        broken = await asyncio.to_thread(_resolved, [failure.path for failure in discovery.failures])
        for document_id in sorted(set(known) - present):
            if not _is_under(Path(document_id), broken):
                yield Gone(document_id, "file removed")
        scan.complete = True
