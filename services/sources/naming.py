"""Source names: one string form for a path, a website or a Git repository, wherever one is named.

`main.py index SOURCE`, DOCS_PATHS and a sources file all go through `parse_source`, so a name
means the same thing everywhere. Git names follow pip's VCS URL form
(`git+https://host/org/repo.git@ref#subdirectory=docs`). Credentials never leave the spec they
were parsed into: names, document ids and every message are built without them, and
`redact_text` scrubs userinfo (and known secrets) from text that came from elsewhere (git's stderr).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

from configs.errors import UserFacingError

__all__ = [
    "GitSpec",
    "LocalSpec",
    "SourceNameError",
    "SourceSpec",
    "WebSpec",
    "parse_source",
    "redact_text",
    "redact_url",
]

GIT_TRANSPORTS = ("https", "http", "ssh", "file", "git")
GIT_OPTIONS = ("subdirectory", "token_env", "ssh_key")
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SourceNameError(UserFacingError):
    """A source name that cannot be used; the message says which form was expected."""


@dataclass(frozen=True, slots=True)
class LocalSpec:
    """A file or folder on this machine (as DOCS_PATHS always meant)."""

    path: Path

    @property
    def name(self) -> str:
        return str(self.path)


@dataclass(frozen=True, slots=True)
class WebSpec:
    """A website: a sitemap (or robots.txt with Sitemap: lines) lists the pages, else a start page."""

    url: str
    mode: Literal["crawl", "sitemap", "robots"]

    @property
    def name(self) -> str:
        return self.url


@dataclass(frozen=True, slots=True)
class GitSpec:
    """A Git repository at a ref, optionally only a subdirectory of it."""

    url: str  # what git is given: no password, and no user for http(s) (the helper supplies it)
    ref: str | None  # branch, tag or commit; None: the remote's default branch
    subdirectory: str  # "" for the whole repository; never starts or ends with "/"
    token_env: str | None = None  # environment variable holding an https token
    ssh_key: str | None = None  # private key file for ssh
    username: str | None = field(default=None, repr=False)  # from https userinfo
    password: str | None = field(default=None, repr=False)  # from https userinfo: never shown

    @property
    def repository(self) -> str:
        """The repository without any userinfo: the stable part of document ids."""
        return "git+" + _without_userinfo(urlsplit(self.url))

    @property
    def name(self) -> str:
        name = self.repository + (f"@{self.ref}" if self.ref else "")
        return name + (f"#subdirectory={self.subdirectory}" if self.subdirectory else "")


SourceSpec = LocalSpec | WebSpec | GitSpec


def parse_source(text: str) -> SourceSpec:
    """A path, an http(s) URL or a `git+…` URL; raises `SourceNameError` saying what is wrong."""
    name = text.strip()
    if not name:
        raise SourceNameError("An empty source name: give a path, an https:// URL or a git+https:// URL.")
    if name.startswith("git+"):
        return _parse_git(name)
    scheme = name.split("://", 1)[0].lower() if "://" in name else ""
    if scheme in ("http", "https"):
        return _parse_web(name)
    if scheme:
        raise SourceNameError(
            f"Unsupported source '{redact_url(name)}': use a path, an http(s):// URL, or a Git URL "
            "such as git+https://host/org/repo.git@main#subdirectory=docs."
        )
    return LocalSpec(Path(name).expanduser())


def _parse_web(name: str) -> WebSpec:
    parts = urlsplit(name)
    if parts.username or parts.password:
        raise SourceNameError(f"Credentials in website URLs are not supported: {redact_url(name)}")
    if not parts.hostname:
        raise SourceNameError(f"The URL '{name}' has no host name.")
    url = urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, ""))
    path = parts.path.lower()
    if path.endswith((".xml", ".xml.gz")):
        return WebSpec(url, "sitemap")
    if path == "/robots.txt":
        return WebSpec(url, "robots")
    return WebSpec(url, "crawl")


def _parse_git(name: str) -> GitSpec:
    try:
        parts = urlsplit(name.removeprefix("git+"))
    except ValueError as exc:
        raise SourceNameError(f"Malformed Git URL '{redact_url(name)}': {exc}") from None
    transport = parts.scheme.lower()
    if transport not in GIT_TRANSPORTS:
        raise SourceNameError(
            f"Unsupported Git transport 'git+{transport}' in '{redact_url(name)}' "
            f"(supported: {', '.join('git+' + t for t in GIT_TRANSPORTS)})."
        )
    if transport != "file" and not parts.hostname:
        raise SourceNameError(f"The Git URL '{redact_url(name)}' has no host name.")
    options = _fragment_options(parts.fragment, name)
    path, ref = parts.path, None
    if "@" in path:
        path, ref = path.rsplit("@", 1)
        if not ref:
            raise SourceNameError(f"Empty ref after '@' in '{redact_url(name)}'.")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    if transport == "ssh" and password:
        raise SourceNameError("A password in a git+ssh URL is not supported: give the key with ssh_key=PATH.")
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if transport == "ssh" and username:
        netloc = f"{parts.username}@{netloc}"  # the ssh login name is not a secret
        username = None
    url = urlunsplit((transport, netloc, path, "", ""))
    token_env = options.get("token_env")
    if token_env is not None and not _ENV_NAME.match(token_env):
        raise SourceNameError(f"token_env must name an environment variable, not '{token_env}'.")
    return GitSpec(
        url=url,
        ref=ref,
        subdirectory=_subdirectory(options.get("subdirectory", "")),
        token_env=token_env,
        ssh_key=options.get("ssh_key"),
        username=username,
        password=password,
    )


def _fragment_options(fragment: str, name: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for item in filter(None, fragment.split("&")):
        key, _, value = item.partition("=")
        if key not in GIT_OPTIONS:
            raise SourceNameError(
                f"Unknown option '{key}' in '{redact_url(name)}' (known: {', '.join(GIT_OPTIONS)})."
            )
        options[key] = unquote(value)
    return options


def _subdirectory(raw: str) -> str:
    cleaned = raw.strip().strip("/")
    parts = [part for part in cleaned.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise SourceNameError(f"The subdirectory '{raw}' must stay inside the repository (no '..').")
    return "/".join(parts)


def _without_userinfo(parts: SplitResult) -> str:
    return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path, "", ""))


def redact_url(url: str) -> str:
    """The URL with any userinfo replaced by `***` (tokens often sit in the user part)."""
    return _USERINFO.sub(r"\g<scheme>***@", url)


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Text with URL userinfo and every given secret (4+ characters) replaced by `***`."""
    text = redact_url(text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
