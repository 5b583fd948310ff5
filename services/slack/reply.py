"""One reply in a Slack thread: show that work started, stream the answer, finish with sources and buttons.

Streaming uses slack-sdk's `chat_stream` (chat.startStream / appendStream / stopStream). Where Slack
refuses it (older workspaces, some channel types), the reply falls back to one posted message
updated with `chat.update`, throttled. Whatever happens, the thread ends with an answer or a message
saying what went wrong: a spinner that never resolves is the complaint users have most.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_chat_stream import AsyncChatStream
from slack_sdk.web.async_client import AsyncWebClient

from services.chat.contract import Answer, AskEvent, AskFailed, Status, TextDelta
from services.chat.replies import describe_error
from services.slack.blocks import (
    STREAM_MESSAGE_LIMIT,
    HumanOffer,
    answer_messages,
    failure_text,
    footer_blocks,
    notification_text,
    pack_blocks,
    progress_blocks,
)

log = logging.getLogger(__name__)

THINKING = "is thinking…"
WORKING_REACTION = "eyes"
STREAM_INTERVAL = 1.0  # seconds between appends: Slack allows ~100 appends a minute per workspace
UPDATE_INTERVAL = 1.5  # seconds between chat.update calls in the fallback (Tier 3 method)


class ThreadReply:
    """Renders the events of one `AskService.ask` call into a Slack thread."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        channel: str,
        thread_ts: str,
        message_ts: str,
        team_id: str | None,
        user_id: str | None,
        idle_timeout: float,
        human: HumanOffer | None = None,
    ) -> None:
        self.client = client
        self.channel = channel
        self.thread_ts = thread_ts
        self.message_ts = message_ts
        self.team_id = team_id
        self.user_id = user_id
        self.idle_timeout = idle_timeout
        self.human = human  # the place has experts: the answer may offer "Ask a human"
        self.first_text_at: float | None = None  # time.monotonic() when the first answer text reached Slack
        self._status_shown = False
        self._reacted = False
        self._stream: AsyncChatStream | None = None
        self._streaming_refused = False
        self._segment_chars = 0  # markdown characters in the current streamed message
        self._sent = ""  # answer text already handed to Slack
        self._text = ""  # answer text received so far
        self._live_ts: str | None = None  # the fallback message being updated
        self._last_flush = 0.0

    # --- Working indicator ---------------------------------------------------------------
    async def show_working(self, status: str = THINKING, loading: str | None = None) -> None:
        """Assistant status when the workspace allows it (assistant threads), else a 👀 reaction."""
        if not self._reacted:
            try:
                await self.client.assistant_threads_setStatus(
                    channel_id=self.channel,
                    thread_ts=self.thread_ts,
                    status=status,
                    loading_messages=[loading] if loading else None,
                )
                self._status_shown = True
                return
            except Exception as exc:  # best effort: a refused status (or a network error) falls back
                log.debug("assistant status refused (%s); using a reaction", _error_code(exc))
        if not self._reacted:
            self._reacted = True
            try:
                await self.client.reactions_add(
                    channel=self.channel, timestamp=self.message_ts, name=WORKING_REACTION
                )
            except Exception as exc:
                log.warning("Could not add the working reaction: %s", _error_code(exc))

    async def _clear_working(self) -> None:
        try:
            if self._status_shown:
                await self.client.assistant_threads_setStatus(
                    channel_id=self.channel, thread_ts=self.thread_ts, status=""
                )
            if self._reacted:
                await self.client.reactions_remove(
                    channel=self.channel, timestamp=self.message_ts, name=WORKING_REACTION
                )
        except Exception as exc:
            log.debug("Could not clear the working indicator: %s", _error_code(exc))

    # --- The reply -----------------------------------------------------------------------
    async def render(self, events: AsyncIterator[AskEvent]) -> None:
        """Consume `events` to the end; any failure becomes a message in the thread."""
        try:
            finished = await self._consume(events)
            if not finished:
                await self.fail("the answer ended without a result. Please ask again.")
        except TimeoutError:
            await self.fail(
                f"no progress for {self.idle_timeout:.0f} seconds, so I stopped waiting. Please retry."
            )
        except Exception as exc:
            log.exception("Answering in %s/%s failed", self.channel, self.thread_ts)
            await self.fail(_failure_reason(exc))
        finally:
            await self._clear_working()

    async def _consume(self, events: AsyncIterator[AskEvent]) -> bool:
        iterator = events.__aiter__()
        while True:
            try:
                async with asyncio.timeout(self.idle_timeout):
                    event = await iterator.__anext__()
            except StopAsyncIteration:
                return False
            if isinstance(event, Status):
                if self._status_shown and not self._text:
                    await self.show_working(THINKING, event.text)
            elif isinstance(event, TextDelta):
                self._text += event.text
                if self.first_text_at is None or time.monotonic() - self._last_flush >= self._interval():
                    await self._flush()
            elif isinstance(event, Answer):
                await self._finish(event)
                return True
            elif isinstance(event, AskFailed):
                await self.fail(event.message)
                return True

    def _interval(self) -> float:
        return UPDATE_INTERVAL if self._streaming_refused else STREAM_INTERVAL

    async def _flush(self) -> None:
        """Hand the text received since the last flush to Slack."""
        pending = self._text[len(self._sent) :]
        if not pending:
            return
        if not self._streaming_refused:
            try:
                await self._stream_text(pending)
            except SlackApiError as exc:
                log.info("Streaming refused (%s); falling back to chat.update", _error_code(exc))
                self._streaming_refused = True
                self._live_ts = self._stream.ts if self._stream is not None else None
                self._stream = None
        if self._streaming_refused:
            await self._update_live(progress_blocks(self._text), self._text)
            self._sent = self._text
        self._last_flush = time.monotonic()
        if self.first_text_at is None:
            self.first_text_at = self._last_flush

    async def _stream_text(self, pending: str) -> None:
        """Append to the current streamed message, opening a new one when it is full."""
        while pending:
            room = STREAM_MESSAGE_LIMIT - self._segment_chars
            if room <= 0:
                await self._stop_stream()
                continue
            piece = pending[:room]
            if len(piece) < len(pending) and "\n" in piece[len(piece) // 2 :]:
                piece = piece[: piece.rindex("\n") + 1]  # cut a full message at a line end
            stream = self._stream or await self._open_stream()
            await stream.append(markdown_text=piece)
            self._segment_chars += len(piece)
            self._sent += piece
            pending = pending[len(piece) :]
            if pending:
                self._segment_chars = STREAM_MESSAGE_LIMIT  # the rest goes to the next message

    async def _open_stream(self) -> AsyncChatStream:
        self._stream = await self.client.chat_stream(
            buffer_size=1,  # we throttle ourselves; every append is sent
            channel=self.channel,
            thread_ts=self.thread_ts,
            recipient_team_id=self.team_id,
            recipient_user_id=self.user_id,
        )
        self._segment_chars = 0
        return self._stream

    async def _stop_stream(self, blocks: list[dict[str, Any]] | None = None) -> None:
        stream, self._stream = self._stream, None
        self._segment_chars = 0
        if stream is not None:
            await stream.stop(blocks=blocks)

    async def _update_live(self, blocks: list[dict[str, Any]], text: str) -> None:
        if self._live_ts is None:
            response = await self.client.chat_postMessage(
                channel=self.channel, thread_ts=self.thread_ts, blocks=blocks, text=notification_text(text)
            )
            self._live_ts = str(response["ts"])
        else:
            await self.client.chat_update(
                channel=self.channel, ts=self._live_ts, blocks=blocks, text=notification_text(text)
            )

    async def _finish(self, answer: Answer) -> None:
        """The final message(s): the full answer, its sources and the feedback buttons."""
        if answer.text.startswith(self._sent):
            self._text = answer.text  # the engine's final text wins when deltas were incomplete
        if not self._streaming_refused:
            await self._flush()
        if not self._streaming_refused and self._stream is not None:
            footers = pack_blocks(footer_blocks(answer, self.human))
            await self._stop_stream(blocks=footers[0] or None)
            for extra in footers[1:]:
                await self._post(extra, "Sources")
            return
        messages = answer_messages(Answer(self._text, answer.sources, answer.answer_id), self.human)
        await self._update_live(messages[0], self._text)
        for blocks in messages[1:]:
            await self._post(blocks, self._text)

    async def _post(self, blocks: list[dict[str, Any]], text: str) -> None:
        await self.client.chat_postMessage(
            channel=self.channel, thread_ts=self.thread_ts, blocks=blocks, text=notification_text(text)
        )

    async def fail(self, message: str) -> None:
        """Close any open stream and say in the thread what went wrong."""
        try:
            await self._stop_stream()
        except Exception as exc:
            log.warning("Could not close the stream: %s", _error_code(exc))
        try:
            await self.client.chat_postMessage(
                channel=self.channel, thread_ts=self.thread_ts, text=failure_text(message)
            )
        except Exception:
            log.exception("Could not post the failure message in %s/%s", self.channel, self.thread_ts)


def _error_code(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error", exc))
    return str(exc)


def _failure_reason(exc: BaseException) -> str:
    """A one-line reason for the user; Slack errors name their API error code."""
    if isinstance(exc, SlackClientError):
        return f"Slack refused a request ({_error_code(exc)})."
    return f"an internal error occurred ({describe_error(exc)})."
