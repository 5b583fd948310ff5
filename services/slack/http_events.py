"""Signed HTTP events at `POST /slack/events`: Slack's signature checked (401), then the body's shape
(400), then Bolt.

Bolt parses a body before anything else and fails with a 500 and a traceback on one that isn't a
JSON object; here bad input gets a 4xx and one log line. While the replica drains, new events get
a 503: Slack redelivers them, and the load balancer sends them to a ready replica.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.internals import parse_body
from slack_sdk.signature import SignatureVerifier

log = logging.getLogger(__name__)


class SignedEvents:
    """The aiohttp handler in front of one Bolt app."""

    def __init__(
        self, app: AsyncApp, verifier: SignatureVerifier | None, draining: Callable[[], bool]
    ) -> None:
        self.app = app
        self.verifier = verifier  # None: no SLACK_SIGNING_SECRET, every HTTP event is refused
        self.draining = draining

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.verifier is None:
            return _refusal(401, "Slack HTTP events need SLACK_SIGNING_SECRET.")
        text = _utf8(await request.read())
        if text is None or not self._signed(text, request):
            return _refusal(401, "missing or invalid Slack request signature")
        content_type = (request.headers.get("Content-Type") or "").split(";")[0] or None
        if (problem := _payload_problem(text, content_type)) is not None:
            return _refusal(400, problem)
        if self.draining() and _is_event_callback(text, content_type):
            # Not 200: Slack redelivers the event, and the load balancer sends it to a ready replica.
            return _refusal(503, "shutting down: this replica takes no new events")
        try:
            bolt_request = await to_bolt_request(request)
        except (AttributeError, TypeError, KeyError, IndexError, ValueError) as exc:
            return _refusal(400, f"malformed Slack request ({type(exc).__name__})")
        return await to_aiohttp_response(await self.app.async_dispatch(bolt_request))

    def _signed(self, body: str, request: web.Request) -> bool:
        """Slack's v0 signature, less than five minutes old; False for any malformed header."""
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if self.verifier is None or not timestamp.isdigit() or not signature.isascii():
            return False
        return self.verifier.is_valid(body, timestamp, signature)


def _refusal(status: int, message: str) -> web.Response:
    """The short JSON answer to a request that is not Slack's or not readable, logged in one line
    (never with the body: an unsigned one is anyone's, a signed one holds a user's message)."""
    log.warning("Refused a /slack/events request (%d): %s", status, message)
    return web.json_response({"error": message}, status=status)


def _utf8(body: bytes) -> str | None:
    try:
        return body.decode()
    except UnicodeDecodeError:
        return None


def _payload_problem(body: str, content_type: str | None) -> str | None:
    """What makes a signed body unreadable for Bolt, or None. Bolt reads JSON when the type says
    so or the body starts with "{", else a form whose `payload` field (interactions) is JSON."""
    what = "the body" if content_type == "application/json" or body.startswith("{") else "the payload field"
    try:
        payload = parse_body(body, content_type)
    except ValueError:
        return f"{what} is not valid JSON"
    if not isinstance(payload, dict):
        return f"{what} must be a JSON object"
    if "event" in payload and not isinstance(payload["event"], dict):
        return "its event must be a JSON object"
    return None


def _is_event_callback(body: str, content_type: str | None) -> bool:
    """An Events API delivery (which Slack redelivers when refused), not a command or a click."""
    payload = parse_body(body, content_type)
    return isinstance(payload, dict) and payload.get("type") == "event_callback"
