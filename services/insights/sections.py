"""The report's numbers, computed from a `Dataset`: overview, usage and feedback.

Counting rules, so the numbers can be checked by hand: a question counts on the day (UTC) it was
asked; a vote counts when it was cast, a user's latest vote on an answer only; percentiles are
numpy's (linear interpolation between the two nearest values).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from data.spaces_store import HumanAnswer
from services.insights.dataset import Dataset
from services.insights.records import ANSWERED, HUMAN_REQUESTED, NOT_COVERED, UNANSWERED, SourceRef

WORST_ANSWERS = 10
BLAMED_SOURCES = 10
EXCERPT_CHARS = 300
_ANSWER_EVENTS = (ANSWERED, NOT_COVERED)


@dataclass(frozen=True, slots=True)
class Overview:
    questions: int
    answered: int
    not_covered: int
    unanswered: int  # no answer stored: the turn failed (or was still running)
    up: int
    down: int

    @property
    def satisfaction(self) -> float | None:
        """👍 / (👍 + 👎) of the votes cast in the period; None without votes."""
        return self.up / (self.up + self.down) if self.up + self.down else None


@dataclass(frozen=True, slots=True)
class DayCount:
    day: date
    platform: str
    space: str | None
    questions: int


@dataclass(frozen=True, slots=True)
class Usage:
    by_day: list[DayCount]  # oldest day first, then platform, then space
    by_platform: dict[str, int]
    latency_p50: float | None  # seconds, question to final answer (answer events)
    latency_p95: float | None
    first_text_p50: float | None  # seconds, question to the first streamed text
    first_text_p95: float | None
    timed_answers: int  # answer events with a latency
    errors: dict[str, int]  # failure kind -> turns, most frequent first


@dataclass(frozen=True, slots=True)
class VoteCount:
    key: str  # a day (ISO) or a place label
    up: int
    down: int

    @property
    def rate(self) -> float | None:
        return self.up / (self.up + self.down) if self.up + self.down else None


@dataclass(frozen=True, slots=True)
class RatedAnswer:
    answer_id: str
    thread_id: str
    question: str
    answer: str  # the first EXCERPT_CHARS characters
    place: str
    up: int
    down: int
    sources: list[SourceRef]
    downvoters: list[str] = field(default_factory=list)  # user ids; shown only when configured


@dataclass(frozen=True, slots=True)
class BlamedSource:
    """A document cited by answers that got a 👎: one that keeps showing up there needs fixing."""

    location: str
    title: str
    downvoted_answers: int


@dataclass(frozen=True, slots=True)
class Feedback:
    up: int
    down: int
    by_day: list[VoteCount]
    by_place: list[VoteCount]  # most votes first
    worst_answers: list[RatedAnswer]
    blamed_sources: list[BlamedSource]
    human_requests: dict[str, int]  # place -> "Ask a human" replies (recorded once spaces exist)
    # Questions the docs did not answer with what an expert replied: docs changes to write.
    human_answers: list[HumanAnswer] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        return self.up / (self.up + self.down) if self.up + self.down else None


def overview(data: Dataset) -> Overview:
    outcomes = Counter(turn.outcome for turn in data.turns)
    up = sum(1 for vote in data.votes if vote.positive)
    return Overview(
        questions=len(data.turns),
        answered=outcomes[ANSWERED],
        not_covered=outcomes[NOT_COVERED],
        unanswered=outcomes[UNANSWERED],
        up=up,
        down=len(data.votes) - up,
    )


def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else None


def usage(data: Dataset) -> Usage:
    per_day = Counter((t.asked_at.date(), t.where.platform, t.space) for t in data.turns)
    by_day = [
        DayCount(day, platform, space, count)
        for (day, platform, space), count in sorted(per_day.items(), key=lambda kv: _day_key(kv[0]))
    ]
    answers = [e for e in data.events if e.outcome in _ANSWER_EVENTS]
    latencies = [e.latency_ms / 1000 for e in answers if e.latency_ms is not None]
    first_texts = [e.first_text_ms / 1000 for e in answers if e.first_text_ms is not None]
    errors = Counter(
        (e.error_kind or "other") if e.outcome == "failed" else "incomplete"
        for e in data.events
        if e.outcome in ("failed", "incomplete")
    )
    return Usage(
        by_day=by_day,
        by_platform=dict(Counter(t.where.platform for t in data.turns).most_common()),
        latency_p50=percentile(latencies, 50),
        latency_p95=percentile(latencies, 95),
        first_text_p50=percentile(first_texts, 50),
        first_text_p95=percentile(first_texts, 95),
        timed_answers=len(latencies),
        errors=dict(sorted(errors.items(), key=lambda kv: (-kv[1], kv[0]))),
    )


def _day_key(key: tuple[date, str, str | None]) -> tuple[date, str, str]:
    return key[0], key[1], key[2] or ""


def feedback(data: Dataset) -> Feedback:
    days: dict[str, list[int]] = {}
    places: dict[str, list[int]] = {}
    per_answer: dict[str, list[int]] = {}
    downvoters: dict[str, list[str]] = {}
    for vote in data.votes:
        turn = data.vote_turns.get(vote.answer_id)
        column = 0 if vote.positive else 1
        days.setdefault(vote.voted_at.date().isoformat(), [0, 0])[column] += 1
        places.setdefault(turn.where.label if turn else "unknown", [0, 0])[column] += 1
        per_answer.setdefault(vote.answer_id, [0, 0])[column] += 1
        if not vote.positive and vote.user_id:
            downvoters.setdefault(vote.answer_id, []).append(vote.user_id)
    worst = []
    for answer_id, (up, down) in per_answer.items():
        turn = data.vote_turns.get(answer_id)
        if down == 0 or turn is None:
            continue
        worst.append(
            RatedAnswer(
                answer_id=answer_id,
                thread_id=turn.thread_id,
                question=turn.question,
                answer=turn.answer[:EXCERPT_CHARS],
                place=turn.where.label,
                up=up,
                down=down,
                sources=turn.sources,
                downvoters=downvoters.get(answer_id, []),
            )
        )
    worst.sort(key=lambda a: (a.up - a.down, -a.down, a.answer_id))
    up = sum(1 for vote in data.votes if vote.positive)
    humans = Counter(e.where.label for e in data.events if e.outcome == HUMAN_REQUESTED)
    return Feedback(
        up=up,
        down=len(data.votes) - up,
        by_day=[VoteCount(day, u, d) for day, (u, d) in sorted(days.items())],
        by_place=[
            VoteCount(place, u, d)
            for place, (u, d) in sorted(places.items(), key=lambda kv: (-sum(kv[1]), kv[0]))
        ],
        worst_answers=worst[:WORST_ANSWERS],
        blamed_sources=blamed_sources(worst),
        human_requests=dict(humans.most_common()),
    )


def blamed_sources(answers: Sequence[RatedAnswer]) -> list[BlamedSource]:
    """Sources by the number of 👎 answers citing them (each answer counted once per source)."""
    counts: Counter[str] = Counter()
    titles: dict[str, str] = {}
    for answer in answers:
        for source in {s.location: s for s in answer.sources}.values():
            counts[source.location] += 1
            titles.setdefault(source.location, source.title)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:BLAMED_SOURCES]
    return [BlamedSource(location, titles[location], count) for location, count in ranked]
