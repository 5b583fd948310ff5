"""Find documents on disk and parse them into titled sections, without ever crashing the run.

Every file either becomes a `ParsedDocument` or a `LoadFailure` whose reason a user can act on
(permissions, binary data, empty, malformed, too large, a broken or looping symbolic link).
Hashing is separate from parsing so the indexer can skip unchanged documents cheaply; both run
in worker threads.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from configs.config import DEFAULT_MAX_FILE_BYTES
from data.records import DocumentState
from services.indexing.formats import DOCUMENT_SUFFIXES, decode_text, parse_content
from services.indexing.parsers import ParseError, Section

__all__ = [
    "DOCUMENT_SUFFIXES",
    "SUPPORTED_SUFFIXES",
    "Discovery",
    "LoadFailure",
    "ParsedDocument",
    "Section",
    "content_hash",
    "decode_text",
    "discover",
    "discover_files",
    "hash_file",
    "parse_bytes",
    "parse_document",
    "resolve_path",
    "title_from_name",
]

SUPPORTED_SUFFIXES = DOCUMENT_SUFFIXES  # Markdown, reST, text, HTML, PDF and Office files
SKIPPED_DIRS = frozenset({"node_modules", "__pycache__", "site-packages", "venv"})
LINK_LOOP = "symbolic link loop (the link leads back to itself), so it cannot be read"


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """A parsed file: identity, change-detection data and its sections in reading order."""

    document_id: str  # the resolved absolute path
    source: str
    title: str
    content_hash: str  # sha256 of the raw bytes
    modified_time: datetime  # UTC
    sections: list[Section]
    notes: list[str] = field(default_factory=list)  # non-fatal remarks (e.g. encoding fallback)

    def state(self, chunk_count: int) -> DocumentState:
        """What the index records about this document once its `chunk_count` chunks are written."""
        return DocumentState(
            document_id=self.document_id,
            source=self.source,
            title=self.title,
            content_hash=self.content_hash,
            modified_time=self.modified_time,
            chunk_count=chunk_count,
        )


@dataclass(frozen=True, slots=True)
class LoadFailure:
    """A file that could not be indexed, and why (shown to the user)."""

    path: str
    reason: str


@dataclass(slots=True)
class Discovery:
    """Supported files found under the given paths, plus paths that could not be used."""

    files: list[Path] = field(default_factory=list)
    failures: list[LoadFailure] = field(default_factory=list)
    unsupported: int = 0  # files of other types skipped inside directories


def _supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_SUFFIXES


def _skip_dir(name: str) -> bool:
    return name.startswith(".") or name in SKIPPED_DIRS or name.endswith(".egg-info")


def resolve_path(path: str | Path) -> Path:
    """The absolute path with symbolic links resolved; for a link loop (which cannot be resolved),
    the absolute path as written, so comparing paths never fails on one."""
    path = Path(path).expanduser()
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a loop, before Python 3.13
        return Path(os.path.abspath(path))


def _link_problem(path: Path) -> str | None:
    """Why a symbolic link cannot be followed, or None (not a link, or a working one)."""
    if not path.is_symlink():
        return None
    try:
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return LINK_LOOP
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return f"broken symbolic link: its target {os.readlink(path)} does not exist"
        return f"symbolic link cannot be followed: {exc.strerror}"
    return None


def discover_files(paths: Iterable[str | Path]) -> Discovery:
    """Expand files and directory trees into a sorted, de-duplicated list of supported files.

    Hidden directories (.git, .venv …) and dependency folders (node_modules …) are skipped.
    A missing path, an explicitly named unsupported file, and a broken or looping symbolic link
    (named, or inside a folder) are reported with the reason, never ignored and never fatal.
    """
    found: dict[str, Path] = {}
    result = Discovery()
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_file():
            if _supported(path):
                found.setdefault(str(path.resolve()), path.resolve())
            else:
                supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
                reason = f"unsupported file type '{path.suffix or path.name}' (supported: {supported})"
                result.failures.append(LoadFailure(str(path), reason))
        elif path.is_dir():

            def on_error(error: OSError) -> None:
                result.failures.append(
                    LoadFailure(str(error.filename), f"cannot list directory: {error.strerror}")
                )

            for folder, dirs, files in os.walk(path, onerror=on_error):
                dirs[:] = sorted(d for d in dirs if not _skip_dir(d))
                for name in files:  # (a link whose target is unusable is listed here, with files)
                    file = Path(folder) / name
                    if name.startswith("."):
                        result.unsupported += 1
                    elif (problem := _link_problem(file)) is not None:
                        result.failures.append(LoadFailure(str(file), problem))
                    elif not _supported(file):
                        result.unsupported += 1
                    elif file.is_file():
                        found.setdefault(str(file.resolve()), file.resolve())
                    else:
                        result.failures.append(LoadFailure(str(file), "not a regular file"))
        else:
            reason = _link_problem(path) or "path does not exist"
            result.failures.append(LoadFailure(str(path), reason))
    result.files = [found[key] for key in sorted(found)]
    return result


async def discover(paths: Iterable[str | Path]) -> Discovery:
    """`discover_files` in a worker thread (directory walks block)."""
    return await asyncio.to_thread(discover_files, list(paths))


def hash_file(path: str | Path) -> str:
    """sha256 of the file's bytes, streamed; no parsing (cheap change detection)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return LINK_LOOP
    if isinstance(exc, PermissionError):
        return "cannot read file: permission denied"
    if isinstance(exc, FileNotFoundError):
        return "file disappeared before it could be read"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not a file"
    return f"cannot read file: {exc.strerror or exc}"


def oversize_reason(size: int, max_bytes: int) -> str | None:
    """Why a file of `size` bytes is skipped under MAX_FILE_BYTES=`max_bytes` (0: no limit), or None."""
    if not max_bytes or size <= max_bytes:
        return None
    return f"skipped: too large ({_megabytes(size)}, over MAX_FILE_BYTES={_megabytes(max_bytes)})"


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size:,} bytes"


def parse_document(
    path: str | Path, data: bytes | None = None, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES
) -> ParsedDocument | LoadFailure:
    """Read (unless `data` is given) and parse one file. Blocking; never raises for bad input.

    A file over `max_bytes` (MAX_FILE_BYTES; 0: no limit) is not read: parsing takes several times
    a file's size in memory. Whoever passes `data` has read it, under a limit of their own.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        resolved = path.resolve()
        stat = resolved.stat()
        if data is None:
            if (oversized := oversize_reason(stat.st_size, max_bytes)) is not None:
                return LoadFailure(str(path), oversized)
            data = resolved.read_bytes()
    except OSError as exc:
        return LoadFailure(str(path), _os_reason(exc))
    except RuntimeError:  # Path.resolve() on a link loop, before Python 3.13
        return LoadFailure(str(path), LINK_LOOP)
    if suffix not in SUPPORTED_SUFFIXES:
        return LoadFailure(str(path), f"unsupported file type '{suffix or path.name}'")
    return parse_bytes(
        document_id=str(resolved),
        source=str(resolved),
        name=path.name,
        kind=suffix,
        data=data,
        modified_time=datetime.fromtimestamp(stat.st_mtime, tz=UTC),
        target=str(path),
        empty="empty file",
    )


def content_hash(data: bytes) -> str:
    """sha256 of the raw bytes: the index's change detection, the same for every kind of source."""
    return hashlib.sha256(data).hexdigest()


def title_from_name(name: str) -> str:
    """A title for a document without one: its file name without the suffix, words apart."""
    stem = PurePosixPath(name.rstrip("/")).stem
    return stem.replace("_", " ").replace("-", " ").strip() or name


def parse_bytes(
    *,
    document_id: str,
    source: str,
    name: str,
    kind: str,
    data: bytes,
    modified_time: datetime,
    target: str | None = None,
    empty: str = "empty document",
) -> ParsedDocument | LoadFailure:
    """Parse one document's bytes (a file's, a page's, a Git blob's); never raises for bad input.

    `target` names the document in a failure (default: `source`), `empty` is the reason for an
    empty one ("empty file" for a file on disk).
    """
    where = target or source
    if not data.strip():
        return LoadFailure(where, empty)
    try:
        title, sections, notes = parse_content(kind, data)
    except ParseError as exc:
        return LoadFailure(where, str(exc))
    except RecursionError:
        return LoadFailure(where, "document is nested too deeply to parse")
    except Exception as exc:  # a parser bug or exotic input must not stop the other documents
        return LoadFailure(where, f"could not parse ({type(exc).__name__}: {exc})")
    if not sections:
        return LoadFailure(where, "no text found (only markup, headings or whitespace)")
    return ParsedDocument(
        document_id=document_id,
        source=source,
        title=title or title_from_name(name),
        content_hash=content_hash(data),
        modified_time=modified_time,
        sections=sections,
        notes=notes,
    )
