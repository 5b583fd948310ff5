"""An `AskService` wrapper that leaves one answer event per turn: outcome, timings, where it was asked.

It sits where `MeteredAskService` sits (one per adapter), so the chat service itself does not
change: it sees every event the adapter sees, times the first text and the final answer, and
tells "not covered" from the answer (`classify_answer`). Recording never breaks an answer: a
failed write is logged and the turn goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Callable

from data.database import Database
from services.chat.contract import Answer, AskEvent, AskFailed, AskService, TextDelta
from services.insights.outcomes import classify_answer, failure_kind

log = logging.getLogger(__name__)

SpaceOf = Callable[[str], str | None]  # conversation key -> the docs space it is in, when spaces exist


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
        self, conversation_key: str, text: str, *, user_id: str | None = None
    ) -> AsyncGenerator[AskEvent, None]:
        started = time.perf_counter()
        first_text_ms: int | None = None
        answer: Answer | None = None
        failure: str | None = None
        try:
            async for event in self._inner.ask(conversation_key, text, user_id=user_id):
                if isinstance(event, TextDelta) and first_text_ms is None:
                    first_text_ms = round((time.perf_counter() - started) * 1000)
                elif isinstance(event, Answer):
                    answer = event
                elif isinstance(event, AskFailed):
                    failure = event.message
                yield event
        finally:
            latency_ms = round((time.perf_counter() - started) * 1000)
            await self._record(conversation_key, user_id, answer, failure, latency_ms, first_text_ms)

    async def _record(
        self,
        conversation_key: str,
        user_id: str | None,
        answer: Answer | None,
        failure: str | None,
        latency_ms: int,
        first_text_ms: int | None,
    ) -> None:
        outcome: str = "failed" if failure is not None else "incomplete"
        if answer is not None:
            outcome = classify_answer(answer.text, len(answer.sources))
        try:
            await self._database.record_answer(
                platform=self._platform,
                outcome=outcome,
                conversation_key=conversation_key,
                thread_id=(answer.thread_id or None) if answer else None,
                answer_id=(answer.answer_id or None) if answer else None,
                space=self._space_of(conversation_key) if self._space_of else None,
                user_id=user_id,
                latency_ms=latency_ms if answer is not None else None,
                first_text_ms=first_text_ms if answer is not None else None,
                error_kind=failure_kind(failure) if failure is not None else None,
            )
        except Exception:
            log.warning("Could not record the answer event of %s", conversation_key, exc_info=True)

    async def has_conversation(self, conversation_key: str) -> bool:
        return await self._inner.has_conversation(conversation_key)

    async def record_feedback(self, answer_id: str, *, positive: bool, user_id: str | None = None) -> None:
        await self._inner.record_feedback(answer_id, positive=positive, user_id=user_id)
