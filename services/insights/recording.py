"""One answer event per turn (outcome, timings, where it was asked), however the question came in.

`RecordingAskService` sits where `MeteredAskService` sits (one per adapter), so the chat service
itself does not change: it sees every event the adapter sees, times the first text and the final
answer, and tells "not covered" from the answer (`classify_answer`). POST /chatkit turns are
chatkit events, not `AskEvent`s: `recorded_thread_events` does the same for them, next to
`metered_thread_events`. Recording never breaks an answer: a failed write is logged and the turn
goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence

from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageContentPartAdded,
    AssistantMessageContentPartTextDelta,
    AssistantMessageItem,
    ErrorEvent,
    ThreadCreatedEvent,
    ThreadItemDoneEvent,
    ThreadItemUpdatedEvent,
    ThreadStreamEvent,
    UserMessageItem,
)

from data.database import Database
from services.chat.citations import annotated_sources
from services.chat.contract import Answer, AskEvent, AskFailed, AskService, TextDelta
from services.insights.outcomes import classify_answer, failure_kind

log = logging.getLogger(__name__)

SpaceOf = Callable[[str], str | None]  # conversation key -> the docs space it is in, when spaces exist
CHATKIT = "chatkit"  # the platform of POST /chatkit turns


class RecordingAskService:
    """Wraps an `AskService` for one platform so every turn shows up in the insights."""

    def __init__(
        self, inner: AskService, database: Database, platform: str, *, space_of: SpaceOf | None = None
    ) -> None:
        self._inner = inner
        self._database = database
        self._platform = platform
        self._space_of = space_of

    async def ask(
        self,
        conversation_key: str,
        text: str,
        *,
        user_id: str | None = None,
        sources: Sequence[str] | None = None,
        space: str | None = None,
    ) -> AsyncGenerator[AskEvent, None]:
        started = time.perf_counter()
        first_text_ms: int | None = None
        answer: Answer | None = None
        failure: str | None = None
        try:
            async for event in self._inner.ask(
                conversation_key, text, user_id=user_id, sources=sources, space=space
            ):
                if isinstance(event, TextDelta) and first_text_ms is None:
                    first_text_ms = _ms_since(started)
                elif isinstance(event, Answer):
                    answer = event
                elif isinstance(event, AskFailed):
                    failure = event.message
                yield event
        finally:
            await record_turn(
                self._database,
                self._platform,
                conversation_key,
                user_id,
                answer,
                failure,
                latency_ms=_ms_since(started),
                first_text_ms=first_text_ms,
                space=space or (self._space_of(conversation_key) if self._space_of else None),
            )

    async def has_conversation(self, conversation_key: str) -> bool:
        return await self._inner.has_conversation(conversation_key)

    async def record_feedback(self, answer_id: str, *, positive: bool, user_id: str | None = None) -> None:
        await self._inner.record_feedback(answer_id, positive=positive, user_id=user_id)


async def recorded_thread_events(
    events: AsyncIterator[ThreadStreamEvent], database: Database, *, user_id: str | None, started: float
) -> AsyncIterator[ThreadStreamEvent]:
    """A POST /chatkit turn's events, passed on as they come, and its answer event once they end.

    Read as `ChatService` reads a turn: the answer is the assistant messages (sources from the
    last), an `error` event makes it a failure whatever came before, and a stream that stops
    before either (the client went away) is incomplete. `started` is when the request came in
    (`time.perf_counter()`), so the timings match those of the adapters' turns.
    """
    answers: list[AssistantMessageItem] = []
    thread_id: str | None = None
    failure: str | None = None
    first_text_ms: int | None = None
    try:
        async for event in events:
            match event:
                case ThreadCreatedEvent():
                    thread_id = event.thread.id
                case ThreadItemDoneEvent(item=UserMessageItem() as question):
                    thread_id = question.thread_id
                case ThreadItemUpdatedEvent(
                    update=AssistantMessageContentPartTextDelta(delta=text)
                    | AssistantMessageContentPartAdded(content=AssistantMessageContent(text=text))
                ) if text and first_text_ms is None:
                    first_text_ms = _ms_since(started)
                case ThreadItemDoneEvent(item=AssistantMessageItem() as item):
                    answers.append(item)
                case ErrorEvent(message=message):
                    failure = failure or message or ""
            yield event
    finally:
        finished = None  # as `ChatService` reads it: the messages joined, the sources of the last
        if answers and failure is None:
            last = answers[-1]
            joined = "\n\n".join(t for t in ("".join(p.text for p in a.content) for a in answers) if t)
            finished = Answer(joined, annotated_sources(last), last.id, thread_id or last.thread_id)
        await record_turn(
            database,
            CHATKIT,
            None,  # a /chatkit thread has no adapter conversation; its owner says whose it is
            user_id,
            finished,
            failure,
            latency_ms=_ms_since(started),
            first_text_ms=first_text_ms,
        )


async def record_turn(
    database: Database,
    platform: str,
    conversation_key: str | None,
    user_id: str | None,
    answer: Answer | None,
    failure: str | None,
    *,
    latency_ms: int,
    first_text_ms: int | None,
    space: str | None = None,
) -> None:
    """Write the turn's answer event: timings only for an answer (a failure's would skew them)."""
    outcome: str = "failed" if failure is not None else "incomplete"
    if answer is not None:
        outcome = classify_answer(answer.text, len(answer.sources))
    try:
        await database.record_answer(
            platform=platform,
            outcome=outcome,
            conversation_key=conversation_key,
            thread_id=(answer.thread_id or None) if answer else None,
            answer_id=(answer.answer_id or None) if answer else None,
            space=space,
            user_id=user_id,
            latency_ms=latency_ms if answer is not None else None,
            first_text_ms=first_text_ms if answer is not None else None,
            error_kind=failure_kind(failure) if failure is not None else None,
        )
    except Exception:
        log.warning("Could not record the answer event of %s", conversation_key or platform, exc_info=True)


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
