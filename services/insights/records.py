"""Plain records the insights are computed from: turns, votes and answer events, and their filters.

A turn is one question and the answer that followed it in a chatkit thread; where it was asked
comes from the conversation key the adapters link to the thread (`slack:TEAM:CHANNEL:TS`,
`discord:GUILD:CHANNEL`, `console:ID`); a thread with no key came over POST /chatkit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from data.timestamps import as_utc

Outcome = Literal["answered", "not_covered", "unanswered"]

ANSWERED: Outcome = "answered"
NOT_COVERED: Outcome = "not_covered"
UNANSWERED: Outcome = "unanswered"  # no answer was stored: the turn failed or is still running

HUMAN_REQUESTED = "human_requested"  # an answer event that is an "Ask a human" reply, not a question
ANSWER_OUTCOMES = ("answered", "not_covered", "failed", "incomplete")  # what `record_answer` takes


@dataclass(frozen=True, slots=True)
class Where:
    """Where a question was asked: the platform, its workspace (Slack team, Discord guild), a channel."""

    platform: str
    workspace: str = ""
    channel: str = ""

    @property
    def label(self) -> str:
        """`slack T1 #C1`, `discord 42 #7`, or just the platform."""
        parts = [self.platform, self.workspace, f"#{self.channel}" if self.channel else ""]
        return " ".join(part for part in parts if part)

    def matches(self, channel: str) -> bool:
        """A channel filter: the channel id, the workspace, or a `platform:workspace:channel` prefix."""
        return channel in (self.channel, self.workspace, self.platform) or self.key.startswith(channel)

    @property
    def key(self) -> str:
        return ":".join(part for part in (self.platform, self.workspace, self.channel) if part)


def where_from_key(conversation_key: str | None, platform: str | None = None) -> Where:
    """Parse an adapter's conversation key; `platform` (from an answer event) wins when given."""
    if not conversation_key:
        return Where(platform or "chatkit")
    head, _, rest = conversation_key.partition(":")
    parts = rest.split(":")
    if head == "slack" and len(parts) >= 2:
        return Where(platform or "slack", parts[0], parts[1])
    if head == "discord" and len(parts) >= 2:
        return Where(platform or "discord", parts[0], parts[1])
    return Where(platform or head or "chatkit")


def channel_part(conversation_key: str) -> str:
    """The key without its conversation (Slack's thread ts): what anonymising keeps of it."""
    head, _, rest = conversation_key.partition(":")
    parts = rest.split(":")
    if head == "slack" and len(parts) >= 2:
        return f"slack:{parts[0]}:{parts[1]}"
    if head == "discord":
        return conversation_key
    return head


@dataclass(frozen=True, slots=True)
class Filters:
    """Which questions a report covers: asked in [since, until), optionally in one space or channel."""

    since: datetime
    until: datetime
    space: str | None = None
    channel: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "since", as_utc(self.since))
        object.__setattr__(self, "until", as_utc(self.until))

    def covers(self, moment: datetime) -> bool:
        return self.since <= moment < self.until

    def admits(self, where: Where, space: str | None) -> bool:
        """The place filters only (time is checked per record)."""
        if self.space is not None and space != self.space:
            return False
        return self.channel is None or where.matches(self.channel)


@dataclass(frozen=True, slots=True)
class Vote:
    """A 👍/👎; only the latest vote of each user on an answer counts (a changed mind is one vote)."""

    answer_id: str
    positive: bool
    voted_at: datetime
    user_id: str | None = None
    thread_id: str | None = None


@dataclass(frozen=True, slots=True)
class AnswerEvent:
    """One `answer_events` row: how a turn ended, how long it took, where it was asked."""

    created_at: datetime
    platform: str
    outcome: str
    error_kind: str | None = None
    conversation_key: str | None = None
    thread_id: str | None = None
    answer_id: str | None = None
    space: str | None = None
    user_id: str | None = None
    latency_ms: int | None = None
    first_text_ms: int | None = None

    @property
    def where(self) -> Where:
        return where_from_key(self.conversation_key, self.platform)


@dataclass(frozen=True, slots=True)
class SourceRef:
    """A document an answer cited."""

    location: str
    title: str = ""


@dataclass(slots=True)
class Turn:
    """One question and its answer (the assistant messages that followed it, joined)."""

    question_id: str
    thread_id: str
    question: str
    asked_at: datetime
    where: Where
    outcome: Outcome = UNANSWERED
    answer_id: str | None = None
    answer: str = ""
    answered_at: datetime | None = None
    sources: list[SourceRef] = field(default_factory=list)
    space: str | None = None
    user_id: str | None = None
    votes: list[Vote] = field(default_factory=list)

    @property
    def up(self) -> int:
        return sum(1 for vote in self.votes if vote.positive)

    @property
    def down(self) -> int:
        return sum(1 for vote in self.votes if not vote.positive)

    @property
    def is_gap(self) -> bool:
        """A coverage gap: the docs did not cover the question, or someone gave the answer a 👎."""
        return self.outcome == NOT_COVERED or self.down > 0
