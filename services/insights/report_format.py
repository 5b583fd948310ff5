"""The report as text (for a terminal), JSON (for scripts) and CSV (for a spreadsheet).

All three carry the same sections and numbers. User ids appear only when INSIGHTS_SHOW_USER_IDS
is set; the CSV is "long" (section, item, metric, value), so every section fits one sheet.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any, Literal

from services.insights.clustering import Cluster
from services.insights.service import InsightsService, Report

ReportFormat = Literal["text", "json", "csv"]

_TIME = "%Y-%m-%d %H:%M"


def _iso(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _percent(rate: float | None) -> str:
    return "no votes" if rate is None else f"{rate:.0%} positive"


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}s"


async def render_report(
    insights: InsightsService,
    *,
    since: str = "7d",
    until: str | None = None,
    space: str | None = None,
    channel: str | None = None,
    output: ReportFormat = "text",
) -> str:
    """What `main.py report` prints; raises `InvalidPeriod` for a `since` it cannot read."""
    report = await insights.report(insights.filters(since, until=until, space=space, channel=channel))
    show = insights.config.show_user_ids
    if output == "json":
        return render_json(report, show) + "\n"
    if output == "csv":
        return render_csv(report, show)
    return render_text(report, show)


def cluster_dict(cluster: Cluster, show_user_ids: bool) -> dict[str, Any]:
    return {
        "key": cluster.key,
        "label": cluster.label,
        "keywords": cluster.keywords,
        "questions": cluster.count,
        "not_covered": cluster.not_covered,
        "downvoted": cluster.downvoted,
        "newest_at": cluster.newest_at,
        "conversations": cluster.thread_ids,
        "turns": [
            {
                "question_id": turn.question_id,
                "thread_id": turn.thread_id,
                "question": turn.question,
                "asked_at": turn.asked_at,
                "outcome": turn.outcome,
                "place": turn.where.label,
                "space": turn.space,
                "up": turn.up,
                "down": turn.down,
                **({"user_id": turn.user_id} if show_user_ids else {}),
            }
            for turn in cluster.turns
        ],
    }


def report_dict(report: Report, show_user_ids: bool = False) -> dict[str, Any]:
    """The whole report as JSON-able values (datetimes stay objects until `render_json`)."""
    feedback = dataclasses.asdict(report.feedback)
    for answer in feedback["worst_answers"]:
        if not show_user_ids:
            answer.pop("downvoters")
    return {
        "period": {
            "since": report.filters.since,
            "until": report.filters.until,
            "space": report.filters.space,
            "channel": report.filters.channel,
        },
        "generated_at": report.generated_at,
        "overview": {**dataclasses.asdict(report.overview), "satisfaction": report.overview.satisfaction},
        "coverage_gaps": [cluster_dict(c, show_user_ids) for c in report.coverage_gaps],
        "feedback": {**feedback, "rate": report.feedback.rate},
        "usage": dataclasses.asdict(report.usage),
        "index": dataclasses.asdict(report.index),
    }


def render_json(report: Report, show_user_ids: bool = False) -> str:
    return json.dumps(report_dict(report, show_user_ids), default=_iso, ensure_ascii=False, indent=2)


def render_text(report: Report, show_user_ids: bool = False) -> str:
    return "\n".join(_text_lines(report, show_user_ids)) + "\n"


def _text_lines(report: Report, show_user_ids: bool) -> Iterator[str]:
    f = report.filters
    scope = "".join(
        f", {name} {value}" for name, value in (("space", f.space), ("channel", f.channel)) if value
    )
    yield f"Insights {f.since:{_TIME}} → {f.until:{_TIME}} UTC{scope}"
    o = report.overview
    yield ""
    yield "Overview"
    yield (
        f"  Questions: {o.questions} — answered {o.answered}, not covered {o.not_covered}, "
        f"no answer {o.unanswered}"
    )
    yield f"  Votes: {o.up} 👍, {o.down} 👎 ({_percent(o.satisfaction)})"
    gaps = report.coverage_gaps
    yield ""
    yield f"Coverage gaps ({len(gaps)} topics, {sum(c.count for c in gaps)} questions)"
    for number, cluster in enumerate(gaps, start=1):
        yield (
            f"  {number}. “{cluster.label}” — {cluster.count} questions ({cluster.not_covered} not covered, "
            f"{cluster.downvoted} 👎), newest {cluster.newest_at:{_TIME}}"
        )
        if cluster.keywords:
            yield f"     keywords: {', '.join(cluster.keywords)}"
        yield f"     conversations: {', '.join(cluster.thread_ids)}"
        if show_user_ids and (askers := sorted({t.user_id for t in cluster.turns if t.user_id})):
            yield f"     asked by: {', '.join(askers)}"
    yield from _feedback_lines(report, show_user_ids)
    yield from _usage_lines(report)
    yield from _index_lines(report)


def _feedback_lines(report: Report, show_user_ids: bool) -> Iterator[str]:
    fb = report.feedback
    yield ""
    yield "Feedback"
    yield f"  {fb.up} 👍, {fb.down} 👎 ({_percent(fb.rate)})"
    for day in fb.by_day:
        yield f"  {day.key}: {day.up} 👍, {day.down} 👎"
    for place in fb.by_place:
        yield f"  {place.key}: {place.up} 👍, {place.down} 👎 ({_percent(place.rate)})"
    if fb.worst_answers:
        yield "  Worst-rated answers:"
    for answer in fb.worst_answers:
        sources = ", ".join(s.location for s in answer.sources) or "no sources"
        yield f"  - {answer.down} 👎 {answer.up} 👍 “{answer.question}” ({answer.place}) — sources: {sources}"
        if show_user_ids and answer.downvoters:
            yield f"    👎 by: {', '.join(answer.downvoters)}"
    if fb.blamed_sources:
        yield "  Sources cited by 👎 answers:"
    for source in fb.blamed_sources:
        yield f"  - {source.location}: {source.downvoted_answers} answers"
    humans = ", ".join(f"{place} {count}" for place, count in fb.human_requests.items())
    yield f"  Ask a human: {humans or 'none recorded'}"
    if fb.human_answers:
        yield "  Questions the docs did not answer, and what a person replied (docs to write):"
    for pair in fb.human_answers:
        reply = f"{pair.expert}: “{pair.reply}”" if pair.reply else "waiting for an expert"
        yield f"  - [{pair.space}] “{pair.question}” → {reply}"


def _usage_lines(report: Report) -> Iterator[str]:
    u = report.usage
    yield ""
    yield "Usage"
    for day in u.by_day:
        yield f"  {day.day.isoformat()}  {day.platform:<8} {day.space or '(no space)':<16} {day.questions}"
    platforms = ", ".join(f"{platform} {count}" for platform, count in u.by_platform.items())
    yield f"  By platform: {platforms or 'no questions'}"
    yield (
        f"  Answer latency: p50 {_seconds(u.latency_p50)}, p95 {_seconds(u.latency_p95)} "
        f"({u.timed_answers} timed answers)"
    )
    yield f"  Time to first text: p50 {_seconds(u.first_text_p50)}, p95 {_seconds(u.first_text_p95)}"
    errors = ", ".join(f"{kind} {count}" for kind, count in u.errors.items())
    yield f"  Errors: {errors or 'none'}"


def _index_lines(report: Report) -> Iterator[str]:
    index = report.index
    yield ""
    yield "Index"
    if index.documents is not None:
        yield f"  Serving {index.collection}: {index.documents} documents, {index.chunks} chunks"
    yield f"  Embedding model: {index.embedding_model or 'unknown'}"
    for run in index.running:
        total = f"/{run.documents_total}" if run.documents_total is not None else ""
        rate = f", {run.rate:.1f} documents/s" if run.rate else ""
        eta = f", ETA {run.eta_seconds:.0f}s" if run.eta_seconds is not None else ""
        yield f"  {run.source}: RUNNING {run.phase} {run.documents_done}{total} documents{rate}{eta}"
    if not index.sources:
        yield "  No index run recorded yet."
    for source in index.sources:
        when = f"{source.last_run_at:{_TIME}}" if source.last_run_at else "never"
        yield (
            f"  {source.name}: last run {when} — {source.result}, {source.documents_seen} documents seen, "
            f"{source.chunks_written} chunks written in {source.seconds:.1f}s"
        )
        if source.error:
            yield f"    error: {source.error}"
        for failure in source.failures:
            yield f"    failed: {failure.path}: {failure.reason}"
        next_run = f"{source.next_run_at:{_TIME}}" if source.next_run_at else "not scheduled"
        yield f"    next scheduled run: {next_run}"


def render_csv(report: Report, show_user_ids: bool = False) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["section", "item", "metric", "value"])
    writer.writerows(_csv_rows(report, show_user_ids))
    return buffer.getvalue()


def _csv_rows(report: Report, show_user_ids: bool) -> Iterator[tuple[str, str, str, Any]]:
    data = json.loads(render_json(report, show_user_ids))
    for metric, value in data["overview"].items():
        yield "overview", "", metric, value
    for gap in data["coverage_gaps"]:
        item = f"gap:{gap['key']}"
        yield "coverage_gaps", item, "label", gap["label"]
        for metric in ("questions", "not_covered", "downvoted", "newest_at"):
            yield "coverage_gaps", item, metric, gap[metric]
        yield "coverage_gaps", item, "keywords", " ".join(gap["keywords"])
        yield "coverage_gaps", item, "conversations", " ".join(gap["conversations"])
    fb = data["feedback"]
    for metric in ("up", "down", "rate"):
        yield "feedback", "", metric, fb[metric]
    for prefix, rows in (("day", fb["by_day"]), ("place", fb["by_place"])):
        for row in rows:
            yield "feedback", f"{prefix}:{row['key']}", "up", row["up"]
            yield "feedback", f"{prefix}:{row['key']}", "down", row["down"]
    for answer in fb["worst_answers"]:
        item = f"answer:{answer['answer_id']}"
        for metric in ("question", "place", "up", "down"):
            yield "feedback", item, metric, answer[metric]
        yield "feedback", item, "sources", " ".join(s["location"] for s in answer["sources"])
        if show_user_ids:
            yield "feedback", item, "downvoters", " ".join(answer["downvoters"])
    for source in fb["blamed_sources"]:
        yield "feedback", f"source:{source['location']}", "downvoted_answers", source["downvoted_answers"]
    for place, count in fb["human_requests"].items():
        yield "feedback", f"human:{place}", "requests", count
    for number, pair in enumerate(fb["human_answers"], 1):
        for metric in ("space", "question", "expert", "reply"):
            yield "feedback", f"human_answer:{number}", metric, pair[metric] or ""
    usage = data["usage"]
    for day in usage["by_day"]:
        yield (
            "usage",
            f"day:{day['day']} {day['platform']} {day['space'] or ''}".rstrip(),
            "questions",
            day["questions"],
        )
    for platform, count in usage["by_platform"].items():
        yield "usage", f"platform:{platform}", "questions", count
    for metric in ("latency_p50", "latency_p95", "first_text_p50", "first_text_p95"):
        yield "usage", "", f"{metric}_seconds", usage[metric]
    yield "usage", "", "timed_answers", usage["timed_answers"]
    for kind, count in usage["errors"].items():
        yield "usage", f"error:{kind}", "turns", count
    index = data["index"]
    for metric in ("collection", "documents", "chunks", "embedding_model"):
        yield "index", "", metric, index[metric]
    for source in index["sources"]:
        item = f"source:{source['name']}"
        for metric in ("last_run_at", "result", "error", "documents_seen", "chunks_written", "next_run_at"):
            yield "index", item, metric, source[metric]
        for failure in source["failures"]:
            yield "index", item, f"failed:{failure['path']}", failure["reason"]
    for run in index["running"]:
        item = f"running:{run['source']}"
        for metric in ("phase", "documents_done", "documents_total", "rate", "eta_seconds"):
            yield "index", item, metric, run[metric]
