"""The `serve` HTTP server: health, Prometheus metrics, the ChatKit protocol, and Slack events."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from chatkit.server import ChatKitServer, StreamingResult
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import SecretStr

from services.chat.metrics import REGISTRY
from services.chat.store import RequestContext

log = logging.getLogger(__name__)

HealthCheck = Callable[[], Awaitable[dict[str, bool]]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_http_app(
    *,
    chatkit_server: ChatKitServer[Any],
    health_checks: HealthCheck,
    chatkit_token: SecretStr | None = None,
    extra_routes: dict[str, Handler] | None = None,
) -> web.Application:
    """An aiohttp app with `/healthz`, `/metrics`, `POST /chatkit` and any extra POST routes."""

    async def healthz(_: web.Request) -> web.Response:
        checks = await health_checks()
        healthy = all(checks.values())
        body = {"status": "ok" if healthy else "degraded", "checks": checks}
        return web.json_response(body, status=200 if healthy else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def chatkit(request: web.Request) -> web.StreamResponse:
        if chatkit_token is not None and not _bearer_matches(request, chatkit_token):
            return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        payload = await request.read()
        try:
            result = await chatkit_server.process(
                payload, RequestContext(user_id=request.headers.get("X-User-Id"))
            )
        except ValueError as exc:  # pydantic's ValidationError is a ValueError: a malformed request
            return web.json_response({"error": f"invalid ChatKit request: {exc}"}, status=400)
        if isinstance(result, StreamingResult):
            response = web.StreamResponse(
                headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
            )
            await response.prepare(request)
            async for chunk in result:
                await response.write(chunk)
            await response.write_eof()
            return response
        return web.Response(body=result.json, content_type="application/json")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/chatkit", chatkit)
    for path, handler in (extra_routes or {}).items():
        app.router.add_post(path, handler)
    return app


def _bearer_matches(request: web.Request, token: SecretStr) -> bool:
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return hmac.compare_digest(given.encode(), token.get_secret_value().encode())


async def start_http_server(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Start serving `app`; returns the runner to clean up. Port 0 picks a free port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("HTTP server listening on http://%s:%s", host, bound_port(runner) or port)
    return runner


def bound_port(runner: web.AppRunner) -> int | None:
    """The port the server actually listens on (useful with port 0)."""
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
    return None
