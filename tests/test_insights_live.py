"""Insights from a bot that really ran: the real indexer into the session Weaviate, the real chat
service (offline model) wrapped by `RecordingAskService`, real votes, then the report."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from pathlib import Path

import pytest
from sqlalchemy import select

from configs.config import Settings
from data.database import AnswerEventRow, Database
from data.embeddings import LOCAL_MODEL_ID, LocalOnnxEmbedder
from data.vector_store import WeaviateVectorStore
from services.chat.contract import Answer, AskEvent, AskFailed, TextDelta
from services.chatkit_service import create_chat_service
from services.indexer import Indexer
from services.insights.config import InsightsConfig
from services.insights.recording import RecordingAskService
from services.insights.service import InsightsService
from services.rag import Retriever

MakeSettings = Callable[..., Settings]

INSTALL = """# Installing the widget server

Download the widget server installer from the releases page and run it. The installer asks for
the port number; choose port 8443 unless another service already uses it.
"""
BACKUPS = """# Backups

Backups of the widget server run every night at 02:00 and are kept for thirty days in the backup
bucket. Restore a backup with the restore command.
"""


@pytest.fixture
async def bot(
    make_settings: MakeSettings, tmp_path: Path, embedder: LocalOnnxEmbedder
) -> AsyncIterator[tuple]:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "install.md").write_text(INSTALL)
    (docs / "backups.md").write_text(BACKUPS)
    (docs / "scan.pdf").write_bytes(b"this is not a PDF")
    # the cosine floor, not the coverage judgement: this test is about what the insights record,
    # and the floor's verdict on a question about nothing in these two documents is certain
    settings = make_settings(docs_paths=[str(docs)], search_min_similarity=0.15)
    async with WeaviateVectorStore(settings) as store:
        database = Database(settings.database_dsn)
        await database.create()
        try:
            indexer = Indexer(settings, store, embedder, run_log=database.index_runs)
            await indexer.index()
            chat = await create_chat_service(settings, Retriever(settings, store, embedder), database)
            yield settings, store, database, indexer, chat
        finally:
            await database.dispose()


async def ask(service: RecordingAskService, key: str, text: str) -> list[AskEvent]:
    return [event async for event in service.ask(key, text, user_id="U9")]


async def test_a_real_conversation_shows_up_in_the_report(bot: tuple, embedder: LocalOnnxEmbedder) -> None:
    _settings, store, database, indexer, chat = bot
    slack = RecordingAskService(chat, database, "slack", space_of=lambda key: "eng")

    covered = await ask(slack, "slack:T1:C1:1.1", "How do I install the widget server?")
    answer = covered[-1]
    assert isinstance(answer, Answer) and answer.sources and any(isinstance(e, TextDelta) for e in covered)
    uncovered = (await ask(slack, "slack:T1:C1:2.2", "Who approves travel expense reports?"))[-1]
    assert isinstance(uncovered, Answer) and not uncovered.sources
    assert isinstance((await ask(slack, "slack:T1:C2:3.3", "   "))[-1], AskFailed)
    async with aclosing(slack.ask("slack:T1:C2:4.4", "How are backups kept?", user_id="U9")) as events:
        async for _ in events:
            break  # the adapter went away after the status: the turn is incomplete
    await slack.record_feedback(answer.answer_id, positive=False, user_id="U7")

    async with database.sessions() as session:
        rows = list(await session.scalars(select(AnswerEventRow).order_by(AnswerEventRow.id)))
    assert [(r.outcome, r.error_kind, r.space, r.user_id) for r in rows] == [
        ("answered", None, "eng", "U9"),
        ("not_covered", None, "eng", "U9"),
        ("failed", "empty_question", "eng", "U9"),
        ("incomplete", None, "eng", "U9"),
    ]
    assert rows[0].answer_id == answer.answer_id and rows[0].thread_id == answer.thread_id
    assert rows[0].latency_ms is not None and rows[0].first_text_ms is not None
    assert 0 < rows[0].first_text_ms <= rows[0].latency_ms

    insights = InsightsService(database, embedder, InsightsConfig(), store=store, indexer=indexer)
    report = await insights.report(insights.filters("1h"))
    o = report.overview
    # neither the empty message nor the one abandoned at its status reached a thread
    assert (o.questions, o.answered, o.not_covered, o.unanswered, o.down) == (2, 1, 1, 0, 1)
    assert report.usage.by_platform == {"slack": 2}
    assert report.usage.timed_answers == 2 and report.usage.errors == {"empty_question": 1, "incomplete": 1}
    assert [[t.question for t in c.turns] for c in report.coverage_gaps] == [
        ["Who approves travel expense reports?"],  # newest first
        ["How do I install the widget server?"],
    ]
    (worst,) = report.feedback.worst_answers
    assert worst.question == "How do I install the widget server?"
    assert any(s.location.endswith("install.md") for s in worst.sources)
    assert sorted(b.location for b in report.feedback.blamed_sources) == sorted(
        s.location for s in worst.sources
    )

    index = report.index
    (source,) = index.sources
    assert source.result == "ok" and source.documents_seen == 3 and source.chunks_written >= 2
    assert any(f.path.endswith("scan.pdf") and f.reason for f in source.failures)
    assert (index.documents, index.embedding_model) == (2, LOCAL_MODEL_ID)
    assert index.running == []
