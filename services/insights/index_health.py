"""Index health per source: the last run and its result, failures, counts, the next scheduled run,
the embedding model, and a run in progress with an ETA from its measured rate.

The run log (`data.index_runs`) keeps each run's state in its result JSON ("running" until it
ends as succeeded, failed or interrupted) and `last_run()` asks the run's lease whether a running
one is still alive. The table is read with `SELECT *`, and every column or key beyond
`recorded_at` and `result` is optional here, so rows from older versions read too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from data.database import Database
from data.records import IndexStats
from data.timestamps import as_utc, parse_utc
from services.indexing.contract import IndexProgress

DEFAULT_SOURCE = "documents"  # DOCS_PATHS, the one source before named sources exist
RUNS_READ = 200
_RUNNING = ("running", "started", "in_progress")


@dataclass(frozen=True, slots=True)
class FailedFile:
    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class RunningIndex:
    """A run under way; `eta_seconds` assumes the rate so far holds."""

    source: str
    phase: str
    documents_done: int
    documents_total: int | None
    chunks_written: int
    started_at: datetime
    full: bool
    rate: float | None  # documents per second so far
    eta_seconds: float | None


@dataclass(frozen=True, slots=True)
class SourceHealth:
    name: str
    last_run_at: datetime | None
    result: str  # ok, failed, empty, interrupted, running
    error: str | None
    documents_seen: int
    chunks_written: int
    seconds: float
    full: bool
    next_run_at: datetime | None
    failures: list[FailedFile] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class IndexHealth:
    sources: list[SourceHealth]
    running: list[RunningIndex]
    collection: str | None
    documents: int | None  # in the serving index
    chunks: int | None
    embedding_model: str | None


async def index_health(
    database: Database,
    *,
    stats: IndexStats | None,
    progress: IndexProgress | None,
    embedding_model: str | None,
    reindex_interval_minutes: float,
    now: datetime | None = None,
) -> IndexHealth:
    """The health of every source that has a recorded run, and the runs in progress."""
    now = now or datetime.now(UTC)
    async with database.engine.connect() as conn:
        query = text(f"SELECT * FROM index_runs ORDER BY id DESC LIMIT {RUNS_READ}")
        rows = [dict(row._mapping) for row in (await conn.execute(query)).all()]
    # The newest run's state needs its lease to tell running from died: the run log knows how.
    newest = await database.index_runs.last_run() if rows else None
    latest: dict[str, dict[str, Any]] = {}
    running: list[RunningIndex] = []
    for position, row in enumerate(rows):
        if position == 0 and newest is not None:
            row = {**row, "result": {**_json(row.get("result")), **newest}}
        record = _record(row)
        if record["result"] == "running":
            if position == 0 and not _expired(record, now):
                running.append(_running_from_record(record, now))
                continue
            record["result"] = "interrupted"  # a newer run started, or its lease ran out
        for per_source in _per_source(record):
            latest.setdefault(per_source["source"], per_source)
    if progress is not None:  # this process's own run: fresher than the lease's last heartbeat
        live = running_from_progress(progress, running[0].source if running else DEFAULT_SOURCE, time.time())
        running = [live, *running[1:]]
    interval = timedelta(minutes=reindex_interval_minutes) if reindex_interval_minutes > 0 else None
    sources = sorted((_health(record, interval) for record in latest.values()), key=lambda h: h.name)
    return IndexHealth(
        sources=sources,
        running=running,
        collection=stats.collection if stats is not None else None,
        documents=stats.documents if stats is not None else None,
        chunks=stats.chunks if stats is not None else None,
        embedding_model=stats.embedder_model_id if stats is not None else embedding_model,
    )


def running_from_progress(progress: IndexProgress, source: str, now: float) -> RunningIndex:
    """The live run of this process, with its rate and ETA."""
    elapsed = max(0.0, now - progress.started_at)
    rate = progress.documents_done / elapsed if elapsed > 0 and progress.documents_done else None
    return RunningIndex(
        source=source,
        phase=progress.phase,
        documents_done=progress.documents_done,
        documents_total=progress.documents_total,
        chunks_written=progress.chunks_written,
        started_at=datetime.fromtimestamp(progress.started_at, UTC),
        full=progress.full,
        rate=rate,
        eta_seconds=_eta(progress.documents_done, progress.documents_total, rate),
    )


def _eta(done: int, total: int | None, rate: float | None) -> float | None:
    if total is None or rate is None or rate <= 0:
        return None
    return max(0.0, (total - done) / rate)


def _json(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip().startswith("{"):
        loaded = json.loads(value)
        return loaded if isinstance(loaded, dict) else {}
    return {}


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, str):
        return parse_utc(value)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return None


def _source_name(row: Mapping[str, Any], result: Mapping[str, Any]) -> str:
    """A `source` column or key when runs name one; else the run's lease (one per index)."""
    named = row.get("source") or result.get("source")
    if named:
        return str(named)
    lease = str(result.get("lease") or "")
    return lease.removeprefix("index:") or DEFAULT_SOURCE


def _record(row: Mapping[str, Any]) -> dict[str, Any]:
    """One run-log row as plain values; columns win over the result JSON's keys."""
    result = _json(row.get("result"))
    progress = _json(row.get("progress")) or _json(result.get("progress"))
    state = str(row.get("status") or row.get("state") or result.get("status") or "").lower()
    if state in _RUNNING:
        outcome = "running"
    elif state == "interrupted":
        outcome = "interrupted"
    elif result.get("error") or state == "failed":
        outcome = "failed"
    elif result.get("empty_source"):
        outcome = "empty"
    else:
        outcome = "ok"  # succeeded, or a row from before runs had a status
    return {
        "source": _source_name(row, result),
        "result": outcome,
        "at": _when(row.get("finished_at"))
        or _when(result.get("finished_at"))
        or _when(row.get("recorded_at")),
        "started_at": _when(row.get("started_at"))
        or _when(progress.get("started_at"))
        or _when(row.get("recorded_at")),
        "lease_expires_at": _when(row.get("lease_expires_at")),
        "result_json": result,
        "progress": {**result, **progress},
    }


def _per_source(record: dict[str, Any]) -> list[dict[str, Any]]:
    """A run of named sources as one record per source (its counts, its error, its failures);
    a run from before sources were named stays one record."""
    result = record["result_json"]
    outcomes = [
        entry for entry in result.get("sources") or [] if isinstance(entry, dict) and entry.get("name")
    ]
    if not outcomes:
        return [record]
    records = []
    for entry in outcomes:
        failures = [f for f in result.get("failures") or [] if f.get("source") == entry["name"]]
        # A source that could not be read to the end and said why failed, even if the run went on.
        unread = not entry.get("complete") and failures
        error = entry.get("error") or result.get("error") or (failures[0].get("reason") if unread else None)
        outcome = "failed" if entry.get("error") or unread else record["result"]
        own = {**result, "seen": entry.get("seen", 0), "error": error, "failures": failures}
        records.append({**record, "source": str(entry["name"]), "result": outcome, "result_json": own})
    return records


def _expired(record: Mapping[str, Any], now: datetime) -> bool:
    """A "running" row whose lease ran out: its process died, the run never finished."""
    expires = record["lease_expires_at"]
    return expires is not None and expires < now


def _running_from_record(record: Mapping[str, Any], now: datetime) -> RunningIndex:
    """A run another process (replica) reports in the run log."""
    values = record["progress"]
    started = record["started_at"] or now
    done = int(values.get("documents_done") or 0)
    total = values.get("documents_total")
    elapsed = (now - started).total_seconds()
    rate = done / elapsed if elapsed > 0 and done else None
    return RunningIndex(
        source=record["source"],
        phase=str(values.get("phase") or "indexing"),
        documents_done=done,
        documents_total=int(total) if total is not None else None,
        chunks_written=int(values.get("chunks_written") or 0),
        started_at=started,
        full=bool(values.get("full")),
        rate=rate,
        eta_seconds=_eta(done, int(total) if total is not None else None, rate),
    )


def _health(record: Mapping[str, Any], interval: timedelta | None) -> SourceHealth:
    result = record["result_json"]
    outcome = record["result"]
    failures = [
        FailedFile(str(f.get("path", "")), str(f.get("reason", "")))
        for f in result.get("failures") or []
        if isinstance(f, dict)
    ]
    at = record["at"]
    return SourceHealth(
        name=record["source"],
        last_run_at=at,
        result=outcome,
        error=result.get("error"),
        documents_seen=int(result.get("seen") or 0),
        chunks_written=int(result.get("chunks_written") or 0),
        seconds=float(result.get("seconds") or 0.0),
        full=bool(result.get("full")),
        next_run_at=at + interval if at is not None and interval is not None else None,
        failures=failures,
    )
