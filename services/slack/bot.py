"""The Slack adapter: Bolt wiring that turns Slack events into `AskService.ask` calls.

Both transports share one `AsyncApp`: signed HTTP events at `/slack/events` (scale-out behind a
load balancer) and Socket Mode (installs behind a firewall). The adapter holds no retrieval or
agent logic; formatting is in `blocks`, the reply lifecycle in `reply`, and `/reindex` in `reindex`
(the Slack side of the shared flow in `services.indexing.reindex_flow`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.request.internals import parse_body
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from configs.config import ConfigError, Settings
from services.chat.contract import AskService
from services.chat.replies import record_vote
from services.indexing.contract import Reindexer
from services.slack.blocks import FEEDBACK_DOWN, FEEDBACK_UP, escape_mrkdwn
from services.slack.reindex import ReindexCommand
from services.slack.reply import ThreadReply

log = logging.getLogger(__name__)

ClaimEvent = Callable[[str, int], Awaitable[bool]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Message subtypes that still carry a user's question; edits, deletions, joins... are ignored.
ANSWERED_SUBTYPES = {None, "file_share", "thread_broadcast"}
EMPTY_QUESTION = "Ask me a question about the docs, for example: _how do I install it?_"


def conversation_key(team_id: str, channel: str, thread_ts: str) -> str:
    """One Slack thread is one conversation in the chatkit service."""
    return f"slack:{team_id}:{channel}:{thread_ts}"


class SlackBot:
    """Answers mentions, DMs and follow-ups in threads it answered in; runs `/reindex`."""

    def __init__(
        self,
        settings: Settings,
        chat: AskService,
        reindexer: Reindexer,
        claim_event: ClaimEvent,
        *,
        reindex_progress_interval: float = 5.0,
    ) -> None:
        if settings.slack_bot_token is None:
            raise ConfigError("SLACK_BOT_TOKEN is not set: the Slack adapter needs the bot token (xoxb-...).")
        self.settings = settings
        self.chat = chat
        self.claim_event = claim_event
        self.client = AsyncWebClient(
            token=settings.slack_bot_token.get_secret_value(),
            base_url=settings.slack_api_url,
            retry_handlers=[
                AsyncConnectionErrorRetryHandler(),
                AsyncRateLimitErrorRetryHandler(max_retry_count=3),
            ],
        )
        secret = settings.slack_signing_secret
        # Without a signing secret (Socket Mode only) HTTP events are refused.
        self._verifier = SignatureVerifier(secret.get_secret_value()) if secret is not None else None
        self.app = AsyncApp(
            client=self.client,
            signing_secret="",
            # `http_handler` verifies every HTTP request before Bolt sees it; Bolt's own check would
            # log a rejected request's body at INFO, and fails with a 500 on a non-numeric timestamp.
            # Socket Mode needs no signature.
            request_verification_enabled=False,
            name="docs-bot",
            logger=logging.getLogger("slack_bolt"),
        )
        self.reindex = ReindexCommand(settings, reindexer, progress_interval=reindex_progress_interval)
        self.first_text_seconds: list[float] = []  # event received -> first answer text in Slack (recent)
        self._socket: AsyncSocketModeHandler | None = None
        self._closed = asyncio.Event()
        self._register()

    def _register(self) -> None:
        self.app.event("app_mention")(self._on_mention)
        self.app.event("message")(self._on_message)
        self.app.command(self.settings.slack_reindex_command)(self.reindex.handle)
        self.app.action(FEEDBACK_UP)(self._on_feedback)
        self.app.action(FEEDBACK_DOWN)(self._on_feedback)
        self.app.error(self._on_error)

    # --- Transports ------------------------------------------------------------------------
    def http_handler(self) -> Handler:
        """The aiohttp handler for `POST /slack/events`: Slack's signature checked (401), then the
        body's shape (400), then Bolt. Bolt parses a body before anything else and fails with a 500
        and a traceback on one that isn't a JSON object; here bad input gets a 4xx and one line."""

        async def handle(request: web.Request) -> web.StreamResponse:
            if self._verifier is None:
                return _refusal(401, "Slack HTTP events need SLACK_SIGNING_SECRET.")
            text = _utf8(await request.read())
            if text is None or not self._signed(text, request):
                return _refusal(401, "missing or invalid Slack request signature")
            content_type = (request.headers.get("Content-Type") or "").split(";")[0] or None
            if (problem := _payload_problem(text, content_type)) is not None:
                return _refusal(400, problem)
            try:
                bolt_request = await to_bolt_request(request)
            except (AttributeError, TypeError, KeyError, IndexError, ValueError) as exc:
                return _refusal(400, f"malformed Slack request ({type(exc).__name__})")
            return await to_aiohttp_response(await self.app.async_dispatch(bolt_request))

        return handle

    def _signed(self, body: str, request: web.Request) -> bool:
        """Slack's v0 signature, less than five minutes old; False for any malformed header."""
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if self._verifier is None or not timestamp.isdigit() or not signature.isascii():
            return False
        return self._verifier.is_valid(body, timestamp, signature)

    async def start_socket_mode(self) -> None:
        """Connect through Socket Mode (SLACK_APP_TOKEN) and stay connected until `close()`."""
        if self.settings.slack_app_token is None:
            raise ConfigError("SLACK_APP_TOKEN is not set: Socket Mode needs an app-level token (xapp-...).")
        self._socket = AsyncSocketModeHandler(
            self.app, self.settings.slack_app_token.get_secret_value(), web_client=self.client
        )
        await self._socket.connect_async()
        log.info("Slack Socket Mode connected")
        await self._closed.wait()

    async def close(self) -> None:
        """Disconnect Socket Mode (if started); HTTP needs no cleanup."""
        self._closed.set()
        if self._socket is not None:
            socket, self._socket = self._socket, None
            await socket.close_async()

    # --- Events ----------------------------------------------------------------------------
    async def _on_mention(
        self, event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        """A mention in a channel: answer in the mention's thread."""
        if not self._is_question(event, context):
            return
        thread_ts = event.get("thread_ts") or event["ts"]
        await self._answer(event, body, context, thread_ts)

    async def _on_message(
        self, event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        """DMs always; channel messages only as follow-ups in a thread the bot answered in."""
        if not self._is_question(event, context):
            return
        if event.get("channel_type") == "im":
            await self._answer(event, body, context, event.get("thread_ts") or event["ts"])
            return
        thread_ts = event.get("thread_ts")
        if thread_ts is None or _mentions(event, context.bot_user_id):
            return  # not in a thread, or the channel copy of an app_mention (answered there)
        key = conversation_key(_team(body, context), event["channel"], thread_ts)
        try:
            followup = await self.chat.has_conversation(key)
        except Exception:
            log.exception("Could not look up conversation %s", key)
            return  # not knowing whether the thread is ours, staying quiet beats answering every thread
        if followup:
            await self._answer(event, body, context, thread_ts)

    def _is_question(self, event: dict[str, Any], context: AsyncBoltContext) -> bool:
        """Filters what must not be answered: own messages, other bots (unless enabled), edits."""
        subtype = event.get("subtype")
        from_bot = event.get("bot_id") is not None or subtype == "bot_message"
        if event.get("user") and event.get("user") == context.bot_user_id:
            return False
        if from_bot and (event.get("bot_id") == context.bot_id or not self.settings.slack_answer_bots):
            return False
        return subtype in ANSWERED_SUBTYPES or (subtype == "bot_message" and self.settings.slack_answer_bots)

    async def _answer(
        self, event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext, thread_ts: str
    ) -> None:
        received = time.monotonic()
        channel = event["channel"]
        team = _team(body, context)
        reply = ThreadReply(
            self.client,
            channel=channel,
            thread_ts=thread_ts,
            message_ts=event["ts"],
            team_id=team,
            user_id=event.get("user"),
            idle_timeout=self.settings.llm_timeout_seconds + 30,
        )
        event_id = body.get("event_id") or f"{channel}:{event['ts']}"
        event_key = f"slack:event:{event_id}"
        try:
            if not await self.claim_event(event_key, self.settings.slack_dedup_ttl_seconds):
                log.info("Skipping %s: already answered (a Slack redelivery)", event_key)
                return
        except Exception as exc:
            log.exception("Could not record event %s", event_key)
            await reply.fail(f"the bot's database is unavailable ({type(exc).__name__}).")
            return
        question = _strip_mention(str(event.get("text") or ""), context.bot_user_id)
        if not question:
            await reply.fail(EMPTY_QUESTION)
            return
        await reply.show_working()
        key = conversation_key(team, channel, thread_ts)
        await reply.render(self.chat.ask(key, question, user_id=event.get("user")))
        if reply.first_text_at is not None:
            latency = reply.first_text_at - received
            self.first_text_seconds = [*self.first_text_seconds[-99:], latency]
            log.info("Slack answer in %s/%s: first text after %.3f s", channel, thread_ts, latency)

    # --- Feedback --------------------------------------------------------------------------
    async def _on_feedback(
        self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        """Store a 👍/👎 with its answer and thank the user (only they see it)."""
        await ack()
        positive = action.get("action_id") == FEEDBACK_UP
        user_id = (body.get("user") or {}).get("id")
        text = await record_vote(
            self.chat, str(action.get("value") or ""), positive=positive, user_id=user_id
        )
        await respond(text=escape_mrkdwn(text), response_type="ephemeral", replace_original=False)

    async def _on_error(self, error: Exception, body: dict[str, Any]) -> None:
        log.error("Unhandled error in a Slack listener (%s)", body.get("type"), exc_info=error)


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


def _team(body: dict[str, Any], context: AsyncBoltContext) -> str:
    return str(body.get("team_id") or context.team_id or "")


def _mentions(event: dict[str, Any], bot_user_id: str | None) -> bool:
    return bot_user_id is not None and f"<@{bot_user_id}" in str(event.get("text") or "")


def _strip_mention(text: str, bot_user_id: str | None) -> str:
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(\|[^>]*)?>", " ", text)
    return text.strip()
