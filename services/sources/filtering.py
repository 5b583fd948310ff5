"""A source under its configured name, limited by include/exclude globs.

Globs match the path inside the source: relative to a local folder or to a Git repository's
`#subdirectory=` (else its root), a page's URL path on a website. `*` also crosses `/`
(fnmatch), so `*.md` means every Markdown file and `drafts/*` everything under drafts/. A
document that a glob now leaves out is `Gone` (it was indexed under the old globs); a website's
excluded pages are still fetched for their links, only not indexed, so excluding a hub page does
not cut the crawl.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from urllib.parse import unquote, urlsplit

from services.indexing.loader import resolve_path
from services.sources.contract import (
    Change,
    Failed,
    Fetched,
    Gone,
    KnownDocument,
    Source,
    SourceScan,
    Unchanged,
)
from services.sources.naming import GitSpec, LocalSpec, SourceSpec

__all__ = ["FilteredSource", "relative_path"]

GIT_PATH_MARK = "#path="  # git document ids are "<repository>@<ref>#path=<path in the repository>"


def relative_path(spec: SourceSpec, document_id: str) -> str:
    """The path globs are matched against, for a document id of the source `spec`."""
    if isinstance(spec, GitSpec):
        path = document_id.split(GIT_PATH_MARK, 1)[-1]
        return path.removeprefix(spec.subdirectory + "/") if spec.subdirectory else path
    if isinstance(spec, LocalSpec):
        root, file = resolve_path(spec.path), Path(document_id)
        return file.relative_to(root).as_posix() if root in file.parents else file.name
    return unquote(urlsplit(document_id).path).lstrip("/")


class FilteredSource:
    """Implements `Source` for a configured entry: its name, and only the documents its globs allow."""

    def __init__(
        self, inner: Source, name: str, spec: SourceSpec, include: Sequence[str], exclude: Sequence[str]
    ) -> None:
        self.inner = inner
        self._name = name
        self.spec = spec
        self.include = tuple(include)
        self.exclude = tuple(exclude)

    @property
    def name(self) -> str:
        return self._name

    @property
    def location(self) -> str:
        return self.inner.name

    def owns(self, document_id: str) -> bool:
        return self.inner.owns(document_id)

    def allows(self, document_id: str) -> bool:
        if not self.include and not self.exclude:
            return True
        path = relative_path(self.spec, document_id)
        included = not self.include or any(fnmatchcase(path, glob) for glob in self.include)
        return included and not any(fnmatchcase(path, glob) for glob in self.exclude)

    def scan(self, known: Mapping[str, KnownDocument], cursor: Mapping[str, str]) -> SourceScan:
        inner = self.inner.scan(known, cursor)

        async def changes(scan: SourceScan) -> AsyncIterator[Change]:
            try:
                async for change in inner:
                    allowed = self._filter(change)
                    if allowed is not None:
                        yield allowed
            finally:
                await inner.aclose()
                scan.cursor.update(inner.cursor)
                scan.notes.extend(inner.notes)
                scan.complete = inner.complete
            if scan.complete:  # what the globs exclude now leaves the index (never on a partial scan)
                for document_id in sorted(known):
                    if not self.allows(document_id):
                        yield Gone(document_id, "excluded by the source's include/exclude globs")

        return SourceScan(changes)

    def _filter(self, change: Change) -> Change | None:
        if isinstance(change, Fetched | Unchanged) and not self.allows(change.document_id):
            return None
        if isinstance(change, Gone | Failed) and change.document_id and not self.allows(change.document_id):
            return None  # an excluded document's fate: decided after the scan
        return change
