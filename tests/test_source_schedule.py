"""Each source on its own schedule, with the real Indexer, Weaviate and run log, and a clock the
test moves: what is due runs, what is not waits, and a second scheduler on the same database (a
second replica) does not run a source the first one just refreshed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from configs.config import Settings
from data.database import Database
from data.embeddings import Embedder
from data.vector_store import WeaviateVectorStore
from services.indexer import Indexer
from services.indexing.schedule import refresh_on_schedule
from services.sources.catalog import load_catalog


async def test_due_sources_run_and_replicas_agree(
    make_settings: Callable[..., Settings], embedder: Embedder, tmp_path: Path
) -> None:
    for name in ("fast", "slow"):
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{name}.md").write_text(f"# {name}\n\nNotes of the {name} team.\n")
    sources = tmp_path / "sources.toml"
    sources.write_text(
        '[sources.fast]\nlocation = "fast"\nrefresh_minutes = 1\n\n'
        '[sources.slow]\nlocation = "slow"\nrefresh_minutes = 60\n\n'
        '[sources.manual]\nlocation = "fast"\nrefresh_minutes = 0\n'
    )
    settings = make_settings(sources_file=sources, data_dir=tmp_path / "data")
    store = WeaviateVectorStore(settings)
    await store.connect()
    database = Database(settings.database_dsn)
    await database.create()
    offset = timedelta()  # the run log records real end times: the test's clock runs ahead of them
    runs: list[list[str]] = []

    ran = asyncio.Condition()
    shared = (database.index_runs, database.leases, f"schedule:{settings.weaviate_collection}")

    def catalog() -> Any:
        return load_catalog(settings)

    def clock() -> datetime:
        return datetime.now(UTC) + offset

    def replica() -> tuple[Indexer, Callable[[Any], Any]]:
        indexer = Indexer(settings, store, embedder, run_log=database.index_runs)

        async def run(names: Any) -> Any:
            nonlocal offset
            result = await indexer.index(names)
            offset = timedelta()  # the time that passed is used up by the run
            async with ran:
                runs.append(list(names))
                ran.notify_all()
            return result

        return indexer, run

    async def runs_reach(count: int) -> None:
        """Wait for `count` runs, then a little longer, to see that no more follow."""
        async with asyncio.timeout(60), ran:
            await ran.wait_for(lambda: len(runs) >= count)
        await asyncio.sleep(0.5)

    schedulers = [  # two replicas on one database
        asyncio.create_task(refresh_on_schedule(run, *shared, catalog, 0, clock=clock, tick_seconds=0.05))
        for _, run in (replica(), replica())
    ]
    try:
        await runs_reach(1)  # never indexed: both scheduled sources at once; the manual one waits
        assert runs == [["fast", "slow"]]

        offset = timedelta(minutes=2)
        await runs_reach(2)
        assert runs[1:] == [["fast"]]  # one replica ran it; the other saw it done

        offset = timedelta(minutes=61)
        await runs_reach(3)
        assert runs[2:] == [["fast", "slow"]]
        last = await database.index_runs.last_source_runs()
        assert set(last) == {"fast", "slow"} and last["fast"]["status"] == "succeeded"
    finally:
        for task in schedulers:
            task.cancel()
        for task in schedulers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await store.close()
        await database.dispose()
