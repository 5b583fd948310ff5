"""A real documentation site on 127.0.0.1 for the `sources` bench: Debian's HTML manuals
(python-flask-doc, python-werkzeug-doc …) served by aiohttp's static handler, which answers
conditional requests (ETag / If-None-Match, Last-Modified / If-Modified-Since) as a web server does.

Every response is counted (requests, statuses, body bytes, conditional requests) so the bench
can say what a crawler cost the server. `/_bench/counts` and `/_bench/reset` (not counted) let a
crawler in another process (the peers, in their own virtualenvs) read and reset the counters.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

MANUALS = {
    "flask": Path("/usr/share/doc/python-flask-doc/html"),
    "werkzeug": Path("/usr/share/doc/python-werkzeug-doc/html"),
    "click": Path("/usr/share/doc/python-click-doc/html"),
    "jinja": Path("/usr/share/doc/python-jinja2-doc/html"),
}
_CONTROL = "/_bench/"


@dataclass
class ServedCounts:
    """What the server answered since the last reset."""

    requests: int = 0
    conditional: int = 0  # requests carrying If-None-Match or If-Modified-Since
    bodies: int = 0  # 200 answers with a body
    body_bytes: int = 0
    statuses: Counter[int] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "conditional": self.conditional,
            "bodies": self.bodies,
            "body_bytes": self.body_bytes,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }


def manual_dirs(names: list[str]) -> dict[str, Path]:
    """The installed manuals, or an error that says which Debian package to install."""
    found: dict[str, Path] = {}
    for name in names:
        folder = MANUALS[name]
        if not (folder / "index.html").is_file():
            package = folder.parent.name
            raise SystemExit(f"{folder}/index.html is missing: apt-get install -y {package}")
        found[name] = folder
    return found


def html_pages(folder: Path) -> list[str]:
    """The site's HTML pages (relative paths), without Sphinx's asset and source folders."""
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*.html")
        if not any(part.startswith("_") for part in p.relative_to(folder).parts[:-1])
    )


class DocSite:
    """`async with DocSite(manuals) as site:` serves each manual under /<name>/ on a free port."""

    def __init__(self, manuals: dict[str, Path]) -> None:
        self.manuals = manuals
        self.counts = ServedCounts()
        self._runner: web.AppRunner | None = None
        self.base = ""

    def start_url(self, name: str) -> str:
        return f"{self.base}/{name}/index.html"

    def folder_url(self, name: str) -> str:
        return f"{self.base}/{name}/"

    @property
    def control_url(self) -> str:
        return self.base + _CONTROL

    def reset(self) -> ServedCounts:
        """The counts so far, and start counting afresh."""
        counts, self.counts = self.counts, ServedCounts()
        return counts

    async def _count(self, request: web.BaseRequest, response: web.StreamResponse) -> None:
        """on_response_prepare: the status and Content-Length are final here (a 304 has no body)."""
        if request.path.startswith(_CONTROL):
            return
        counts = self.counts
        counts.requests += 1
        counts.statuses[response.status] += 1
        if "If-None-Match" in request.headers or "If-Modified-Since" in request.headers:
            counts.conditional += 1
        if response.status == 200 and request.method == "GET":
            counts.bodies += 1
            counts.body_bytes += response.content_length or 0

    async def _counts(self, request: web.Request) -> web.Response:
        return web.json_response(self.counts.to_dict())

    async def _reset(self, request: web.Request) -> web.Response:
        return web.json_response(self.reset().to_dict())

    async def __aenter__(self) -> DocSite:
        app = web.Application()
        app.on_response_prepare.append(self._count)
        app.router.add_get(_CONTROL + "counts", self._counts)
        app.router.add_post(_CONTROL + "reset", self._reset)
        for name, folder in self.manuals.items():
            # Debian links the manuals' JavaScript into /usr/share/javascript: follow those links.
            app.router.add_static(f"/{name}/", folder, follow_symlinks=True)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
