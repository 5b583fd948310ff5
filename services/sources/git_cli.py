"""The `git` command line, run without prompts and without credentials on its command line.

Secrets reach git only through its environment: an https token or password through a credential
helper defined in `GIT_CONFIG_*` variables (so it is in neither `ps` output nor a config file),
an ssh key through `GIT_SSH_COMMAND`. Every message that leaves this module is redacted, and
git's English errors are turned into reasons a user can act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.sources.naming import redact_text

__all__ = ["BlobReader", "GitAuth", "GitError", "GitRunner", "TreeEntry"]

_HELPER = (
    '!f() { test "$1" = get || exit 0; '
    'printf "username=%s\\npassword=%s\\n" "$DOCS_BOT_GIT_USERNAME" "$DOCS_BOT_GIT_PASSWORD"; }; f'
)
_NEEDS_CREDENTIALS = (
    "could not read username",
    "could not read password",
    "terminal prompts disabled",
    "authentication failed",
    "permission denied (publickey",
    "access denied",
    "returned error: 401",
    "returned error: 403",
    "host key verification failed",
)
_NOT_FOUND = ("repository not found", "does not appear to be a git repository", "returned error: 404")
_NO_REF = ("couldn't find remote ref", "not our ref", "unadvertised object", "invalid refspec")


class GitError(Exception):
    """A git command failed; `reason` is redacted and says what to do."""

    def __init__(self, reason: str, *, temporary: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.temporary = temporary


@dataclass(frozen=True, slots=True)
class GitAuth:
    """Credentials for one repository; only `environment()` ever reads the secrets."""

    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    ssh_key: str | None = None

    @property
    def secrets(self) -> tuple[str | None, ...]:
        return (self.password, self.username if self.password is None else None)

    def environment(self, base: Mapping[str, str]) -> dict[str, str]:
        env = {k: v for k, v in base.items() if k not in ("GIT_ASKPASS", "SSH_ASKPASS", "GIT_DIR")}
        env.update(GIT_TERMINAL_PROMPT="0", GCM_INTERACTIVE="never", LC_ALL="C", LANGUAGE="C")
        env["GIT_ALLOW_PROTOCOL"] = "http:https:ssh:file:git"
        ssh = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new"]
        if self.ssh_key:
            ssh += ["-i", self.ssh_key, "-o", "IdentitiesOnly=yes"]
        env["GIT_SSH_COMMAND"] = shlex.join(ssh)
        if self.password is not None or self.username is not None:
            count = int(env.get("GIT_CONFIG_COUNT", "0") or 0)
            for offset, value in enumerate(("", _HELPER)):  # "" first: no other helper is asked
                env[f"GIT_CONFIG_KEY_{count + offset}"] = "credential.helper"
                env[f"GIT_CONFIG_VALUE_{count + offset}"] = value
            env["GIT_CONFIG_COUNT"] = str(count + 2)
            env["DOCS_BOT_GIT_USERNAME"] = self.username or "x-access-token"
            env["DOCS_BOT_GIT_PASSWORD"] = self.password or ""
        return env


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """A file in a commit's tree."""

    path: str
    blob: str
    size: int


def _classify(stderr: str, has_credentials: bool) -> tuple[str, bool]:
    """(reason, temporary) from git's stderr (LC_ALL=C); unknown errors count as temporary."""
    lowered = stderr.lower()
    if any(marker in lowered for marker in _NEEDS_CREDENTIALS):
        if has_credentials:
            return "the repository rejected the credentials (check the token or key)", False
        return (
            "the repository needs credentials (name an environment variable holding a token with "
            "token_env=…, or give an ssh key with ssh_key=…)",
            False,
        )
    if any(marker in lowered for marker in _NOT_FOUND) or "no such file or directory" in lowered:
        return "the repository does not exist (or is private and needs credentials)", False
    if any(marker in lowered for marker in _NO_REF):
        return "the ref does not exist in the repository", False
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    detail = lines[-1] if lines else "no message"
    return f"git failed: {detail.removeprefix('fatal: ')}", True


class GitRunner:
    """Runs git against one bare repository with one set of credentials and a timeout."""

    def __init__(self, git_dir: Path, auth: GitAuth, timeout: float, environ: Mapping[str, str]) -> None:
        self.git_dir = git_dir
        self.auth = auth
        self.timeout = timeout
        self._env = auth.environment(environ)

    def redact(self, text: str) -> str:
        return redact_text(text, self.auth.secrets)

    def command(self, *args: str) -> list[str]:
        return ["git", f"--git-dir={self.git_dir}", *args]

    async def run(self, *args: str) -> bytes:
        """stdout of `git ARGS`; raises `GitError` (redacted) on failure or timeout."""
        process = await asyncio.create_subprocess_exec(
            *self.command(*args),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._env,
            start_new_session=True,  # a hung ssh/https helper is killed with git
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), self.timeout)
        except TimeoutError:
            _kill(process)
            await process.wait()
            raise GitError(f"git {args[0]} timed out after {self.timeout:.0f} s", temporary=True) from None
        except BaseException:
            _kill(process)
            raise
        if process.returncode != 0:
            reason, temporary = _classify(stderr.decode("utf-8", "replace"), self._has_credentials)
            raise GitError(self.redact(reason), temporary=temporary)
        return stdout

    @property
    def _has_credentials(self) -> bool:
        return self.auth.password is not None or self.auth.username is not None or bool(self.auth.ssh_key)

    async def ensure_repository(self) -> None:
        """A bare repository in `git_dir`, made once; later runs only fetch into it."""
        if not (self.git_dir / "HEAD").exists():
            self.git_dir.mkdir(parents=True, exist_ok=True)
            await self.run("init", "--bare", "--quiet")

    async def fetch(self, url: str, ref: str | None, local_ref: str) -> str:
        """Fetch `ref` (default branch when None) shallowly into `local_ref`; returns the commit."""
        await self.run(
            "fetch", "--depth=1", "--no-tags", "--quiet", "--no-write-fetch-head", "--force",
            "--", url, f"+{ref or 'HEAD'}:{local_ref}",
        )  # fmt: skip
        return (await self.run("rev-parse", "--verify", f"{local_ref}^{{commit}}")).decode().strip()

    async def commit_time(self, commit: str) -> int:
        return int((await self.run("log", "-1", "--format=%ct", commit)).decode().strip() or 0)

    async def list_files(self, commit: str, subdirectory: str) -> list[TreeEntry] | None:
        """Regular files under `subdirectory` at `commit`; None when the subdirectory is missing."""
        if subdirectory:
            try:
                await self.run("rev-parse", "--verify", "--quiet", f"{commit}:{subdirectory}")
            except GitError:
                return None
        args = ["ls-tree", "-r", "-z", "--long", commit]
        output = await self.run(*args, "--", subdirectory) if subdirectory else await self.run(*args)
        entries = []
        for record in output.split(b"\0"):
            if not record:
                continue
            meta, _, raw_path = record.partition(b"\t")
            mode, kind, blob, size = meta.decode().split()
            if kind == "blob" and mode in ("100644", "100755"):  # not symlinks or submodules
                entries.append(TreeEntry(raw_path.decode("utf-8", "surrogateescape"), blob, int(size)))
        return entries

    @contextlib.asynccontextmanager
    async def blobs(self) -> AsyncIterator[BlobReader]:
        """One `git cat-file --batch` for many blobs (a process per file would dominate a run)."""
        process = await asyncio.create_subprocess_exec(
            *self.command("cat-file", "--batch"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=self._env,
        )
        try:
            yield BlobReader(process, self.timeout)
        finally:
            if process.stdin is not None:
                process.stdin.close()
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


class BlobReader:
    """Reads blobs by id from a running `git cat-file --batch`."""

    def __init__(self, process: asyncio.subprocess.Process, timeout: float) -> None:
        self._process = process
        self._timeout = timeout

    async def read(self, blob: str) -> bytes:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(blob.encode() + b"\n")
        await self._process.stdin.drain()
        header = await asyncio.wait_for(self._process.stdout.readline(), self._timeout)
        fields = header.decode().split()
        if len(fields) != 3:
            raise GitError(f"git could not read blob {blob} ({header.decode().strip()})", temporary=True)
        data = await asyncio.wait_for(self._process.stdout.readexactly(int(fields[2]) + 1), self._timeout)
        return data[:-1]  # the record ends with a newline


def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, 9)
