"""POST /chatkit turns in the insights: timed like the adapters' turns, counted once.

The real HTTP app and chat service (offline model) over a real socket, on the session Weaviate
with two indexed documents; the answer events are read back with SQL and through the report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from chatkit_support import add_message_request, chatkit_http, create_request
from sqlalchemy import select

from configs.config import Settings
from data.database import AnswerEventRow, Database
from data.embeddings import LocalOnnxEmbedder
from data.vector_store import WeaviateVectorStore
from services.indexer import Indexer
from services.insights.config import InsightsConfig
from services.insights.service import InsightsService

MakeSettings = Callable[..., Settings]

INSTALL = """# Installing the widget server

Download the widget server installer from the releases page and run it. The installer asks for
the port number; choose port 8443 unless another service already uses it.
"""


async def test_chatkit_turns_are_timed_and_counted_once(
    make_settings: MakeSettings, tmp_path: Path, embedder: LocalOnnxEmbedder
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "install.md").write_text(INSTALL)
    settings = make_settings(docs_paths=[str(docs)], search_min_similarity=0.15)
    async with WeaviateVectorStore(settings) as store:
        await Indexer(settings, store, embedder).index()
        async with chatkit_http(settings, store, embedder) as client:
            began = time.perf_counter()
            status, events = await client.post(create_request("How do I install the widget server?"))
            elapsed_ms = (time.perf_counter() - began) * 1000
            assert status == 200 and events[-1]["item"]["type"] == "assistant_message", events
            thread_id, answer_id = events[0]["thread"]["id"], events[-1]["item"]["id"]
            status, events = await client.post(create_request("Who approves travel expense reports?"))
            assert status == 200 and events[-1]["item"]["type"] == "assistant_message", events
            other_thread = events[0]["thread"]["id"]
            # refused before it started (someone else's thread): no turn, nothing recorded
            status, _ = await client.post(add_message_request(thread_id, "And then?"), user="bob")
            assert status == 404

    database = Database(settings.database_dsn)
    try:
        async with database.sessions() as session:
            rows = list(await session.scalars(select(AnswerEventRow).order_by(AnswerEventRow.id)))
        assert [(r.platform, r.outcome, r.user_id, r.thread_id, r.conversation_key) for r in rows] == [
            ("chatkit", "answered", "alice", thread_id, None),
            ("chatkit", "not_covered", "alice", other_thread, None),
        ]
        assert rows[0].answer_id == answer_id
        for row in rows:
            assert row.latency_ms is not None and row.first_text_ms is not None
            assert 0 < row.first_text_ms <= row.latency_ms
        assert rows[0].latency_ms <= elapsed_ms  # timed inside the request the client waited for

        insights = InsightsService(database, embedder, InsightsConfig())
        report = await insights.report(insights.filters("1h"))
        assert (report.overview.questions, report.overview.answered, report.overview.not_covered) == (2, 1, 1)
        usage = report.usage
        assert usage.by_platform == {"chatkit": 2} and usage.timed_answers == 2
        latencies = sorted(row.latency_ms / 1000 for row in rows if row.latency_ms is not None)
        assert usage.latency_p50 == sum(latencies) / 2 and usage.first_text_p50 is not None
    finally:
        await database.dispose()
