"""A scripted `AskService` (a test double of our own contract) for the chat adapters' tests.

It records every ask and replies with the events a script returns, streamed as the real
service streams them (a status, text deltas, then the `Answer`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from services.chat.contract import Answer, AskEvent, Source, Status, TextDelta

DOC_SOURCES = [
    Source(1, "Install guide", "https://docs.example.com/install", url="https://docs.example.com/install"),
    Source(2, "Configuration", "docs/config.md", heading_path="Settings › Tokens"),
]


def answer_with_sources(conversation_key: str, text: str) -> list[AskEvent]:
    """The default script: a two-part answer citing `DOC_SOURCES`."""
    reply = f"Answer to: {text} [1][2]"
    half = len(reply) // 2
    return [TextDelta(reply[:half]), TextDelta(reply[half:]), Answer(reply, list(DOC_SOURCES), "a-1")]


@dataclass
class Ask:
    conversation_key: str
    text: str
    user_id: str | None


@dataclass
class ScriptedAsk:
    """Answers every ask with `script(conversation_key, text)`; records asks and feedback."""

    script: Callable[[str, str], list[AskEvent]] = answer_with_sources
    asks: list[Ask] = field(default_factory=list)
    answered: set[str] = field(default_factory=set)
    feedback: list[tuple[str, bool, str | None]] = field(default_factory=list)
    feedback_error: Exception | None = None  # raised by `record_feedback` (a failing store)
    delay: float = 0.0  # seconds between events, like a model streaming

    async def ask(
        self, conversation_key: str, text: str, *, user_id: str | None = None
    ) -> AsyncIterator[AskEvent]:
        self.asks.append(Ask(conversation_key, text, user_id))
        yield Status("Searching the docs…")
        for event in self.script(conversation_key, text):
            if self.delay:
                await asyncio.sleep(self.delay)
            yield event
        self.answered.add(conversation_key)

    async def has_conversation(self, conversation_key: str) -> bool:
        return conversation_key in self.answered

    async def record_feedback(self, answer_id: str, *, positive: bool, user_id: str | None = None) -> None:
        if self.feedback_error is not None:
            raise self.feedback_error
        self.feedback.append((answer_id, positive, user_id))
