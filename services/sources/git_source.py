"""A Git repository as a source: a shallow clone in DATA_DIR, fetched each run, diffed by blob id.

Each file's blob id is kept in its memo, so a file whose blob did not change between the indexed
commit and the fetched one is `Unchanged` without being read; a file that is no longer in the
tree is `Gone`, and a new path whose blob is one that vanished is marked as that file's rename.
Citations open the file at the indexed commit on its host (GitHub, GitLab, Bitbucket, Gitea).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path, PurePosixPath
from urllib.parse import quote, urlsplit

from services.indexing.loader import DOCUMENT_SUFFIXES, SKIPPED_DIRS, LoadFailure, content_hash, parse_bytes
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
from services.sources.git_cli import BlobReader, GitAuth, GitError, GitRunner, TreeEntry
from services.sources.naming import GitSpec

__all__ = ["GitOptions", "GitSource", "hosted_file_url"]

_KNOWN_HOSTS = {
    "github.com": "github",
    "gitlab.com": "gitlab",
    "bitbucket.org": "bitbucket",
    "codeberg.org": "gitea",
    "gitea.com": "gitea",
}
_BLOB_PATHS = {
    "github": "blob/{commit}/{path}",
    "gitlab": "-/blob/{commit}/{path}",
    "bitbucket": "src/{commit}/{path}",
    "gitea": "src/commit/{commit}/{path}",
}


@dataclass(frozen=True, slots=True)
class GitOptions:
    """Where clones live and how long git may take."""

    clones_dir: Path  # DATA_DIR/sources/git
    timeout_seconds: float = 300.0
    max_file_bytes: int = 100 * 1024 * 1024
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)  # for token_env lookups


def hosted_file_url(url: str, commit: str, path: str) -> str | None:
    """The web page of `path` at `commit` when the host is a known forge; None otherwise."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme == "file" or not host:
        return None
    forge = _KNOWN_HOSTS.get(host)
    if forge is None and host.startswith("gitlab."):
        forge = "gitlab"
    elif forge is None and host.startswith(("gitea.", "forgejo.")):
        forge = "gitea"
    if forge is None:
        return None
    netloc = parts.netloc.rsplit("@", 1)[-1] if parts.scheme in ("http", "https") else host
    repository = parts.path.strip("/").removesuffix(".git")
    tail = _BLOB_PATHS[forge].format(commit=commit, path=quote(path))
    return f"https://{netloc}/{repository}/{tail}"


def _indexable(path: str) -> bool:
    parts = PurePosixPath(path).parts
    hidden = any(part.startswith(".") or part in SKIPPED_DIRS or part.endswith(".egg-info") for part in parts)
    return not hidden and PurePosixPath(path).suffix.lower() in DOCUMENT_SUFFIXES


def _parse(
    modified_time: datetime, document_id: str, source: str, path: str, data: bytes
) -> SourceDocument | LoadFailure:
    kind = PurePosixPath(path).suffix.lower()
    parsed = parse_bytes(
        document_id=document_id, source=source, name=path, kind=kind, data=data, modified_time=modified_time
    )
    return parsed if isinstance(parsed, LoadFailure) else SourceDocument(parsed)


class GitSource:
    """`git+https://…`, `git+ssh://…` or `git+file://…`, at a ref, optionally one subdirectory."""

    def __init__(self, spec: GitSpec, options: GitOptions) -> None:
        self.spec = spec
        self.options = options
        repository = spec.repository
        slug = re.sub(r"[^A-Za-z0-9]+", "-", repository.rsplit("/", 1)[-1]).strip("-")[:40] or "repo"
        digest = hashlib.sha256(repository.encode()).hexdigest()[:12]
        self.clone_dir = options.clones_dir / f"{slug}-{digest}"
        self.local_ref = "refs/docsbot/" + hashlib.sha256((spec.ref or "HEAD").encode()).hexdigest()[:16]
        self._id_base = repository + (f"@{spec.ref}" if spec.ref else "") + "#path="

    @property
    def name(self) -> str:
        return self.spec.name

    def document_id(self, path: str) -> str:
        return self._id_base + path

    def owns(self, document_id: str) -> bool:
        prefix = self._id_base + (self.spec.subdirectory + "/" if self.spec.subdirectory else "")
        return document_id.startswith(prefix)

    def citation(self, commit: str, path: str) -> str:
        """What a reader opens: the hosted file at the commit, else the path inside the repository."""
        return hosted_file_url(self.spec.url, commit, path) or path

    def scan(self, known: Mapping[str, KnownDocument], cursor: Mapping[str, str]) -> SourceScan:
        return SourceScan(lambda scan: self._changes(scan, known, cursor))

    def _auth(self) -> GitAuth | str:
        """Credentials from the name and token_env, or the reason they are missing."""
        password = self.spec.password
        if self.spec.token_env:
            password = self.options.environ.get(self.spec.token_env)
            if not password:
                return f"the environment variable {self.spec.token_env} (token_env) is not set"
        return GitAuth(username=self.spec.username, password=password, ssh_key=self.spec.ssh_key)

    async def _changes(
        self, scan: SourceScan, known: Mapping[str, KnownDocument], cursor: Mapping[str, str]
    ) -> AsyncIterator[Change]:
        auth = self._auth()
        if isinstance(auth, str):
            yield Failed(self.name, auth, temporary=False)
            return
        runner = GitRunner(self.clone_dir, auth, self.options.timeout_seconds, self.options.environ)
        try:
            await runner.ensure_repository()
            commit = await runner.fetch(self.spec.url, self.spec.ref, self.local_ref)
            entries = await runner.list_files(commit, self.spec.subdirectory)
            modified_time = datetime.fromtimestamp(await runner.commit_time(commit), tz=UTC)
        except GitError as exc:
            yield Failed(self.name, exc.reason, temporary=exc.temporary)
            return
        if entries is None:
            where = self.spec.ref or "the default branch"
            reason = f"the subdirectory '{self.spec.subdirectory}' does not exist at {where} ({commit[:12]})"
            yield Failed(self.name, reason, temporary=False)
            return
        files = {self.document_id(e.path): e for e in entries if _indexable(e.path)}
        gone = sorted(document_id for document_id in known if document_id not in files)
        vanished_blobs = {known[d].memo.get("blob"): d for d in gone}
        previous = cursor.get("commit")
        async with runner.blobs() as reader:
            for document_id, entry in sorted(files.items()):
                change = await self._compare(reader, commit, modified_time, document_id, entry, known)
                if isinstance(change, Fetched) and entry.blob in vanished_blobs:
                    change = replace(change, renamed_from=vanished_blobs[entry.blob])
                yield change
        renamed_to = {e.blob: e.path for d, e in files.items() if d not in known}
        for document_id in gone:
            target = renamed_to.get(known[document_id].memo.get("blob", ""))
            yield Gone(document_id, f"renamed to {target}" if target else "deleted from the repository")
        skipped = len(entries) - len(files)
        if skipped:
            scan.notes.append(f"{self.name}: {skipped} files of other types or in hidden folders skipped")
        if previous and previous != commit:
            scan.notes.append(f"{self.name}: {previous[:12]} -> {commit[:12]}")
        scan.cursor = {"commit": commit}
        scan.complete = True

    async def _compare(
        self,
        reader: BlobReader,
        commit: str,
        modified_time: datetime,
        document_id: str,
        entry: TreeEntry,
        known: Mapping[str, KnownDocument],
    ) -> Change:
        previous = known.get(document_id)
        memo = {"blob": entry.blob}
        if previous is not None and previous.memo.get("blob") == entry.blob:
            return Unchanged(document_id, memo)  # same blob: not even read
        if entry.size > self.options.max_file_bytes:
            limit = self.options.max_file_bytes / 1e6
            reason = f"file too large ({entry.size / 1e6:.1f} MB > {limit:.0f} MB)"
            return Failed(f"{self.name}: {entry.path}", reason, temporary=False, document_id=document_id)
        try:
            data = await reader.read(entry.blob)
        except GitError as exc:
            return Failed(f"{self.name}: {entry.path}", exc.reason, temporary=True, document_id=document_id)
        digest = content_hash(data)
        if previous is not None and previous.content_hash == digest:
            return Unchanged(document_id, memo)
        source = self.citation(commit, entry.path)
        return Fetched(
            document_id=document_id,
            source=source,
            content_hash=digest,
            modified_time=modified_time,
            memo=memo,
            parser=partial(_parse, modified_time, document_id, source, entry.path, data),
        )
