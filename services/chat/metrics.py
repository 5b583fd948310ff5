"""Prometheus metrics, and an `AskService` wrapper that records every answer's outcome and latency."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

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


class MeteredAskService:
    """Wraps an `AskService` for one adapter so its answers show up in `/metrics`."""

    def __init__(self, inner: AskService, adapter: str) -> None:
        self._inner = inner
        self._adapter = adapter

    async def ask(
        self, conversation_key: str, text: str, *, user_id: str | None = None
    ) -> AsyncIterator[AskEvent]:
        started = time.perf_counter()
        first_text = True
        outcome = "incomplete"
        try:
            async for event in self._inner.ask(conversation_key, text, user_id=user_id):
                if isinstance(event, TextDelta) and first_text:
                    first_text = False
                    FIRST_TEXT_SECONDS.labels(self._adapter).observe(time.perf_counter() - started)
                elif isinstance(event, Answer):
                    outcome = "answered"
                elif isinstance(event, AskFailed):
                    outcome = "failed"
                yield event
        finally:
            ASKS.labels(self._adapter, outcome).inc()
            ASK_SECONDS.labels(self._adapter).observe(time.perf_counter() - started)

    async def has_conversation(self, conversation_key: str) -> bool:
        return await self._inner.has_conversation(conversation_key)

    async def record_feedback(self, answer_id: str, *, positive: bool, user_id: str | None = None) -> None:
        FEEDBACK.labels(self._adapter, "up" if positive else "down").inc()
        await self._inner.record_feedback(answer_id, positive=positive, user_id=user_id)
