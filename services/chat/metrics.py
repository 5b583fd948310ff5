"""Prometheus metrics: every ask's outcome and latency, whichever entry point it came through.

The chat adapters' asks are counted by `MeteredAskService`, POST /chatkit's by
`metered_thread_events`; both count through `_AskMeter`, so an answer, a failure and an ask
abandoned half-way mean the same in `/metrics` for every adapter.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from typing import Literal

from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageContentPartAdded,
    AssistantMessageContentPartTextDelta,
    AssistantMessageItem,
    ErrorEvent,
    ThreadItemDoneEvent,
    ThreadItemUpdatedEvent,
    ThreadStreamEvent,
)
from prometheus_client import CollectorRegistry, Counter, Histogram

from services.chat.contract import Answer, AskEvent, AskFailed, AskService, TextDelta

REGISTRY = CollectorRegistry(auto_describe=True)

ASKS = Counter(
    "docsbot_asks_total",
    "Questions answered, by adapter and outcome.",
    ["adapter", "outcome"],
    registry=REGISTRY,
)
ASK_SECONDS = Histogram(
    "docsbot_ask_seconds",
    "Time from question to final answer.",
    ["adapter"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 60),
    registry=REGISTRY,
)
FIRST_TEXT_SECONDS = Histogram(
    "docsbot_first_text_seconds",
    "Time from question to the first streamed text.",
    ["adapter"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
    registry=REGISTRY,
)
FEEDBACK = Counter("docsbot_feedback_total", "Feedback clicks.", ["adapter", "vote"], registry=REGISTRY)


class _AskMeter:
    """One ask being measured: first text once, then its outcome and latency when it ends."""

    def __init__(self, adapter: str, started: float | None = None) -> None:
        self.adapter = adapter
        self.started = time.perf_counter() if started is None else started
        self.outcome: Literal["answered", "failed", "incomplete"] = "incomplete"  # until it ends
        self._text_seen = False

    def text(self) -> None:
        if not self._text_seen:
            self._text_seen = True
            FIRST_TEXT_SECONDS.labels(self.adapter).observe(time.perf_counter() - self.started)

    def finish(self) -> None:
        ASKS.labels(self.adapter, self.outcome).inc()
        ASK_SECONDS.labels(self.adapter).observe(time.perf_counter() - self.started)


class MeteredAskService:
    """Wraps an `AskService` for one adapter so its answers show up in `/metrics`."""

    def __init__(self, inner: AskService, adapter: str) -> None:
        self._inner = inner
        self._adapter = adapter

    async def ask(
        self,
        conversation_key: str,
        text: str,
        *,
        user_id: str | None = None,
        sources: Sequence[str] | None = None,
        space: str | None = None,
    ) -> AsyncIterator[AskEvent]:
        meter = _AskMeter(self._adapter)
        try:
            async for event in self._inner.ask(
                conversation_key, text, user_id=user_id, sources=sources, space=space
            ):
                if isinstance(event, TextDelta):
                    meter.text()
                elif isinstance(event, Answer):
                    meter.outcome = "answered"
                elif isinstance(event, AskFailed):
                    meter.outcome = "failed"
                yield event
        finally:
            meter.finish()

    async def has_conversation(self, conversation_key: str) -> bool:
        return await self._inner.has_conversation(conversation_key)

    async def record_feedback(self, answer_id: str, *, positive: bool, user_id: str | None = None) -> None:
        FEEDBACK.labels(self._adapter, "up" if positive else "down").inc()
        await self._inner.record_feedback(answer_id, positive=positive, user_id=user_id)


async def metered_thread_events(
    events: AsyncIterator[ThreadStreamEvent], adapter: str, started: float
) -> AsyncIterator[ThreadStreamEvent]:
    """A chatkit turn's events (POST /chatkit), counted as `MeteredAskService` counts an adapter's:
    answered once an answer is done, failed on an error event (chatkit's way of ending a failed
    turn, which then outweighs any answer), incomplete when the stream stops before either."""
    meter = _AskMeter(adapter, started)
    try:
        async for event in events:
            match event:
                case ThreadItemUpdatedEvent(
                    update=AssistantMessageContentPartTextDelta(delta=text)
                    | AssistantMessageContentPartAdded(content=AssistantMessageContent(text=text))
                ) if text:
                    meter.text()
                case ThreadItemDoneEvent(item=AssistantMessageItem()) if meter.outcome != "failed":
                    meter.outcome = "answered"
                case ErrorEvent():
                    meter.outcome = "failed"
            yield event
    finally:
        meter.finish()
