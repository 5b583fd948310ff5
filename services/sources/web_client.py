"""HTTP for website sources: polite per host, robots.txt, conditional requests, bounded everything.

Each host gets a gate (at most N requests at once, a minimum delay between their starts, longer
when robots.txt asks for a Crawl-delay, paused by a 429's Retry-After). Redirects are followed by
hand so loops, hops to other sites and robots.txt rules are checked at every hop. Bodies are read
only for document types, and never past the byte limit. Failures carry whether they are
temporary (retry next run, delete nothing) or bad input.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import aiohttp
from protego import Protego

from services.sources.web_urls import normalize_url

__all__ = ["FetchFailure", "Response", "WebClient", "WebLimits"]

REDIRECTS = frozenset({301, 302, 303, 307, 308})
SEEN = 0  # the status of a `Response` whose redirect target `follow` declined (read elsewhere)


@dataclass(frozen=True, slots=True)
class WebLimits:
    """Limits and manners of one website scan (WEB_* settings)."""

    max_pages: int = 1000
    max_depth: int = 8
    max_page_bytes: int = 20 * 1024 * 1024
    concurrency_per_host: int = 2
    delay_seconds: float = 0.25
    timeout_seconds: float = 30.0
    max_redirects: int = 10
    max_retry_after_seconds: float = 60.0
    max_crawl_delay_seconds: float = 30.0
    max_url_variants: int = 50
    user_agent: str = "docs-chat-bot/0.1 (documentation indexer)"


class FetchFailure(Exception):
    """A URL that could not be read; `reason` is for the run's report."""

    def __init__(self, reason: str, *, temporary: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.temporary = temporary


@dataclass(frozen=True, slots=True)
class Response:
    """The end of a redirect chain. `body` is empty unless the status is 200 and the type accepted."""

    url: str  # normalised final URL
    status: int
    content_type: str  # MIME type without parameters, lower case
    charset: str | None
    etag: str | None
    last_modified: str | None
    body: bytes = b""
    accepted: bool = False  # the content type was one the caller reads


@dataclass(slots=True)
class _HostGate:
    """At most `concurrency` requests to one host, starting at least `delay` seconds apart."""

    concurrency: int
    delay: float
    _semaphore: asyncio.Semaphore = field(init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _next_start: float = 0.0

    def __post_init__(self) -> None:
        self._semaphore = asyncio.Semaphore(self.concurrency)

    async def __aenter__(self) -> None:
        await self._semaphore.acquire()
        try:
            async with self._lock:
                wait = self._next_start - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._next_start = time.monotonic() + self.delay
        except BaseException:
            self._semaphore.release()
            raise

    async def __aexit__(self, *_: object) -> None:
        self._semaphore.release()

    def pause(self, seconds: float) -> None:
        self._next_start = max(self._next_start, time.monotonic() + seconds)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class WebClient:
    """GETs for one scan, through per-host gates and robots.txt; built on an aiohttp session."""

    def __init__(self, session: aiohttp.ClientSession, limits: WebLimits) -> None:
        self.session = session
        self.limits = limits
        self._gates: dict[str, _HostGate] = {}
        self._robots: dict[str, Protego | None] = {}
        self.requests = 0

    def _gate(self, url: str) -> _HostGate:
        host = urlsplit(url).netloc.lower()
        if host not in self._gates:
            self._gates[host] = _HostGate(self.limits.concurrency_per_host, self.limits.delay_seconds)
        return self._gates[host]

    async def robots(self, url: str) -> Protego | None:
        """The host's robots.txt rules (None: none published). Raises `FetchFailure` when the host
        cannot say (5xx, timeout): RFC 9309 then means "crawl nothing", so the scan must stop."""
        parts = urlsplit(url)
        host = parts.netloc.lower()
        if host not in self._robots:
            robots_url = f"{parts.scheme}://{parts.netloc}/robots.txt"
            try:
                response = await self.get(robots_url, accept=lambda kind, _: True, check_robots=False)
            except FetchFailure as exc:
                if exc.temporary:
                    raise FetchFailure(
                        f"robots.txt could not be read: {exc.reason}", temporary=True
                    ) from None
                response = Response(robots_url, 404, "", None, None, None)  # unusable: no rules
            if response.status >= 500 or response.status == 429:
                raise FetchFailure(f"robots.txt answered {response.status}", temporary=True)
            rules = None
            if response.status == 200 and response.body:
                rules = Protego.parse(response.body.decode("utf-8", "replace"))
                delay = rules.crawl_delay(self.limits.user_agent)
                if delay:
                    gate = self._gate(robots_url)
                    gate.delay = max(gate.delay, min(float(delay), self.limits.max_crawl_delay_seconds))
            self._robots[host] = rules
        return self._robots[host]

    async def allowed(self, url: str) -> bool:
        rules = await self.robots(url)
        return rules is None or bool(rules.can_fetch(url, self.limits.user_agent))

    async def get(
        self,
        url: str,
        *,
        accept: Callable[[str, str], bool],
        etag: str | None = None,
        last_modified: str | None = None,
        check_robots: bool = True,
        follow: Callable[[str], bool] | None = None,
    ) -> Response:
        """Follow redirects on the same host; `accept(content_type, url)` decides if the body is read.

        `follow(target)` False stops at a redirect: the answer is then a `Response` of status `SEEN`.
        """
        chain = [url]
        current = url
        for _ in range(self.limits.max_redirects + 1):
            response, location = await self._request(current, accept, etag, last_modified)
            if location is None:
                return response
            target = normalize_url(location, current)
            if target is None:
                raise FetchFailure(f"redirect to an unusable location '{location}'", temporary=False)
            if target in chain:
                raise FetchFailure("redirect loop: " + " -> ".join([*chain, target]), temporary=False)
            if urlsplit(target).netloc.lower() != urlsplit(url).netloc.lower():
                raise FetchFailure(f"redirects to another site ({target})", temporary=False)
            if check_robots and not await self.allowed(target):
                raise FetchFailure(f"redirects to {target}, which robots.txt disallows", temporary=False)
            if follow is not None and not follow(target):
                return Response(target, SEEN, "", None, None, None)
            chain.append(target)
            current = target
        raise FetchFailure(f"more than {self.limits.max_redirects} redirects", temporary=False)

    async def _request(
        self, url: str, accept: Callable[[str, str], bool], etag: str | None, last_modified: str | None
    ) -> tuple[Response, str | None]:
        headers = {"User-Agent": self.limits.user_agent}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        timeout = aiohttp.ClientTimeout(total=self.limits.timeout_seconds)
        gate = self._gate(url)
        for attempt in range(3):
            try:
                async with gate:
                    self.requests += 1
                    async with self.session.get(
                        url, headers=headers, allow_redirects=False, timeout=timeout
                    ) as raw:
                        wait = _retry_after(raw.headers.get("Retry-After"))
                        if raw.status == 429 or (raw.status == 503 and wait is not None):
                            if wait is None or wait > self.limits.max_retry_after_seconds or attempt == 2:
                                after = f"; retry after {wait:.0f} s" if wait is not None else ""
                                raise FetchFailure(f"rate limited ({raw.status}{after})", temporary=True)
                            gate.pause(wait)  # every request to this host waits, not just this one
                            continue
                        return await self._response(raw, url, accept)
            except TimeoutError:
                raise FetchFailure(
                    f"timed out after {self.limits.timeout_seconds:g} s", temporary=True
                ) from None
            except aiohttp.ClientConnectorError as exc:
                reason = exc.os_error.strerror if exc.os_error else str(exc)
                raise FetchFailure(
                    f"cannot connect to {urlsplit(url).netloc} ({reason})", temporary=True
                ) from None
            except aiohttp.ClientError as exc:
                raise FetchFailure(f"HTTP error ({type(exc).__name__}: {exc})", temporary=True) from None
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _response(
        self, raw: aiohttp.ClientResponse, url: str, accept: Callable[[str, str], bool]
    ) -> tuple[Response, str | None]:
        content_type = (raw.content_type or "").lower()
        response = Response(
            url=url,
            status=raw.status,
            content_type=content_type,
            charset=raw.charset,
            etag=raw.headers.get("ETag"),
            last_modified=raw.headers.get("Last-Modified"),
        )
        if raw.status in REDIRECTS:
            location = raw.headers.get("Location")
            if not location:
                raise FetchFailure(f"redirect ({raw.status}) without a Location", temporary=False)
            return response, location
        if raw.status != 200 or not accept(content_type, url):
            return response, None
        limit = self.limits.max_page_bytes
        if raw.content_length is not None and raw.content_length > limit:
            raise FetchFailure(
                f"too large ({raw.content_length / 1e6:.1f} MB > {limit / 1e6:g} MB)", temporary=False
            )
        body = bytearray()
        async for block in raw.content.iter_chunked(1 << 16):
            body.extend(block)
            if len(body) > limit:
                raise FetchFailure(f"too large (more than {limit / 1e6:g} MB)", temporary=False)
        return replace(response, body=bytes(body), accepted=True), None
