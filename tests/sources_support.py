"""Real servers for the source tests: an aiohttp website that counts what it serves, and Git
repositories made with `git` (a working copy pushing to a bare repository)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from data.weaviate_server import free_port


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    done = subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True)
    return done.stdout.strip()


class Repo:
    """A working copy that pushes to a bare repository, the source under test."""

    def __init__(self, root: Path) -> None:
        self.bare = root / "remote.git"
        self.work = root / "work"
        git(root, "init", "--bare", "--quiet", "--initial-branch=main", str(self.bare))
        git(root, "clone", "--quiet", str(self.bare), str(self.work))
        git(self.work, "checkout", "--quiet", "-b", "main")

    def write(self, path: str, text: str | bytes) -> None:
        file = self.work / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(text.encode() if isinstance(text, str) else text)

    def commit(self, message: str) -> str:
        git(self.work, "add", "--all")
        git(self.work, "commit", "--quiet", "-m", message)
        git(self.work, "push", "--quiet", "origin", "main", "--tags")
        return git(self.work, "rev-parse", "HEAD")


def html(title: str, body: str, links: list[str] = [], head: str = "") -> bytes:  # noqa: B006
    anchors = "".join(f'<a href="{link}">{link}</a> ' for link in links)
    return (
        f"<html><head><title>{title}</title>{head}</head><body><main><h1>{title}</h1>"
        f"<p>{body}</p><p>{anchors}</p></main></body></html>"
    ).encode()


@dataclass
class Page:
    body: bytes
    content_type: str = "text/html"
    status: int = 200
    redirect: str | None = None
    delay: float = 0.0
    etag: bool = True
    last_modified: str | None = None
    chunked: bool = False
    retry_after: list[str] = field(default_factory=list)  # answered 429 with these, in turn


class Site:
    """Pages by path (with query), dynamic handlers by path prefix, and counters of what was served."""

    def __init__(self) -> None:
        self.pages: dict[str, Page] = {}
        self.dynamic: dict[str, Callable[[web.Request], Page]] = {}
        self.hits: Counter[str] = Counter()
        self.bodies: Counter[str] = Counter()  # 200 answers with a body
        self.in_flight = self.max_in_flight = 0
        self.starts: list[float] = []
        self.url = ""

    def page_for(self, request: web.Request) -> Page | None:
        if request.path_qs in self.pages:
            return self.pages[request.path_qs]
        for prefix, make in self.dynamic.items():
            if request.path.startswith(prefix):
                return make(request)
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits[request.path_qs] += 1
        self.starts.append(time.monotonic())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        page = self.page_for(request)
        if page is None:
            return web.Response(status=404, text="not found")
        if page.delay:
            await asyncio.sleep(page.delay)
        if page.retry_after:
            return web.Response(status=429, headers={"Retry-After": page.retry_after.pop(0)})
        if page.redirect:
            return web.Response(status=301, headers={"Location": page.redirect})
        if page.status != 200:
            return web.Response(status=page.status, text="error")
        headers = {}
        if page.etag:
            headers["ETag"] = '"' + hashlib.sha1(page.body).hexdigest()[:16] + '"'
            if request.headers.get("If-None-Match") == headers["ETag"]:
                return web.Response(status=304, headers=headers)
        if page.last_modified:
            headers["Last-Modified"] = page.last_modified
            if request.headers.get("If-Modified-Since") == page.last_modified:
                return web.Response(status=304, headers=headers)
        self.bodies[request.path_qs] += 1
        if page.chunked:
            response = web.StreamResponse(headers={**headers, "Content-Type": page.content_type})
            response.enable_chunked_encoding()
            await response.prepare(request)
            for start in range(0, len(page.body), 65536):
                await response.write(page.body[start : start + 65536])
            await response.write_eof()
            return response
        return web.Response(body=page.body, headers={**headers, "Content-Type": page.content_type})


@contextlib.asynccontextmanager
async def serve_site() -> AsyncIterator[Site]:
    """A `Site` listening on a free port of 127.0.0.1 until the block ends."""
    site = Site()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", site.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    site.url = f"http://127.0.0.1:{port}"
    try:
        yield site
    finally:
        await runner.cleanup()
