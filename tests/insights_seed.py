"""A conversation database with known questions, answers, votes and answer events, for the insights tests.

Rows are written the way the bot writes them (chatkit item JSON with source annotations,
conversation links, feedback, `record_answer`), with fixed times so every number is known.
`NOW` is the report's clock: the last seven days are 2026-11-23 12:00 to 2026-11-30 12:00 UTC.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    InferenceOptions,
    ThreadItem,
    ThreadMetadata,
    UserMessageItem,
    UserMessageTextContent,
)
from pydantic import TypeAdapter

from data.database import ConversationRow, Database, FeedbackRow, ItemRow, ThreadRow
from services.chat.citations import annotate
from services.chat.contract import Source
from simple_agents.offline_model import NO_LLM_NOTICE, NOT_COVERED

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
_ITEM = TypeAdapter[ThreadItem](ThreadItem)

OFFLINE_NOT_COVERED = (
    f"{NO_LLM_NOTICE}\n\n{NOT_COVERED} “the question”. Try other words, or index more documents."
)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment in November 2026, UTC."""
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


@dataclass
class SeedTurn:
    question_id: str
    question: str
    asked: datetime
    answer: str | None = None  # None: no answer stored (the turn failed)
    sources: list[str] = field(default_factory=list)
    # (user id or None, positive, minutes after the answer)
    votes: list[tuple[str | None, bool, int]] = field(default_factory=list)
    # record_answer(...) keywords, or None for a turn from before answer events were recorded
    event: dict[str, object] | None = None

    @property
    def answer_id(self) -> str:
        return self.question_id.replace("q", "a", 1)


@dataclass
class SeedThread:
    thread_id: str
    key: str | None  # the adapter's conversation key; None for POST /chatkit
    turns: list[SeedTurn]


def _event(outcome: str, latency: int | None, first: int | None, space: str | None, **extra: object) -> dict:
    return {"outcome": outcome, "latency_ms": latency, "first_text_ms": first, "space": space, **extra}


THREADS = [
    SeedThread(
        "thr_pw1",
        "slack:T1:C1:1000.1",
        [
            SeedTurn(
                "q_pw1",
                "How do I reset my password?",
                at(29, 10),
                OFFLINE_NOT_COVERED,
                event=_event("not_covered", 1000, 200, "eng", user_id="U1"),
            )
        ],
    ),
    SeedThread(
        "thr_pw2",
        "slack:T1:C1:1000.2",
        [
            SeedTurn(
                "q_pw2",
                "how can I reset my password",
                at(28, 10),
                OFFLINE_NOT_COVERED,
                event=_event("not_covered", 2000, 400, "eng", user_id="U2"),
            )
        ],
    ),
    SeedThread(
        "thr_pw3",
        "slack:T1:C1:1000.3",
        [
            SeedTurn(
                "q_pw3",
                "I forgot my password, how do I reset it?",
                at(27, 10),
                "Open the account page and choose Reset [1]. See the handbook [2].",
                ["docs/accounts.md", "docs/handbook.md"],
                votes=[("U1", False, 2), ("U2", False, 3)],
                event=_event("answered", 3000, 600, "eng", user_id="U3"),
            )
        ],
    ),
    SeedThread(
        "thr_vpn",
        "slack:T1:C2:2000.1",
        [
            SeedTurn(
                "q_vpn1",
                "How do I configure the VPN on Linux?",
                at(29, 11),
                OFFLINE_NOT_COVERED,
                event=_event("not_covered", 4000, 800, "ops"),
            ),
            SeedTurn(
                "q_vpn2",
                "VPN setup on Ubuntu",
                at(29, 11, 5),
                OFFLINE_NOT_COVERED,
                event=_event("not_covered", 5000, 1000, "ops"),
            ),
        ],
    ),
    SeedThread(
        "thr_deploy",
        "slack:T1:C2:2000.2",
        [
            SeedTurn(
                "q_deploy",
                "What is the deploy process?",
                at(26, 9),
                "Merge to main, then run the deploy job [1].",
                ["docs/deploy.md"],
                votes=[("U1", True, 1), ("U3", True, 2), ("U4", False, 5), ("U4", True, 10)],
                event=_event("answered", 1500, 300, "ops"),
            )
        ],
    ),
    SeedThread(
        "thr_park",
        "discord:G1:77",
        [
            SeedTurn(
                "q_park",
                "Where can I park my car at the office?",
                at(28, 15),
                "The documents don't cover this.",
            )
        ],
    ),
    SeedThread(
        "thr_release",
        "discord:G1:78",
        [
            SeedTurn(
                "q_release",
                "What's the release schedule?",
                at(29, 15),
                "Releases ship every second Tuesday [1][2].",
                ["docs/releases.md", "docs/handbook.md"],
                votes=[("D5", False, 4)],
                event=_event("answered", 2500, 500, None),
            ),
            SeedTurn(
                "q_keys",
                "How do I rotate the API keys?",
                at(29, 16),
                event=_event("failed", None, None, None, error_kind="timeout"),
            ),
        ],
    ),
    SeedThread(
        "thr_old",
        "console:abc",
        [
            SeedTurn(
                "q_old",
                "How do I install the CLI?",
                at(20, 10),
                "Run pip install [1].",
                ["docs/install.md"],
                votes=[("C1", False, 1)],
                event=_event("answered", 9000, 900, None),
            )
        ],
    ),
    SeedThread(
        "thr_oncall",
        None,
        [
            SeedTurn(
                "q_oncall",
                "What is the on-call rotation?",
                at(26, 14),
                "Weekly, see the rota [1].",
                ["docs/oncall.md"],
                votes=[(None, True, 1), (None, True, 2)],
            )
        ],
    ),
]


def _user(turn: SeedTurn, thread_id: str) -> str:
    item = UserMessageItem(
        id=turn.question_id,
        thread_id=thread_id,
        created_at=turn.asked,
        content=[UserMessageTextContent(text=turn.question)],
        attachments=[],
        inference_options=InferenceOptions(),
    )
    return _ITEM.dump_json(item).decode()


def _assistant(turn: SeedTurn, thread_id: str) -> str:
    assert turn.answer is not None
    item = AssistantMessageItem(
        id=turn.answer_id,
        thread_id=thread_id,
        created_at=turn.asked + timedelta(seconds=3),
        content=[AssistantMessageContent(text=turn.answer)],
    )
    sources = [
        Source(number, location.rsplit("/", 1)[-1], location)
        for number, location in enumerate(turn.sources, start=1)
    ]
    return _ITEM.dump_json(annotate(item, sources)).decode()


async def seed(database: Database, threads: list[SeedThread] = THREADS) -> None:
    """Write `threads` (and two events no stored turn has: a store outage and an abandoned turn)."""
    async with database.sessions.begin() as session:
        for thread in threads:
            first = thread.turns[0].asked
            metadata = ThreadMetadata(id=thread.thread_id, created_at=first, title=thread.turns[0].question)
            session.add(ThreadRow(id=thread.thread_id, data=metadata.model_dump_json(), created_at=first))
            if thread.key is not None:
                session.add(ConversationRow(conversation_key=thread.key, thread_id=thread.thread_id))
            for turn in thread.turns:
                session.add(
                    ItemRow(
                        id=turn.question_id,
                        thread_id=thread.thread_id,
                        data=_user(turn, thread.thread_id),
                        created_at=turn.asked,
                    )
                )
                if turn.answer is None:
                    continue
                answered = turn.asked + timedelta(seconds=3)
                session.add(
                    ItemRow(
                        id=turn.answer_id,
                        thread_id=thread.thread_id,
                        data=_assistant(turn, thread.thread_id),
                        created_at=answered,
                    )
                )
                for user_id, positive, minutes in turn.votes:
                    session.add(
                        FeedbackRow(
                            answer_id=turn.answer_id,
                            thread_id=thread.thread_id,
                            positive=positive,
                            user_id=user_id,
                            created_at=answered + timedelta(minutes=minutes),
                        )
                    )
            await session.flush()
    for thread in threads:
        for turn in thread.turns:
            if turn.event is None:
                continue
            platform = thread.key.split(":", 1)[0] if thread.key else "chatkit"
            await database.record_answer(
                platform=platform,
                conversation_key=thread.key,
                thread_id=thread.thread_id,
                answer_id=turn.answer_id if turn.answer is not None else None,
                at=turn.asked + timedelta(seconds=4),
                **turn.event,  # type: ignore[arg-type]
            )
    await database.record_answer(
        platform="discord",
        outcome="failed",
        error_kind="vector_store",
        conversation_key="discord:G1:79",
        at=at(27, 8),
    )
    await database.record_answer(
        platform="slack",
        outcome="incomplete",
        conversation_key="slack:T1:C1:1000.9",
        at=at(27, 9),
        space="eng",
    )
    await database.record_answer(
        platform="discord",
        outcome="human_requested",
        conversation_key="discord:G1:78",
        answer_id="a_release",
        at=at(29, 15, 30),
    )


@asynccontextmanager
async def open_seeded(folder: Path) -> AsyncIterator[Database]:
    """A SQLite database in `folder` holding the seed."""
    database = Database(f"sqlite+aiosqlite:///{folder / 'seeded.sqlite3'}")
    await database.create()
    try:
        await seed(database)
        yield database
    finally:
        await database.dispose()
