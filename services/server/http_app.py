"""The `serve` HTTP server: health, Prometheus metrics, the ChatKit protocol, and Slack events.

POST /chatkit is off unless CHATKIT_API_TOKEN is set. The token's holder is a trusted backend
(a web app that has signed its users in): it names the user in `X-User-Id`, and each user sees
only the threads they made there. A request it cannot serve gets a 4xx with a short JSON error
and one log line, never a 500 or a stream that breaks off.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, cast

from aiohttp import web
from chatkit.server import NonStreamingResult
from chatkit.store import NotFoundError
from chatkit.types import (
    ChatKitReq,
    ItemsFeedbackReq,
    ItemsListReq,
    StreamingReq,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadsDeleteReq,
    ThreadsGetByIdReq,
    ThreadsListReq,
    ThreadsRetryAfterItemReq,
    ThreadStreamEvent,
    ThreadsUpdateReq,
    is_streaming_req,
)
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import SecretStr, ValidationError

from services.chat import chatkit_shim
from services.chat.metrics import REGISTRY, metered_thread_events
from services.chat.store import RequestContext
from services.chatkit_service import DocsChatKitServer, parse_request
from services.insights.recording import recorded_thread_events

if TYPE_CHECKING:
    from services.runtime import ComponentHealth

log = logging.getLogger(__name__)

HealthCheck = Callable[[], Awaitable[Mapping[str, "ComponentHealth"]]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# What a ChatKit client may ask of this server: it has no attachments, widgets, client tools or audio.
SUPPORTED_REQUESTS = (
    ThreadsCreateReq,
    ThreadsAddUserMessageReq,
    ThreadsRetryAfterItemReq,
    ThreadsGetByIdReq,
    ThreadsListReq,
    ThreadsUpdateReq,
    ThreadsDeleteReq,
    ItemsListReq,
    ItemsFeedbackReq,
)
CHATKIT_OFF = (
    "POST /chatkit is off: set CHATKIT_API_TOKEN to enable it; clients then send "
    "'Authorization: Bearer <token>' and name their user in X-User-Id."
)
MAX_USER_ID = 256


def build_http_app(
    *,
    chatkit_server: DocsChatKitServer,
    health_checks: HealthCheck,
    chatkit_token: SecretStr | None = None,
    extra_routes: dict[str, Handler] | None = None,
    draining: Callable[[], bool] = lambda: False,
) -> web.Application:
    """An aiohttp app with `/healthz`, `/metrics`, `POST /chatkit` and any extra POST routes.

    `draining()` is true once the server shuts down: `/healthz` then says "draining" (503), so a
    load balancer stops sending work before the process goes away.
    """

    async def healthz(_: web.Request) -> web.Response:
        """503 while any part is down or the server drains; `components` says which, in what state, why."""
        components = await health_checks()
        healthy = all(component.healthy for component in components.values())
        body = {
            "status": "draining" if draining() else "ok" if healthy else "degraded",
            "checks": {name: component.healthy for name, component in components.items()},
            "components": {name: component.as_json() for name, component in components.items()},
        }
        return web.json_response(body, status=200 if healthy else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/chatkit", ChatKitEndpoint(chatkit_server, chatkit_token).handle)
    for path, handler in (extra_routes or {}).items():
        app.router.add_post(path, handler)
    return app


class _Refused(Exception):
    """A /chatkit request answered with `status` and `message` (and one log line)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ChatKitEndpoint:
    """POST /chatkit: the ChatKit protocol for the token's holder, one user at a time."""

    def __init__(self, server: DocsChatKitServer, token: SecretStr | None) -> None:
        self.server = server
        self.token = token

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            context = self._authorize(request)
            chatkit_request = await self._read(request)
            if is_streaming_req(chatkit_request):
                return await self._stream(request, chatkit_request, context)
            try:
                result = await chatkit_shim.route(self.server, chatkit_request, context)
            except NotFoundError as exc:  # missing, or someone else's: the same answer
                raise _Refused(404, str(exc)) from None
        except _Refused as refused:
            return _refusal(refused.status, refused.message)
        return web.Response(body=cast(NonStreamingResult, result).json, content_type="application/json")

    def _authorize(self, request: web.Request) -> RequestContext:
        """The asker's context, once the endpoint is on, the token right and the user named."""
        if self.token is None:
            raise _Refused(403, CHATKIT_OFF)
        if not _bearer_matches(request.headers.get("Authorization", ""), self.token):
            raise _Refused(401, "missing or wrong bearer token (Authorization: Bearer <CHATKIT_API_TOKEN>)")
        user_id = request.headers.get("X-User-Id", "").strip()
        if not user_id or len(user_id) > MAX_USER_ID or not user_id.isprintable():
            raise _Refused(400, f"the X-User-Id header must name the user (1 to {MAX_USER_ID} characters)")
        return RequestContext(user_id=user_id)

    async def _read(self, request: web.Request) -> ChatKitReq:
        """The ChatKit request in the body, if it is one this server serves."""
        if request.content_type != "application/json":
            raise _Refused(415, f"the body must be application/json, not {request.content_type}")
        try:
            chatkit_request = parse_request(await request.read())
        except ValidationError as exc:
            raise _Refused(400, f"invalid ChatKit request: {_first_error(exc)}") from None
        if not isinstance(chatkit_request, SUPPORTED_REQUESTS):
            raise _Refused(400, f"{chatkit_request.type} is not supported by this server")
        if isinstance(chatkit_request, ThreadsCreateReq | ThreadsAddUserMessageReq):
            if chatkit_request.params.input.attachments:
                raise _Refused(400, "attachments are not supported by this server")
        return chatkit_request

    async def _stream(
        self, request: web.Request, chatkit_request: StreamingReq, context: RequestContext
    ) -> web.StreamResponse:
        """Server-sent events, counted in /metrics as the "chatkit" adapter's ask and recorded (with
        their latency and time to first text) for the insights, as the adapters' turns are.

        The first event is awaited before the 200 goes out: a request that fails before it starts
        (an unknown thread, an item that can't be retried) is refused instead.
        """
        started = time.perf_counter()
        events = self.server.stream(chatkit_request, context)
        try:
            first = await anext(events, None)
        except NotFoundError as exc:
            raise _Refused(404, str(exc)) from None
        except ValueError as exc:  # chatkit's word for a request that makes no sense for the thread
            raise _Refused(400, f"invalid ChatKit request: {exc}") from None
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        if first is not None:
            database, user = self.server.database, context.user_id
            turn = recorded_thread_events(_resumed(first, events), database, user_id=user, started=started)
            async for event in metered_thread_events(turn, "chatkit", started):
                await response.write(encode_sse(event))
        await response.write_eof()
        return response


def encode_sse(event: ThreadStreamEvent) -> bytes:
    """One event as chatkit's own `process` sends it (`ChatKitServer._serialize`, as SSE)."""
    data = event.model_dump_json(by_alias=True, exclude_none=True, context={"exclude_metadata": True})
    return b"data: " + data.encode() + b"\n\n"


async def _resumed(
    first: ThreadStreamEvent, rest: AsyncIterator[ThreadStreamEvent]
) -> AsyncIterator[ThreadStreamEvent]:
    """The stream again from its start, once its first event was awaited."""
    yield first
    async for event in rest:
        yield event


def _refusal(status: int, message: str) -> web.Response:
    """The short JSON answer to a request that can't be served, logged in one line."""
    log.log(
        logging.WARNING if status in (401, 403) else logging.INFO,
        "POST /chatkit refused (%d): %s",
        status,
        message,
    )
    headers = {"WWW-Authenticate": 'Bearer realm="chatkit"'} if status == 401 else None
    return web.json_response({"error": message}, status=status, headers=headers)


def _first_error(exc: ValidationError) -> str:
    """pydantic's first complaint, without the input it quotes (a union's errors run to pages)."""
    error = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where + ': ' if where else ''}{error['msg']}{more}"[:200]


def _bearer_matches(authorization: str, token: SecretStr) -> bool:
    """`Authorization: Bearer <token>` (the scheme is case-insensitive, RFC 7235), compared in
    constant time: digests of equal length, so the timing says nothing of the token, not even
    its length."""
    scheme, _, given = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    expected = hashlib.sha256(token.get_secret_value().encode()).digest()
    return hmac.compare_digest(hashlib.sha256(given.strip().encode()).digest(), expected)


async def start_http_server(
    app: web.Application, host: str, port: int, *, shutdown_timeout: float = 60.0
) -> web.AppRunner:
    """Start serving `app`; returns the runner to clean up. Port 0 picks a free port.

    On cleanup, requests still being answered (a POST /chatkit stream) get `shutdown_timeout`
    seconds to finish before they are cancelled.
    """
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
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
