"""The insights report from a seeded database: every number is known (tests/insights_seed.py).

Runs on SQLite and on a throwaway PostgreSQL cluster (the fixtures of tests/test_chat_store.py),
with the real local embedder clustering the coverage gaps.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from insights_seed import NOW, at, open_seeded, seed
from test_chat_store import database, dsn, postgres_dsn, server_dsn  # noqa: F401 (fixtures)

from data.database import Database
from data.embeddings import LocalOnnxEmbedder
from services.indexing.contract import IndexFailure, IndexProgress, IndexResult
from services.insights.config import InsightsConfig
from services.insights.index_health import running_from_progress
from services.insights.records import Filters
from services.insights.report_format import render_csv, render_json, render_report, render_text
from services.insights.sections import DayCount
from services.insights.service import InsightsService, InvalidPeriod, parse_since

WEEK = Filters(NOW - timedelta(days=7), NOW)


def insights(db: Database, embedder: LocalOnnxEmbedder, **config: object) -> InsightsService:
    return InsightsService(db, embedder, InsightsConfig(**config), clock=lambda: NOW)  # type: ignore[arg-type]


@pytest.fixture
async def seeded(database: Database) -> Database:  # noqa: F811 (the imported fixture)
    """The seed on SQLite and on PostgreSQL: for the tests of the numbers themselves."""
    await seed(database)
    return database


@pytest.fixture
async def seeded_sqlite(tmp_path: Path) -> AsyncIterator[Database]:
    """The seed on SQLite only: for tests of what is done with the numbers."""
    async with open_seeded(tmp_path) as db:
        yield db


async def test_the_weeks_numbers_are_exact(seeded: Database, embedder: LocalOnnxEmbedder) -> None:
    report = await insights(seeded, embedder).report(WEEK)

    o = report.overview
    # 10 questions in the week (the console one is older): 4 answered, 5 not covered, 1 failed
    assert (o.questions, o.answered, o.not_covered, o.unanswered) == (10, 4, 5, 1)
    # U4's 👎 on the deploy answer was changed to 👍: only the latest vote counts
    assert (o.up, o.down, o.satisfaction) == (5, 3, 5 / 8)

    u = report.usage
    assert u.by_platform == {"slack": 6, "discord": 3, "chatkit": 1}
    assert u.by_day == [
        DayCount(date(2026, 11, 26), "chatkit", None, 1),
        DayCount(date(2026, 11, 26), "slack", "ops", 1),
        DayCount(date(2026, 11, 27), "slack", "eng", 1),
        DayCount(date(2026, 11, 28), "discord", None, 1),
        DayCount(date(2026, 11, 28), "slack", "eng", 1),
        DayCount(date(2026, 11, 29), "discord", None, 2),
        DayCount(date(2026, 11, 29), "slack", "eng", 1),
        DayCount(date(2026, 11, 29), "slack", "ops", 2),
    ]
    # latencies 1, 1.5, 2, 2.5, 3, 4, 5 s; first text 0.2 ... 1.0 s (linear interpolation)
    assert u.timed_answers == 7
    assert u.latency_p50 == pytest.approx(2.5) and u.latency_p95 == pytest.approx(4.7)
    assert u.first_text_p50 == pytest.approx(0.5) and u.first_text_p95 == pytest.approx(0.94)
    assert u.errors == {"incomplete": 1, "timeout": 1, "vector_store": 1}

    fb = report.feedback
    assert (fb.up, fb.down) == (5, 3)
    assert [(d.key, d.up, d.down) for d in fb.by_day] == [
        ("2026-11-26", 5, 0),
        ("2026-11-27", 0, 2),
        ("2026-11-29", 0, 1),
    ]
    assert [(p.key, p.up, p.down) for p in fb.by_place] == [
        ("slack T1 #C2", 3, 0),
        ("chatkit", 2, 0),
        ("slack T1 #C1", 0, 2),
        ("discord G1 #78", 0, 1),
    ]
    worst = [(a.answer_id, a.up, a.down, [s.location for s in a.sources]) for a in fb.worst_answers]
    assert worst == [
        ("a_pw3", 0, 2, ["docs/accounts.md", "docs/handbook.md"]),
        ("a_release", 0, 1, ["docs/releases.md", "docs/handbook.md"]),
    ]
    assert [(s.location, s.downvoted_answers) for s in fb.blamed_sources] == [
        ("docs/handbook.md", 2),
        ("docs/accounts.md", 1),
        ("docs/releases.md", 1),
    ]
    assert fb.human_requests == {"discord G1 #78": 1}

    gaps = [
        (c.count, c.not_covered, c.downvoted, [t.question_id for t in c.turns]) for c in report.coverage_gaps
    ]
    assert gaps == [
        (3, 2, 1, ["q_pw1", "q_pw2", "q_pw3"]),
        (2, 2, 0, ["q_vpn2", "q_vpn1"]),
        (1, 0, 1, ["q_release"]),  # newer than the parking question: ties go newest first
        (1, 1, 0, ["q_park"]),  # "The documents don't cover this." without events: read from the answer
    ]
    password = report.coverage_gaps[0]
    assert password.label == "How do I reset my password?" and password.key == "q_pw1"
    assert set(password.keywords[:2]) == {"password", "reset"}
    assert password.thread_ids == ["thr_pw1", "thr_pw2", "thr_pw3"]
    assert report.coverage_gaps[1].thread_ids == ["thr_vpn"]


async def test_space_channel_and_period_filters(seeded: Database, embedder: LocalOnnxEmbedder) -> None:
    service = insights(seeded, embedder)
    eng = await service.report(Filters(WEEK.since, WEEK.until, space="eng"))
    assert (eng.overview.questions, eng.overview.not_covered, eng.overview.answered) == (3, 2, 1)
    assert (eng.feedback.up, eng.feedback.down) == (0, 2)
    assert eng.usage.latency_p50 == pytest.approx(2.0) and eng.usage.errors == {"incomplete": 1}
    assert [c.count for c in eng.coverage_gaps] == [3]

    c2 = await service.report(Filters(WEEK.since, WEEK.until, channel="C2"))
    assert c2.overview.questions == 3 and (c2.feedback.up, c2.feedback.down) == (3, 0)
    assert [c.key for c in c2.coverage_gaps] == ["q_vpn2"]

    discord = await service.report(Filters(WEEK.since, WEEK.until, channel="discord"))
    assert (discord.overview.questions, discord.overview.unanswered) == (3, 1)
    assert discord.usage.errors == {"timeout": 1, "vector_store": 1}

    two_days = await service.report(service.filters("2d"))  # from 28 Nov 12:00
    assert two_days.overview.questions == 6  # pw1, both vpn, park, release, keys
    assert (two_days.feedback.up, two_days.feedback.down) == (0, 1)

    month = await service.report(service.filters("2026-11-01"))
    assert month.overview.questions == 11 and month.feedback.down == 4  # the console question too


async def test_text_json_and_csv_carry_the_same_numbers(
    seeded_sqlite: Database, embedder: LocalOnnxEmbedder
) -> None:
    report = await insights(seeded_sqlite, embedder).report(WEEK)

    data = json.loads(render_json(report))
    assert data["overview"]["questions"] == 10 and data["overview"]["satisfaction"] == 0.625
    assert [g["questions"] for g in data["coverage_gaps"]] == [3, 2, 1, 1]
    assert data["coverage_gaps"][0]["conversations"] == ["thr_pw1", "thr_pw2", "thr_pw3"]
    assert data["usage"]["latency_p95"] == pytest.approx(4.7)

    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    value = {(r["section"], r["item"], r["metric"]): r["value"] for r in rows}
    assert value["overview", "", "questions"] == "10"
    assert value["coverage_gaps", "gap:q_pw1", "questions"] == "3"
    assert value["feedback", "source:docs/handbook.md", "downvoted_answers"] == "2"
    assert value["usage", "error:timeout", "turns"] == "1"
    assert value["usage", "day:2026-11-29 slack ops", "questions"] == "2"

    lines = render_text(report).splitlines()
    assert "  Questions: 10 — answered 4, not covered 5, no answer 1" in lines
    assert "  Votes: 5 👍, 3 👎 (62% positive)" in lines
    assert "Coverage gaps (4 topics, 7 questions)" in lines
    assert any(line.startswith("  1. “How do I reset my password?” — 3 questions") for line in lines)
    assert "  Answer latency: p50 2.50s, p95 4.70s (7 timed answers)" in lines
    assert "  Errors: incomplete 1, timeout 1, vector_store 1" in lines
    assert "  Ask a human: discord G1 #78 1" in lines


async def test_user_ids_appear_only_when_configured(
    seeded_sqlite: Database, embedder: LocalOnnxEmbedder
) -> None:
    hidden = await render_report(insights(seeded_sqlite, embedder), output="json")
    assert "U1" not in hidden and "downvoters" not in hidden and "user_id" not in hidden
    shown = json.loads(
        await render_report(insights(seeded_sqlite, embedder, show_user_ids=True), output="json")
    )
    assert shown["feedback"]["worst_answers"][0]["downvoters"] == ["U1", "U2"]
    assert shown["coverage_gaps"][0]["turns"][0]["user_id"] == "U1"
    text_report = await render_report(insights(seeded_sqlite, embedder, show_user_ids=True))
    assert "    👎 by: U1, U2" in text_report.splitlines()


async def test_conversation_behind_a_gap(seeded_sqlite: Database, embedder: LocalOnnxEmbedder) -> None:
    service = insights(seeded_sqlite, embedder)
    conversation = await service.conversation("thr_vpn")
    assert conversation is not None
    assert conversation.where.label == "slack T1 #C2"
    assert [(m.role, m.text[:20]) for m in conversation.messages][::2] == [
        ("user", "How do I configure t"),
        ("user", "VPN setup on Ubuntu"),
    ]
    assert [t.outcome for t in conversation.turns] == ["not_covered", "not_covered"]
    deploy = await service.conversation("thr_deploy")
    assert deploy is not None and (deploy.turns[0].up, deploy.turns[0].down) == (3, 0)
    assert deploy.messages[1].sources[0].location == "docs/deploy.md"
    assert await service.conversation("thr_missing") is None
    gap = await service.coverage_gap(WEEK, "q_pw3")  # any member's id finds its cluster
    assert gap is not None and gap.key == "q_pw1"


def test_periods_read_as_people_type_them() -> None:
    assert parse_since("7d", NOW) == NOW - timedelta(days=7)
    assert parse_since("24h", NOW) == NOW - timedelta(hours=24)
    assert parse_since("2w", NOW) == NOW - timedelta(weeks=2)
    assert parse_since("30m", NOW) == NOW - timedelta(minutes=30)
    assert parse_since("2026-11-20", NOW) == at(20, 0)
    with pytest.raises(InvalidPeriod, match="7d, 24h"):
        parse_since("last week", NOW)


def index_result(**values: object) -> IndexResult:
    fields: dict[str, object] = {
        "seen": 0,
        "added": 0,
        "updated": 0,
        "unchanged": 0,
        "deleted": 0,
        "failed": 0,
        "failures": [],
        "chunks_written": 0,
        "embeddings_computed": 0,
        "seconds": 0.0,
        "full": False,
        "empty_source": False,
        "collection": "DocChunks_1",
    }
    return IndexResult(**{**fields, **values})  # type: ignore[arg-type]


async def test_index_health_follows_runs_through_the_run_log_and_its_lease(
    tmp_path: Path, embedder: LocalOnnxEmbedder
) -> None:
    """Runs recorded the way the indexer records them: a lease, a running row, then the result."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/runs.sqlite3")
    await db.create()
    runs = db.index_runs
    # the real clock: a running run's rate is measured against it
    service = InsightsService(db, embedder, InsightsConfig(reindex_interval_minutes=60))
    try:
        assert (await service.index_health()).sources == []

        lease, run_id = await runs.begin_run("index:DocChunks", full=False, ttl=60, heartbeat=5, progress={})
        await runs.record_run(index_result(seen=40, chunks_written=310, seconds=12.5), run_id=run_id)
        await lease.release()
        (ok,) = (await service.index_health()).sources
        assert (ok.name, ok.result, ok.documents_seen, ok.chunks_written) == ("DocChunks", "ok", 40, 310)
        assert ok.last_run_at is not None and ok.next_run_at == ok.last_run_at + timedelta(minutes=60)

        failures = [IndexFailure("notes/a.pdf", "not a PDF file")]
        lease, run_id = await runs.begin_run("index:DocChunks", full=True, ttl=60, heartbeat=5, progress={})
        failed = index_result(
            seen=3, failed=1, failures=failures, error="Weaviate refused a batch", full=True
        )
        await runs.record_run(failed, run_id=run_id)
        await lease.release()
        (bad,) = (await service.index_health()).sources
        assert (bad.result, bad.error, bad.full) == ("failed", "Weaviate refused a batch", True)
        assert [(f.path, f.reason) for f in bad.failures] == [("notes/a.pdf", "not a PDF file")]

        started = time.time() - 20
        progress = {
            "phase": "indexing",
            "documents_total": 40,
            "documents_done": 10,
            "chunks_written": 80,
            "started_at": started,
            "full": False,
        }
        lease, _ = await runs.begin_run("index:DocChunks", full=False, ttl=60, heartbeat=5, progress=progress)
        health = await service.index_health()
        (run,) = health.running
        assert (run.source, run.phase, run.documents_done, run.documents_total) == (
            "DocChunks",
            "indexing",
            10,
            40,
        )
        assert run.rate == pytest.approx(0.5, rel=0.05) and run.eta_seconds == pytest.approx(60, rel=0.05)
        assert [s.result for s in health.sources] == ["failed"]  # the last finished run still shows

        await lease.release()  # the process "died": nobody holds the lease, the row still says running
        health = await service.index_health()
        assert health.running == [] and [s.result for s in health.sources] == ["interrupted"]
        assert health.embedding_model == embedder.model_id
    finally:
        await db.dispose()


def test_a_live_run_gets_its_rate_and_eta() -> None:
    progress = IndexProgress("indexing", 40, 10, 80, started_at=1000.0, full=False)
    run = running_from_progress(progress, "docs", now=1020.0)
    assert (run.rate, run.eta_seconds) == (0.5, 60.0)
    assert (
        running_from_progress(
            IndexProgress("scanning", None, 0, 0, 1000.0, False), "docs", 1001.0
        ).eta_seconds
        is None
    )
