"""Pages listed by sitemaps: a sitemap, a sitemap index (nested), or gzip-compressed ones.

Fetching stays ours (polite, robots.txt-checked, size-limited); ultimate-sitemap-parser reads the
XML and text formats. `complete` is False when any sitemap could not be read, because then a page
missing from the list may be missing only from this run's view, and must not be deleted.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from dataclasses import dataclass, field

from services.sources.contract import Failed
from services.sources.web_client import FetchFailure, WebClient
from services.sources.web_urls import normalize_url

__all__ = ["SitemapEntry", "SitemapList", "read_sitemaps"]

MAX_SITEMAPS = 100  # an index may nest; more than this is a misconfiguration or a trap
_SITEMAP_TYPES = frozenset(
    {"application/xml", "text/xml", "text/plain", "application/gzip", "application/x-gzip", ""}
)


@dataclass(frozen=True, slots=True)
class SitemapEntry:
    url: str
    lastmod: str | None  # as the sitemap gives it (ISO 8601), compared as text between runs


@dataclass(slots=True)
class SitemapList:
    entries: dict[str, SitemapEntry] = field(default_factory=dict)
    failures: list[Failed] = field(default_factory=list)
    complete: bool = True


def _accept(content_type: str, url: str) -> bool:
    return content_type in _SITEMAP_TYPES or content_type.endswith("+xml")


def _text(body: bytes, url: str, limit: int) -> str:
    if body[:2] == b"\x1f\x8b":
        try:
            decompressor = zlib.decompressobj(wbits=31)
            body = decompressor.decompress(body, limit + 1)
        except (zlib.error, gzip.BadGzipFile) as exc:
            raise FetchFailure(f"not a readable gzip sitemap ({exc})", temporary=False) from None
        if len(body) > limit:
            raise FetchFailure(f"sitemap larger than {limit / 1e6:g} MB uncompressed", temporary=False)
    return body.decode("utf-8", "replace")


async def read_sitemaps(client: WebClient, roots: list[str]) -> SitemapList:
    """Every page URL (with lastmod) reachable from `roots`, same host as the sitemap listing it."""
    from usp.objects.sitemap import AbstractIndexSitemap, AbstractPagesSitemap
    from usp.tree import sitemap_from_str

    result = SitemapList()
    queue, seen = list(roots), set(roots)
    while queue:
        url = queue.pop(0)
        if len(seen) > MAX_SITEMAPS:
            result.failures.append(Failed(url, f"more than {MAX_SITEMAPS} sitemaps; the rest skipped", False))
            result.complete = False
            break
        try:
            if not await client.allowed(url):
                raise FetchFailure("robots.txt disallows this sitemap", temporary=False)
            response = await client.get(url, accept=_accept)
            if response.status != 200:
                temporary = response.status >= 500 or response.status == 429
                raise FetchFailure(f"sitemap answered {response.status}", temporary=temporary)
            if not response.accepted:
                raise FetchFailure(f"not a sitemap (content type {response.content_type})", temporary=False)
            text = _text(response.body, url, client.limits.max_page_bytes)
        except FetchFailure as exc:
            result.failures.append(Failed(url, exc.reason, exc.temporary))
            result.complete = False
            continue
        usp_log = logging.getLogger("usp")
        level = usp_log.level
        usp_log.setLevel(logging.ERROR)  # it warns for every odd line; we report the outcome instead
        try:
            parsed = sitemap_from_str(text)
        finally:
            usp_log.setLevel(level)
        host = response.url.split("/")[2]
        if isinstance(parsed, AbstractIndexSitemap) and parsed.sub_sitemaps:
            for child in parsed.sub_sitemaps:
                child_url = normalize_url(child.url)
                if child_url and child_url.split("/")[2] == host and child_url not in seen:
                    seen.add(child_url)
                    queue.append(child_url)
        elif isinstance(parsed, AbstractPagesSitemap) and parsed.pages:
            for page in parsed.pages:
                page_url = normalize_url(page.url)
                if page_url is None or page_url.split("/")[2] != host:
                    result.failures.append(Failed(page.url, "listed on another host than its sitemap", False))
                    continue
                lastmod = page.last_modified.isoformat() if page.last_modified else None
                result.entries.setdefault(page_url, SitemapEntry(page_url, lastmod))
        else:
            result.failures.append(Failed(url, "not a sitemap (no <url> or <sitemap> entries)", False))
            result.complete = False
    return result
