"""The platform-neutral conversation contract that every adapter (console, Slack, Discord) uses.

An adapter calls `AskService.ask(conversation_key, text)` and renders the events it yields.
Nothing here knows Slack or Discord.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Source:
    """A document an answer cites, numbered as in the answer text ([1], [2], ...)."""

    number: int
    title: str
    location: str  # file path or URL as indexed
    url: str | None = None  # a link when `location` is a URL
    heading_path: str = ""


@dataclass(frozen=True, slots=True)
class Status:
    """Work is under way ("Searching the docs…"); adapters show it as a status or typing indicator."""

    text: str


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer text, in order."""

    text: str


@dataclass(frozen=True, slots=True)
class Answer:
    """The finished answer. `answer_id` identifies it for feedback."""

    text: str
    sources: list[Source] = field(default_factory=list)
    answer_id: str = ""
    thread_id: str = ""
    from_language_model: bool = True


@dataclass(frozen=True, slots=True)
class AskFailed:
    """The answer could not be produced; `message` tells the user what went wrong."""

    message: str


AskEvent = Status | TextDelta | Answer | AskFailed


class AskService(Protocol):
    """What adapters need from the chatkit service."""

    def ask(
        self,
        conversation_key: str,
        text: str,
        *,
        user_id: str | None = None,
        sources: Sequence[str] | None = None,
        space: str | None = None,
    ) -> AsyncIterator[AskEvent]:
        """Add `text` to the conversation and stream the reply; always ends in `Answer` or `AskFailed`.

        `sources` (names) is what this turn may search: the space of the place it was asked in;
        None searches every source. `space` names that space for the record (`main.py report`).
        """
        ...

    async def has_conversation(self, conversation_key: str) -> bool:
        """True when the bot has already answered in this conversation (for follow-ups)."""
        ...

    async def record_feedback(self, answer_id: str, *, positive: bool, user_id: str | None = None) -> None:
        """Store a 👍/👎 on an answer."""
        ...
