"""URLs of a website source: one normal form per page, what is in scope, and crawler traps.

Normalisation is courlan's (lower-case host, default ports dropped, query sorted, tracking and
session parameters removed) after resolving dot segments; the fragment is dropped, so every link
to a page names the same document. Traps (calendars, endless query strings, repeating paths) are
recognised by shape and reported; a path-based calendar is bounded by the depth limit.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

from courlan import normalize_url as courlan_normalize

from services.indexing.office import OFFICE_SUFFIXES

__all__ = ["Scope", "TrapGuard", "document_kind", "is_asset", "is_document_link", "normalize_url"]

LINKED_DOCUMENT_SUFFIXES = frozenset({".pdf", *OFFICE_SUFFIXES})
_ASSET_SUFFIXES = frozenset(
    ".png .jpg .jpeg .gif .svg .webp .ico .bmp .tif .tiff .css .js .mjs .map .json .woff .woff2 .ttf "
    ".otf .eot .zip .gz .tgz .bz2 .xz .7z .tar .rar .mp3 .mp4 .m4a .wav .ogg .webm .avi .mov .mkv .exe "
    ".dmg .msi .deb .rpm .whl .jar .apk .iso .bin .rss .atom .csv .doc .ppt .xls".split()
)
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_TYPES = {
    "application/pdf": ".pdf",
    "text/plain": ".txt",
    "text/markdown": ".md",
    "text/x-markdown": ".md",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/vnd.oasis.opendocument.text": ".odt",
}
_SAFE = ":/?#[]@!$&'()*+,;=%~"


def normalize_url(href: str, base: str | None = None) -> str | None:
    """The page's one name: absolute http(s), no fragment, normalised; None for other links."""
    href = href.strip()
    if not href or href.startswith(("#", "javascript:", "mailto:", "tel:", "data:")):
        return None
    try:
        joined = urljoin(base, href) if base else href  # also resolves ./ and ../
        parts = urlsplit(quote(joined, safe=_SAFE))
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    bare = urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, ""))
    try:
        normal = courlan_normalize(bare)
    except (ValueError, AttributeError):
        return None
    normal_parts = urlsplit(normal)
    return urlunsplit(normal_parts._replace(path=normal_parts.path or "/", fragment=""))


def _suffix(url: str) -> str:
    return PurePosixPath(unquote(urlsplit(url).path)).suffix.lower()


def is_document_link(url: str) -> bool:
    """A linked PDF or Office file: indexed even outside the crawl's path prefix (same host)."""
    return _suffix(url) in LINKED_DOCUMENT_SUFFIXES


def is_asset(url: str) -> bool:
    """Images, scripts, archives …: never requested (they are not documents)."""
    return _suffix(url) in _ASSET_SUFFIXES


def document_kind(content_type: str, url: str) -> str | None:
    """The parse hint for a response ('.html', '.pdf', '.docx' …), or None when it is no document."""
    if content_type in _HTML_TYPES:
        return ".html"
    if content_type in _TYPES:
        return _TYPES[content_type]
    if content_type in ("application/octet-stream", "binary/octet-stream", ""):
        suffix = _suffix(url)
        return suffix if suffix in LINKED_DOCUMENT_SUFFIXES else None
    return None


@dataclass(frozen=True, slots=True)
class Scope:
    """A host (scheme ignored: http->https redirects stay inside) and a path prefix on it."""

    host: str  # netloc, lower case, default port dropped
    prefix: str  # starts and ends with "/"

    @classmethod
    def around(cls, url: str, *, whole_host: bool) -> Scope:
        parts = urlsplit(url)
        path = parts.path or "/"
        if not PurePosixPath(path).suffix and not path.endswith("/"):
            path += "/"  # https://site/docs means the docs folder, like https://site/docs/
        prefix = "/" if whole_host else path[: path.rfind("/") + 1]
        return cls(parts.netloc.lower(), prefix)

    def same_host(self, url: str) -> bool:
        return urlsplit(url).netloc.lower() == self.host

    def contains(self, url: str) -> bool:
        return self.same_host(url) and (urlsplit(url).path or "/").startswith(self.prefix)


@dataclass(slots=True)
class TrapGuard:
    """Shapes of URLs that never end; each shape is reported once, later matches only counted."""

    max_variants: int
    max_url_length: int = 2000
    _queries: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    _reported: set[str] = field(default_factory=set)
    caught: int = 0

    def check(self, url: str) -> tuple[str, bool] | None:
        """(reason, first time this shape was seen) for a trap URL; None for an ordinary one."""
        found = self._trap(url)
        if found is None:
            return None
        key, reason = found
        self.caught += 1
        first = key not in self._reported
        self._reported.add(key)
        return reason, first

    def _trap(self, url: str) -> tuple[str, str] | None:
        parts = urlsplit(url)
        path = parts.path or "/"
        if len(url) > self.max_url_length:
            return f"long:{path}", f"URL longer than {self.max_url_length} characters (a crawler trap?)"
        segments = [segment for segment in path.split("/") if segment]
        for segment in set(segments):
            if segments.count(segment) >= 3:
                return f"repeat:{segment}", f"the path repeats '{segment}' (a crawler trap?)"
        if parts.query:
            variants = self._queries[path]
            variants.add(parts.query)
            if len(variants) > self.max_variants:
                reason = f"more than {self.max_variants} query-string variants of {path} (a crawler trap?)"
                return f"query:{path}", reason
        return None
