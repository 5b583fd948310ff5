"""The insights entry point: one object that the `report` command, `/admin` and the digest share.

It reads the database, clusters the gaps with the configured embedder (vectors cached between
calls, so a page reload embeds only new questions) and asks the vector store and the indexer for
the index's state when it was given them.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from configs.errors import UserFacingError
from data.database import Database
from data.embeddings import Embedder
from data.records import IndexStats
from services.indexing.contract import IndexProgress
from services.insights.clustering import Cluster, cluster_gaps, new_vector_cache
from services.insights.config import InsightsConfig
from services.insights.dataset import Conversation, load_conversation, load_dataset
from services.insights.index_health import IndexHealth, index_health
from services.insights.records import Filters
from services.insights.sections import Feedback, Overview, Usage, feedback, overview, usage

if TYPE_CHECKING:
    from services.runtime import Runtime

log = logging.getLogger(__name__)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$", re.IGNORECASE)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class InvalidPeriod(UserFacingError, ValueError):
    """`--since` / `?since=` was neither a duration (7d, 24h, 2w, 30m) nor an ISO date; the CLI
    shows its message as it is (a `UserFacingError`)."""


class IndexStatsSource(Protocol):
    """What the index-health section needs from the vector store (`VectorStore.stats`)."""

    async def stats(self) -> IndexStats | None: ...


class ProgressSource(Protocol):
    """What it needs from the indexer (`Reindexer.progress`)."""

    @property
    def progress(self) -> IndexProgress | None: ...


@dataclass(frozen=True, slots=True)
class Report:
    """Every section for one set of filters, as `report` prints it and `/admin` shows it."""

    filters: Filters
    generated_at: datetime
    overview: Overview
    coverage_gaps: list[Cluster]
    feedback: Feedback
    usage: Usage
    index: IndexHealth


def parse_since(value: str, now: datetime) -> datetime:
    """`7d` -> seven days before `now`; an ISO date or datetime as it is (UTC when it has no zone)."""
    if match := _DURATION.match(value):
        amount, unit = float(match.group(1)), match.group(2).lower()
        return now - timedelta(**{_UNITS[unit]: amount})
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidPeriod(
            f"{value!r} is not a period: use a duration such as 7d, 24h, 2w or 30m, or a date like 2026-11-01"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class InsightsService:
    """Reports over the stored conversations, feedback, answer events and index runs."""

    def __init__(
        self,
        database: Database,
        embedder: Embedder,
        config: InsightsConfig,
        *,
        store: IndexStatsSource | None = None,
        indexer: ProgressSource | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.database = database
        self.embedder = embedder
        self.config = config
        self.store = store
        self.indexer = indexer
        self.clock = clock
        self._vectors = new_vector_cache()

    def filters(
        self,
        since: str = "7d",
        *,
        until: str | None = None,
        space: str | None = None,
        channel: str | None = None,
    ) -> Filters:
        """Filters from the words a person types (`--since 7d`, `?space=`); raises `InvalidPeriod`."""
        now = self.clock()
        end = parse_since(until, now) if until else now + timedelta(seconds=1)
        return Filters(parse_since(since, now), end, space or None, channel or None)

    async def report(self, filters: Filters) -> Report:
        data = await load_dataset(self.database, filters)
        clusters = await cluster_gaps(data.turns, self.embedder, self.config.cluster_distance, self._vectors)
        humans = await self.database.spaces.human_answers(filters.since, filters.space)
        return Report(
            filters=filters,
            generated_at=self.clock(),
            overview=overview(data),
            coverage_gaps=clusters,
            feedback=dataclasses.replace(feedback(data), human_answers=humans),
            usage=usage(data),
            index=await self.index_health(),
        )

    async def coverage_gaps(self, filters: Filters) -> list[Cluster]:
        data = await load_dataset(self.database, filters)
        return await cluster_gaps(data.turns, self.embedder, self.config.cluster_distance, self._vectors)

    async def coverage_gap(self, filters: Filters, key: str) -> Cluster | None:
        """The cluster whose typical question (or any question) is `key`, as the gap list linked it."""
        clusters = await self.coverage_gaps(filters)
        by_key = next((c for c in clusters if c.key == key), None)
        return by_key or next((c for c in clusters if any(t.question_id == key for t in c.turns)), None)

    async def conversation(self, thread_id: str) -> Conversation | None:
        return await load_conversation(self.database, thread_id)

    async def index_health(self) -> IndexHealth:
        stats = None
        if self.store is not None:
            try:
                stats = await self.store.stats()
            except Exception as exc:  # the report still shows the run log when Weaviate is down
                log.warning("Index statistics unavailable for the insights: %s", exc)
        return await index_health(
            self.database,
            stats=stats,
            progress=self.indexer.progress if self.indexer is not None else None,
            embedding_model=getattr(self.embedder, "model_id", None),
            reindex_interval_minutes=self.config.reindex_interval_minutes,
        )  # the wall clock, not `clock`: a running run's rate is measured against it


def insights_for(runtime: Runtime) -> InsightsService:
    """The insights over a running bot's database, embedder, index and indexer."""
    config = InsightsConfig.from_settings(runtime.settings)
    return InsightsService(
        runtime.database, runtime.embedder, config, store=runtime.store, indexer=runtime.indexer
    )
