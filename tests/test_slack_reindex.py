"""`/reindex` over signed HTTP with the real Indexer, embedder and Weaviate."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from counting_embedder import CountingEmbedder
from fake_slack import ADMIN_USER_ID, MEMBER_USER_ID, FakeSlack
from slack_harness import ScriptedAsk, running_bot

from configs.config import Settings
from data.database import Database
from data.embeddings import Embedder
from data.vector_store import WeaviateVectorStore
from services.indexer import Indexer


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """Forty small Markdown documents: enough work for progress reports."""
    folder = tmp_path / "docs"
    folder.mkdir()
    for n in range(40):
        body = "\n\n".join(f"Paragraph {p} of topic {n}: backups, restores and upgrades." for p in range(12))
        (folder / f"topic{n:02}.md").write_text(f"# Topic {n}\n\n## Details\n\n{body}\n", encoding="utf-8")
    return folder


@pytest.fixture
async def live_indexer(
    make_settings: Callable[..., Settings], embedder: Embedder, docs: Path
) -> AsyncIterator[tuple[Indexer, WeaviateVectorStore]]:
    settings = make_settings(docs_paths=[str(docs)])
    store = WeaviateVectorStore(settings)
    await store.connect()
    try:
        yield Indexer(settings, store, embedder), store
    finally:
        await store.close()


def ack_text(body: str) -> str:
    """The message in a command's HTTP acknowledgement (Bolt sends plain text, or JSON with blocks)."""
    return str(json.loads(body)["text"]) if body.startswith("{") else body


def texts(fake: FakeSlack) -> list[str]:
    return [str(body.get("text")) for _, body, _ in fake.responses]


async def test_non_admin_is_refused_and_nothing_runs(make_settings, live_indexer, docs) -> None:
    indexer, store = live_indexer
    async with running_bot(
        make_settings, ScriptedAsk(), indexer, slack_admin_user_ids=[ADMIN_USER_ID], docs_paths=[str(docs)]
    ) as h:
        status, body = await h.sender.command(
            "/reindex", "full", user_id=MEMBER_USER_ID, response_url=h.fake.response_url()
        )
        assert status == 200 and "only admins" in ack_text(body) and "SLACK_ADMIN_USER_IDS" in ack_text(body)
        assert not indexer.running
    async with running_bot(make_settings, ScriptedAsk(), indexer, docs_paths=[str(docs)]) as h:
        status, body = await h.sender.command(
            "/reindex", "", user_id=MEMBER_USER_ID, response_url=h.fake.response_url()
        )
        assert status == 200 and "workspace admins and owners" in ack_text(body)
        assert [c.args["user"] for c in h.fake.calls_to("users.info")] == [MEMBER_USER_ID]
        await asyncio.sleep(0.5)
        assert not indexer.running and h.fake.responses == []
    assert await store.stats() is None  # nothing was indexed


async def test_admin_reindex_acks_fast_reports_progress_and_result(make_settings, live_indexer, docs) -> None:
    indexer, _ = live_indexer
    async with running_bot(make_settings, ScriptedAsk(), indexer, docs_paths=[str(docs)]) as h:
        sent = time.monotonic()
        status, body = await h.sender.command(
            "/reindex", "", user_id=ADMIN_USER_ID, response_url=h.fake.response_url()
        )
        acked = time.monotonic() - sent
        print(f"\n/reindex acknowledged in {acked * 1000:.0f} ms")
        assert status == 200 and acked < 3.0
        assert ack_text(body).startswith("Incremental reindex started for") and str(docs) in ack_text(body)
        assert [c.args["user"] for c in h.fake.calls_to("users.info")] == [ADMIN_USER_ID]  # is_admin: True

        status, body = await h.sender.command("/reindex", "status", user_id=MEMBER_USER_ID, response_url="")
        assert "A reindex is running" in ack_text(body) or "No reindex is running" in ack_text(body)

        await h.fake.wait_for(lambda: any("documents seen" in t for t in texts(h.fake)), timeout=120)
        progress = [t for t in texts(h.fake) if t.startswith("Reindex progress")]
        [report] = [t for t in texts(h.fake) if "documents seen" in t]
        assert progress, "expected at least one progress message"
        assert len(progress) <= 3 and len(h.fake.responses) <= 5  # a response_url takes five messages
        assert "40 documents seen: 40 added" in report and report.startswith(":white_check_mark:")
        sent_at = [at for _, body, at in h.fake.responses if str(body["text"]).startswith("Reindex progress")]
        assert all(b - a >= 0.4 for a, b in itertools.pairwise(sent_at))  # spaced out
        status, body = await h.sender.command("/reindex", "status", user_id=MEMBER_USER_ID, response_url="")
        assert "No reindex is running" in ack_text(body)


async def test_two_concurrent_reindex_requests_run_once(make_settings, live_indexer, docs) -> None:
    indexer, _ = live_indexer
    async with running_bot(
        make_settings, ScriptedAsk(), indexer, slack_admin_user_ids=[ADMIN_USER_ID], docs_paths=[str(docs)]
    ) as h:
        urls = [h.fake.response_url("first"), h.fake.response_url("second")]
        results = await asyncio.gather(
            *(h.sender.command("/reindex", "full", user_id=ADMIN_USER_ID, response_url=url) for url in urls)
        )
        acks = sorted(ack_text(body) for _, body in results)
        assert acks[0].startswith("A reindex is already running: ") and "(full rebuild)" in acks[0]
        assert acks[1].startswith("Full rebuild started")
        await h.fake.wait_for(lambda: any("documents seen" in t for t in texts(h.fake)), timeout=120)
        await asyncio.sleep(0.5)
        assert len([t for t in texts(h.fake) if "documents seen" in t]) == 1
        assert not indexer.running


async def test_help_and_unknown_options(make_settings, live_indexer) -> None:
    indexer, _ = live_indexer
    async with running_bot(make_settings, ScriptedAsk(), indexer) as h:
        _, body = await h.sender.command("/reindex", "help", user_id=MEMBER_USER_ID, response_url="")
        assert "/reindex full" in ack_text(body) and "/reindex status" in ack_text(body)
        _, body = await h.sender.command("/reindex", "everything", user_id=ADMIN_USER_ID, response_url="")
        assert ack_text(body).startswith("I don't know `everything`")
        assert not indexer.running and h.fake.calls_to("users.info") == []


async def test_a_failed_run_reports_why_and_the_partial_counts(
    make_settings, live_indexer, embedder, docs
) -> None:
    _, store = live_indexer
    failing = Indexer(store.settings, store, CountingEmbedder(embedder, fail_on_call=1))
    async with running_bot(make_settings, ScriptedAsk(), failing, docs_paths=[str(docs)]) as h:
        _, body = await h.sender.command(
            "/reindex", "full", user_id=ADMIN_USER_ID, response_url=h.fake.response_url()
        )
        assert ack_text(body).startswith("Full rebuild started")
        await h.fake.wait_for(lambda: any(t.startswith(":x:") for t in texts(h.fake)), timeout=60)
        [report] = [t for t in texts(h.fake) if t.startswith(":x:")]
        assert report.startswith(":x: Indexing stopped while") and "EmbedderOutage" in report
        assert "FAILED" in report  # the partial counts follow the reason
    assert not failing.running


async def test_reindex_one_named_source_and_see_each_source(make_settings, embedder, tmp_path) -> None:
    names = ["handbook", "runbooks"]
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{name}.md").write_text(f"# {name}\n\nWhat the {name} say about deploys.\n")
    sources = tmp_path / "sources.toml"
    sources.write_text("".join(f'[sources.{name}]\nlocation = "{name}"\n' for name in names))
    settings = make_settings(sources_file=sources, data_dir=tmp_path / "data")
    store = WeaviateVectorStore(settings)
    await store.connect()
    database = Database(settings.database_dsn)
    await database.create()
    indexer = Indexer(settings, store, embedder, run_log=database.index_runs)
    try:
        async with running_bot(make_settings, ScriptedAsk(), indexer, sources_file=sources) as h:
            _, body = await h.sender.command(
                "/reindex", "handbook", user_id=ADMIN_USER_ID, response_url=h.fake.response_url()
            )
            assert ack_text(body).startswith("Incremental reindex started for `handbook`.")
            await h.fake.wait_for(lambda: any("documents seen" in t for t in texts(h.fake)), timeout=60)
            [report] = [t for t in texts(h.fake) if "documents seen" in t]
            assert "1 documents seen: 1 added" in report

            command = h.sender.command
            _, body = await command("/reindex", "full handbok x", user_id=ADMIN_USER_ID, response_url="")
            assert ack_text(body) == "No source is called `handbok`, `x`.\nSources: `handbook`, `runbooks`."
            _, body = await h.sender.command("/reindex", "status", user_id=MEMBER_USER_ID, response_url="")
            lines = ack_text(body).splitlines()
            assert lines[0].startswith("No reindex is running")
            assert lines[1].startswith("• handbook (local ") and "1 documents, last run" in lines[1]
            assert lines[2].startswith("• runbooks (local ") and "never indexed" in lines[2]
        stats = await store.stats()
        assert stats is not None and stats.documents == 1  # only the named source ran
    finally:
        await store.close()
        await database.dispose()
