"""The Slack adapter: Bolt wiring that turns Slack events into `AskService.ask` calls.

Both transports share one `AsyncApp`: signed HTTP events at `/slack/events` (scale-out behind a
load balancer) and Socket Mode (installs behind a firewall). The adapter holds no retrieval or
agent logic; formatting is in `blocks`, the reply lifecycle in `reply` (`ephemeral` for answers only
the asker sees), `/reindex` in `reindex` (the Slack side of the shared flow in
`services.indexing.reindex_flow`), the channel's spaces in `spaces` and `spaces_command`
(`/docs-bot`), and "Ask a human" in `human`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from configs.config import ConfigError, Settings
from services.chat.contract import AskService
from services.chat.replies import describe_error, record_vote
from services.indexing.contract import Reindexer
from services.slack.blocks import (
    ASK_HUMAN,
    FEEDBACK_DOWN,
    FEEDBACK_UP,
    answer_id_of,
    escape_mrkdwn,
    offer_human_blocks,
    parse_human_request,
)
from services.slack.ephemeral import reply_for
from services.slack.http_events import SignedEvents
from services.slack.human import HumanHandoff
from services.slack.reindex import ReindexCommand
from services.slack.spaces import (
    AskGate,
    SlackGroups,
    conversation_key,
    event_place,
    tell,
)
from services.slack.spaces_command import SpacesCommand
from services.spaces.directory import Spaces
from services.spaces.policy import Policy
from services.spaces.questions import looks_like_question

log = logging.getLogger(__name__)

ClaimEvent = Callable[[str, int], Awaitable[bool]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Message subtypes that still carry a user's question; edits, deletions, joins... are ignored.
ANSWERED_SUBTYPES = {None, "file_share", "thread_broadcast"}
EMPTY_QUESTION = "Ask me a question about the docs, for example: _how do I install it?_"
CUT_SHORT = "the bot restarted before this answer was finished. Please ask again."
CUT_SHORT_POST_SECONDS = 5.0  # for the answers cut short to say so, after the grace period
THREAD_ONLY_HINT = "In this channel I answer inside threads: mention me in the thread of a message."


class SlackBot:
    """Answers mentions, DMs, follow-ups in threads it answered in and, in `auto` channels, every
    question; runs `/reindex` and `/docs-bot`; hands questions to people ("Ask a human")."""

    def __init__(
        self,
        settings: Settings,
        chat: AskService,
        reindexer: Reindexer,
        claim_event: ClaimEvent,
        spaces: Spaces,
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
        self.spaces = spaces
        self.groups = SlackGroups(self.client)
        self.gate = AskGate(spaces, self.groups)
        self.human = HumanHandoff(spaces, self.groups, self.client)
        interval = reindex_progress_interval
        self.reindex = ReindexCommand(settings, reindexer, spaces, progress_interval=interval)
        self.spaces_command = SpacesCommand(settings, spaces, self.reindex.is_admin)
        self.first_text_seconds: list[float] = []  # event received -> first answer text in Slack (recent)
        self._socket: AsyncSocketModeHandler | None = None
        self._closed = asyncio.Event()
        self._listening: set[asyncio.Task[Any]] = set()  # listeners running (Bolt runs each in a task)
        self._draining = False
        self._register()

    def _register(self) -> None:
        self.app.event("app_mention")(self._on_mention)
        self.app.event("message")(self._on_message)
        self.app.command(self.settings.slack_reindex_command)(self.reindex.handle)
        self.app.command(self.settings.slack_spaces_command)(self.spaces_command.handle)
        self.app.action(FEEDBACK_UP)(self._on_feedback)
        self.app.action(FEEDBACK_DOWN)(self._on_feedback)
        self.app.action(ASK_HUMAN)(self.human.on_click)
        self.app.error(self._on_error)

    # --- Transports ------------------------------------------------------------------------
    def http_handler(self) -> Handler:
        """The aiohttp handler for `POST /slack/events` (see `http_events`)."""
        return SignedEvents(self.app, self._verifier, lambda: self._draining).handle

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

    async def drain(self, grace_seconds: float) -> None:
        """Refuse new events; give the answers in flight `grace_seconds` to finish, then cut them
        short (each says so in its thread). Bolt acknowledged their events already: Slack will not
        redeliver them, so the thread is the only place left to tell the asker."""
        self._draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_seconds
        while self._listening and (left := deadline - loop.time()) > 0:
            log.info("Draining: %d Slack answer(s) in flight, %.0f s left", len(self._listening), left)
            await asyncio.wait(set(self._listening), timeout=left)
        if late := set(self._listening):
            log.warning("Draining: cutting %d Slack answer(s) short", len(late))
            for task in late:
                task.cancel()
            await asyncio.wait(late, timeout=CUT_SHORT_POST_SECONDS)

    @contextmanager
    def _listener(self) -> Iterator[None]:
        """Marks the current task as a listener at work, for `drain` to wait for."""
        task = asyncio.current_task()
        if task is None:
            yield
            return
        self._listening.add(task)
        try:
            yield
        finally:
            self._listening.discard(task)

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
        """A mention in a channel: answer in the mention's thread (`thread-only`: a hint at the top)."""
        if not self._is_question(event, context):
            return
        with self._listener():
            await self._answer(event, body, context, event.get("thread_ts") or event["ts"])

    async def _on_message(
        self, event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        """DMs always; channel messages as follow-ups in a thread the bot answered in, and top-level
        questions in `auto` channels."""
        if not self._is_question(event, context):
            return
        with self._listener():
            await self._on_question(event, body, context)

    async def _on_question(
        self, event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        if event.get("channel_type") == "im":
            await self._answer(event, body, context, event.get("thread_ts") or event["ts"])
            return
        thread_ts = event.get("thread_ts")
        if _mentions(event, context.bot_user_id):
            return  # the channel copy of an app_mention (answered there)
        if thread_ts is None:
            await self._on_top_level(event, body, context)
            return
        key = conversation_key(_team(body, context), event["channel"], thread_ts)
        try:
            followup = await self.chat.has_conversation(key)
        except Exception:
            log.exception("Could not look up conversation %s", key)
            return  # not knowing whether the thread is ours, staying quiet beats answering every thread
        if followup:
            await self._answer(event, body, context, thread_ts)

    async def _on_top_level(
        self, event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        """`auto` mode: a top-level message that looks like a question is answered in its thread.
        The wording is checked first: most channel messages are not questions, and need no policy."""
        if not looks_like_question(str(event.get("text") or "")):
            return
        try:
            policy = await self.spaces.policy(event_place(_team(body, context), event))
        except Exception:
            log.exception("Could not resolve the spaces of %s", event.get("channel"))
            return  # not knowing whether the channel is `auto`, staying quiet beats answering chatter
        if policy.mode == "auto":
            await self._answer(event, body, context, event["ts"], policy)

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
        self,
        event: dict[str, Any],
        body: dict[str, Any],
        context: AsyncBoltContext,
        thread_ts: str,
        policy: Policy | None = None,
    ) -> None:
        received = time.monotonic()
        channel = event["channel"]
        team = _team(body, context)
        reply = reply_for(self.client, self.settings, event, team, thread_ts)  # the thread, for now
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
        key = conversation_key(team, channel, thread_ts)
        try:
            policy = policy or await self.spaces.policy(event_place(team, event))
            if "thread_ts" in event and await self.human.take_expert_reply(policy, key, event):
                return  # an expert answered a person's question: kept for the docs, not a question
            refusal = await self._refusal(policy, event)
        except Exception as exc:
            log.exception("Could not check the policy of %s", channel)
            await reply.fail(f"I could not check this channel's settings ({describe_error(exc)}).")
            return
        if refusal is not None:
            await tell(self.client, event, refusal)
            return
        reply = reply_for(self.client, self.settings, event, team, thread_ts, policy, question)
        try:
            await reply.show_working()
            events = self.chat.ask(
                key, question, user_id=event.get("user"), sources=policy.sources, space=policy.spaces[0]
            )
            await reply.render(events)
        except asyncio.CancelledError:  # `drain` ran out of grace: the event is ours, say it is cut short
            await reply.fail(CUT_SHORT)
            raise
        if reply.first_text_at is not None:
            latency = reply.first_text_at - received
            self.first_text_seconds = [*self.first_text_seconds[-99:], latency]
            log.info("Slack answer in %s/%s: first text after %.3f s", channel, thread_ts, latency)

    async def _refusal(self, policy: Policy, event: dict[str, Any]) -> str | None:
        """Why this question gets no answer (only the asker is told), or None: a top-level mention
        in a `thread-only` channel, a user the place does not allow, the rate limit."""
        if policy.mode == "thread-only" and not policy.place.is_dm and "thread_ts" not in event:
            return THREAD_ONLY_HINT
        return await self.gate.refusal(policy, event.get("user"))

    # --- Feedback --------------------------------------------------------------------------
    async def _on_feedback(
        self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        """Store a 👍/👎 with its answer and thank the user (only they see it); after a 👎 where the
        place has experts, offer "Ask a human"."""
        await ack()
        positive = action.get("action_id") == FEEDBACK_UP
        user_id = (body.get("user") or {}).get("id")
        value = str(action.get("value") or "")
        text = await record_vote(self.chat, answer_id_of(value), positive=positive, user_id=user_id)
        # 👎 in a place with experts carries the question: offer a person's answer instead
        blocks = None if positive or parse_human_request(value) is None else offer_human_blocks(text, value)
        await respond(
            text=escape_mrkdwn(text), blocks=blocks, response_type="ephemeral", replace_original=False
        )

    async def _on_error(self, error: Exception, body: dict[str, Any]) -> None:
        log.error("Unhandled error in a Slack listener (%s)", body.get("type"), exc_info=error)


def _team(body: dict[str, Any], context: AsyncBoltContext) -> str:
    return str(body.get("team_id") or context.team_id or "")


def _mentions(event: dict[str, Any], bot_user_id: str | None) -> bool:
    return bot_user_id is not None and f"<@{bot_user_id}" in str(event.get("text") or "")


def _strip_mention(text: str, bot_user_id: str | None) -> str:
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(\|[^>]*)?>", " ", text)
    return text.strip()
