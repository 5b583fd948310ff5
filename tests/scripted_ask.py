"""The scripted `AskService` (a test double of our own contract) for the chat adapters' tests.

It records every ask and replays the events a script returns, streamed as the real service
streams them (a status, text deltas, then the `Answer` or `AskFailed`), so the Slack and Discord
adapters are tested without Weaviate or a model; their end-to-end tests use the real `ChatService`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from services.chat.contract import Answer, AskEvent, AskFailed, Source, Status, TextDelta

# The events of one reply, or the exception the service raises instead (an engine crash).
Script = Callable[[str, str], list[AskEvent] | Exception]

DOC_SOURCES = [
    Source(1, "Install guide", "https://docs.example.com/install", url="https://docs.example.com/install"),
    Source(2, "Configuration", "docs/config.md", heading_path="Settings › Tokens"),
]


def answer_with_sources(conversation_key: str, text: str) -> list[AskEvent]:
    """The default script: a status, then a two-part answer citing `DOC_SOURCES`."""
    reply = f"Answer to: {text} [1][2]"
    half = len(reply) // 2
    return [
        Status("Searching the docs…"),
        TextDelta(reply[:half]),
        TextDelta(reply[half:]),
        Answer(reply, list(DOC_SOURCES), "a-1"),
    ]


class Ask(NamedTuple):
    """One call of `ask` (a tuple, so tests compare whole asks at once)."""

    conversation_key: str
    text: str
    user_id: str | None


@dataclass
class ScriptedAsk:
    """Answers every ask with `script(conversation_key, text)`; records asks and feedback."""

    script: Script = answer_with_sources
    delay: float = 0.0  # seconds before each event, like a model streaming
    asks: list[Ask] = field(default_factory=list)
    scopes: list[tuple[str, ...] | None] = field(default_factory=list)  # each ask's `sources`
    conversations: set[str] = field(default_factory=set)  # answered (or failed) at least once
    feedback: list[tuple[str, bool, str | None]] = field(default_factory=list)
    feedback_error: Exception | None = None  # raised by `record_feedback` (a failing store)

    async def ask(
        self,
        conversation_key: str,
        text: str,
        *,
        user_id: str | None = None,
        sources: Sequence[str] | None = None,
        space: str | None = None,
    ) -> AsyncIterator[AskEvent]:
        self.asks.append(Ask(conversation_key, text, user_id))
        self.scopes.append(None if sources is None else tuple(sources))
        events = self.script(conversation_key, text)
        if isinstance(events, Exception):
            raise events
        for event in events:
            await asyncio.sleep(self.delay)  # even 0 lets the adapter run between events
            if isinstance(event, Answer | AskFailed):
                self.conversations.add(conversation_key)
            yield event

    async def has_conversation(self, conversation_key: str) -> bool:
        return conversation_key in self.conversations

    async def record_feedback(self, answer_id: str, *, positive: bool, user_id: str | None = None) -> None:
        if self.feedback_error is not None:
            raise self.feedback_error
        self.feedback.append((answer_id, positive, user_id))
