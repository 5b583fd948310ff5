"""A website as a source: pages from its sitemaps, or crawled from a start page, kept incremental.

Incremental rules, per page: a sitemap `lastmod` equal to the remembered one costs no request; a
conditional GET (If-None-Match / If-Modified-Since) answered 304 costs no body; a body whose hash
is the indexed one costs no extraction. Links of unchanged pages are remembered in their memo, so
a crawl over an unchanged site reaches the same pages without reading them. A page leaves the
index on 404/410, on `noindex`, or when a complete scan no longer reaches it; a scan that met a
temporary failure or a limit deletes nothing by omission.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial

import aiohttp

from data.timestamps import parse_utc
from services.indexing.loader import content_hash
from services.sources.contract import (
    Change,
    Failed,
    Fetched,
    Gone,
    KnownDocument,
    SourceScan,
    Unchanged,
)
from services.sources.naming import WebSpec
from services.sources.sitemaps import read_sitemaps
from services.sources.web_client import SEEN, FetchFailure, Response, WebClient, WebLimits
from services.sources.web_page import parse_web_document, read_page_facts
from services.sources.web_urls import (
    Scope,
    TrapGuard,
    document_kind,
    is_asset,
    is_document_link,
    normalize_url,
)

__all__ = ["WebSource"]

Emit = Callable[[Change], Awaitable[None]]


def _modified(response: Response | None, lastmod: str | None) -> datetime:
    """Last-Modified, else the sitemap's lastmod, else now (UTC)."""
    with contextlib.suppress(TypeError, ValueError):
        if response is not None and response.last_modified:
            return parsedate_to_datetime(response.last_modified).astimezone(UTC)
    return parse_utc(lastmod) or datetime.now(UTC)


class WebSource:
    """`https://site/docs/` (crawl), `https://site/sitemap.xml` or `https://site/robots.txt`."""

    def __init__(self, spec: WebSpec, limits: WebLimits) -> None:
        self.spec = spec
        self.limits = limits
        self.start = normalize_url(spec.url) or spec.url
        self.scope = Scope.around(self.start, whole_host=spec.mode != "crawl")

    @property
    def name(self) -> str:
        return self.spec.name

    def owns(self, document_id: str) -> bool:
        return self.scope.contains(document_id) or (
            self.scope.same_host(document_id) and is_document_link(document_id)
        )

    def scan(self, known: Mapping[str, KnownDocument], cursor: Mapping[str, str]) -> SourceScan:
        return SourceScan(lambda scan: self._changes(scan, known))

    async def _changes(self, scan: SourceScan, known: Mapping[str, KnownDocument]) -> AsyncIterator[Change]:
        """Crawl in a task; changes come through a small queue (back-pressure on the fetching)."""
        queue: asyncio.Queue[Change | None] = asyncio.Queue(maxsize=16)

        async def crawl() -> None:
            try:
                timeout = aiohttp.ClientTimeout(total=None)
                async with aiohttp.ClientSession(timeout=timeout, auto_decompress=True) as session:
                    await _Crawl(self, WebClient(session, self.limits), known, scan, queue.put).run()
            finally:
                await queue.put(None)

        task = asyncio.create_task(crawl())
        try:
            while (change := await queue.get()) is not None:
                yield change
            await task  # re-raises a crash of the crawl
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


class _Crawl:
    """The state of one scan: frontier, what was reached, and whether deletions may be decided."""

    def __init__(
        self,
        source: WebSource,
        client: WebClient,
        known: Mapping[str, KnownDocument],
        scan: SourceScan,
        emit: Emit,
    ) -> None:
        self.source = source
        self.client = client
        self.limits = source.limits
        self.known = known
        self.scan = scan
        self.emit = emit
        self.by_url = dict(known)  # a page's URL is its document id
        self.frontier: asyncio.Queue[tuple[str, int, str | None]] = asyncio.Queue()
        self.queued: set[str] = set()
        self.claimed: set[str] = set()  # documents this scan reported on (kept or changed)
        self.reached: set[str] = set()  # URLs requested (redirect targets included)
        self.traps = TrapGuard(self.limits.max_url_variants)
        self.complete = True
        self.limit_hit = self.too_deep = self.disallowed = self.duplicates = 0

    async def run(self) -> None:
        start, mode = self.source.start, self.source.spec.mode
        try:
            await self.client.robots(start)
            if mode == "robots":
                rules = await self.client.robots(start)
                roots = [u for u in (normalize_url(s) for s in (rules.sitemaps if rules else [])) if u]
                if not roots:
                    await self.emit(Failed(start, "robots.txt lists no Sitemap: lines", temporary=False))
                    return
            else:
                roots = [start]
        except FetchFailure as exc:
            await self.emit(Failed(start, exc.reason, exc.temporary))
            return
        if mode == "crawl":
            await self.enqueue(start, 0, None, listed=True)
        else:
            listed = await read_sitemaps(self.client, roots)
            for failure in listed.failures:
                await self.emit(failure)
            self.complete = self.complete and listed.complete
            for entry in listed.entries.values():
                await self.enqueue(entry.url, 0, entry.lastmod, listed=True)
        workers = [asyncio.create_task(self.worker()) for _ in range(self.limits.concurrency_per_host)]
        try:
            await self.frontier.join()
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        await self.finish()

    async def finish(self) -> None:
        self.notes()
        if not self.complete:
            return
        where = "the sitemap" if self.source.spec.mode != "crawl" else f"links from {self.source.start}"
        for document_id in sorted(set(self.known) - self.claimed):
            await self.emit(Gone(document_id, f"no longer reached through {where}"))
        self.scan.complete = True

    def notes(self) -> None:
        name, limits, notes = self.source.name, self.limits, self.scan.notes
        if self.limit_hit:
            notes.append(
                f"{name}: stopped at {limits.max_pages} pages (max pages); {self.limit_hit} not read"
            )
        if self.too_deep:
            notes.append(f"{name}: {self.too_deep} links deeper than {limits.max_depth} levels not followed")
        if self.traps.caught:
            notes.append(f"{name}: {self.traps.caught} URLs skipped as crawler traps")
        if self.disallowed:
            notes.append(f"{name}: {self.disallowed} URLs disallowed by robots.txt")
        if self.duplicates:
            notes.append(f"{name}: {self.duplicates} URLs were another page (redirect or rel=canonical)")
        if not self.complete:
            notes.append(f"{name}: incomplete scan; pages it did not reach were kept")

    async def enqueue(self, url: str, depth: int, lastmod: str | None, *, listed: bool = False) -> None:
        if url in self.queued or is_asset(url):
            return
        if not listed:
            trap = self.traps.check(url)
            if trap is not None:
                if trap[1]:
                    await self.emit(Failed(url, trap[0], temporary=False))
                return
            if depth > self.limits.max_depth:
                self.too_deep += 1
                return
        if len(self.queued) >= self.limits.max_pages:
            self.limit_hit += 1
            self.complete = False
            return
        self.queued.add(url)
        self.frontier.put_nowait((url, depth, lastmod))

    async def follow(self, links: list[str], depth: int) -> None:
        crawling = self.source.spec.mode == "crawl"
        for link in links:
            same_host_document = self.source.scope.same_host(link) and is_document_link(link)
            if same_host_document or (crawling and self.source.scope.contains(link)):
                await self.enqueue(link, depth, None)

    async def worker(self) -> None:
        while True:
            url, depth, lastmod = await self.frontier.get()
            try:
                await self.visit(url, depth, lastmod)
            except Exception as exc:  # a bug on one page must not hang or stop the scan
                self.complete = False
                await self.emit(Failed(url, f"unexpected error ({type(exc).__name__}: {exc})", True))
            finally:
                self.frontier.task_done()

    async def claim(self, change: Change) -> None:
        document_id = change.document_id
        if document_id is not None and document_id in self.claimed:
            return
        if document_id is not None:
            self.claimed.add(document_id)
        await self.emit(change)

    async def visit(self, url: str, depth: int, lastmod: str | None) -> None:
        if url in self.reached:  # an earlier redirect already read this page
            return
        previous = self.by_url.get(url)
        if not await self.client.allowed(url):
            self.disallowed += 1
            if previous is not None:
                await self.claim(Gone(previous.document_id, "disallowed by robots.txt"))
            return
        if previous is not None and lastmod and previous.memo.get("lastmod") == lastmod:
            await self.claim(Unchanged(previous.document_id, previous.memo))  # the sitemap says so
            await self.follow(_links(previous.memo), depth + 1)
            return
        memo = previous.memo if previous is not None else {}
        self.reached.add(url)
        try:
            response = await self.client.get(
                url,
                accept=_accept,
                etag=memo.get("etag"),
                last_modified=memo.get("last_modified"),
                follow=self.take,
            )
        except FetchFailure as exc:
            self.complete = self.complete and not exc.temporary
            document_id = previous.document_id if previous is not None else None
            await self.claim(Failed(url, exc.reason, exc.temporary, document_id))
            return
        if response.status == SEEN:  # redirected to a page this scan reads anyway
            self.duplicates += 1
            return
        if response.url != url:  # redirected: the target is the page
            self.queued.add(response.url)
            previous = self.by_url.get(response.url, previous)
        await self.answer(url, response, previous, depth, lastmod)

    def take(self, url: str) -> bool:
        """Claim a redirect target for this request; False when another request has it."""
        if url in self.reached:
            return False
        self.reached.add(url)
        return True

    async def answer(
        self, url: str, response: Response, previous: KnownDocument | None, depth: int, lastmod: str | None
    ) -> None:
        document_id = previous.document_id if previous is not None else None
        status = response.status
        if status == 304 and previous is not None:
            await self.claim(Unchanged(previous.document_id, _memo(previous.memo, response, lastmod)))
            await self.follow(_links(previous.memo), depth + 1)
            if self.source.spec.mode == "crawl" and "links" not in previous.memo:
                self.complete = False  # its links are unknown: what it reached is unknown too
        elif status in (404, 410):
            reason = f"not found ({status})"
            await self.claim(Gone(document_id, reason) if document_id else Failed(url, reason, False))
        elif status >= 500 or status == 429:
            self.complete = False
            await self.claim(Failed(url, f"server error ({status})", True, document_id))
        elif status != 200:
            await self.claim(Failed(url, f"unexpected answer ({status})", False, document_id))
        elif not response.accepted:
            reason = f"not HTML or PDF (content type {response.content_type or 'missing'})"
            await self.claim(Failed(response.url, reason, False, document_id))
        else:
            await self.page(response, previous, depth, lastmod)

    async def page(
        self, response: Response, previous: KnownDocument | None, depth: int, lastmod: str | None
    ) -> None:
        kind = document_kind(response.content_type, response.url) or ".html"
        digest = content_hash(response.body)
        document_id, links = response.url, []
        if previous is not None and previous.document_id != document_id:
            previous = None  # moved (redirected elsewhere): the old document is left unclaimed
        unchanged = previous is not None and previous.content_hash == digest
        if kind == ".html" and unchanged and previous is not None and "links" in previous.memo:
            links = _links(previous.memo)  # same bytes, same links: no need to parse
        elif kind == ".html":
            body, url, charset = response.body, response.url, response.charset
            facts = await asyncio.to_thread(read_page_facts, body, url, charset)
            canonical = facts.canonical
            if canonical and canonical != url and self.source.scope.same_host(canonical):
                # An alias (print view, tracking URL …): the canonical page is read as itself,
                # with its own validators, so it stays one document with one memo.
                self.duplicates += 1
                await self.enqueue(canonical, depth, None, listed=True)
                return
            links = [] if facts.nofollow else facts.links
            if facts.noindex:
                if previous is not None:
                    await self.claim(Gone(previous.document_id, "the page is marked noindex"))
                await self.follow(links, depth + 1)
                return
        memo = _memo({}, response, lastmod)
        if kind == ".html":
            memo["links"] = " ".join(links)
        if unchanged:
            await self.claim(Unchanged(document_id, memo))
        else:
            modified_time = _modified(response, lastmod)
            body, charset = response.body, response.charset
            parser = partial(parse_web_document, document_id, kind, body, charset, modified_time)
            await self.claim(Fetched(document_id, document_id, digest, modified_time, memo, parser))
        await self.follow(links, depth + 1)


def _accept(content_type: str, url: str) -> bool:
    return document_kind(content_type, url) is not None


def _links(memo: Mapping[str, str]) -> list[str]:
    return memo.get("links", "").split()


def _memo(old: Mapping[str, str], response: Response, lastmod: str | None) -> dict[str, str]:
    """The validators to send next time (a 304 may refresh them) and the sitemap's lastmod."""
    memo = dict(old)
    if response.etag:
        memo["etag"] = response.etag
    if response.last_modified:
        memo["last_modified"] = response.last_modified
    if lastmod:
        memo["lastmod"] = lastmod
    return memo
