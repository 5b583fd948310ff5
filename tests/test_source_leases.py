"""Runs of different sources go side by side across processes; runs of one source, and a rebuild,
go alone. Two indexers with their own database engines on one database and one Weaviate stand
for two processes (or replicas); a gated embedder holds a run in the middle of its work."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from counting_embedder import CountingEmbedder
from indexing_support import GatedEmbedder

from configs.config import Settings
from data.database import Database
from data.embeddings import LocalOnnxEmbedder
from data.vector_store import WeaviateVectorStore
from services.indexer import IndexAlreadyRunning, Indexer

NAMES = ("handbook", "runbooks")


def two_sources(tmp_path: Path) -> Path:
    for name in NAMES:
        folder = tmp_path / name
        folder.mkdir()
        for n in range(3):
            text = f"# {name} {n}\n\nWhat the {name} say about topic {n}: backups, restores, upgrades.\n"
            (folder / f"{name}-{n}.md").write_text(text)
    sources = tmp_path / "sources.toml"
    sources.write_text(
        "".join(f'[sources.{name}]\nlocation = "{name}"\n' for name in ("handbook", "runbooks"))
    )
    return sources


async def test_different_sources_run_side_by_side_and_one_source_runs_alone(
    make_settings: Callable[..., Settings], embedder: LocalOnnxEmbedder, tmp_path: Path
) -> None:
    settings = make_settings(
        sources_file=two_sources(tmp_path), data_dir=tmp_path / "data", index_heartbeat_seconds=0.1
    )
    store = WeaviateVectorStore(settings)
    await store.connect()
    one, two = Database(settings.database_dsn), Database(settings.database_dsn)
    await one.create()
    try:
        await Indexer(settings, store, embedder, run_log=one.index_runs).index()  # both sources
        for folder in ("handbook", "runbooks"):
            (tmp_path / folder / f"{folder}-0.md").write_text(
                f"# {folder} 0\n\nChanged: maintenance on Sundays.\n"
            )
        gated = GatedEmbedder(embedder, hold_on_call=1)
        holder = Indexer(settings, store, gated, run_log=one.index_runs)
        other = Indexer(settings, store, CountingEmbedder(embedder), run_log=two.index_runs)

        held = holder.start_background(sources=["handbook"])
        await asyncio.wait_for(gated.held.wait(), 60)  # handbook's run is in the middle of embedding

        beside = await other.index(["runbooks"])  # another source, another process: it runs
        assert (beside.updated, beside.unchanged, [s.name for s in beside.sources]) == (1, 2, ["runbooks"])
        for refused in (["handbook"], None):  # the same source; every source
            with pytest.raises(IndexAlreadyRunning) as caught:
                await other.index(refused)
            assert "in pid " in str(caught.value)
        with pytest.raises(IndexAlreadyRunning):
            await other.index(full=True)  # a rebuild waits for every run
        with pytest.raises(IndexAlreadyRunning):
            holder.start_background(sources=["handbook"])  # in the same process, refused at once

        gated.gate.set()
        done = await held
        assert (done.updated, done.unchanged) == (1, 2)
        stats = await store.stats()
        assert stats is not None and stats.documents == 6 and stats.chunks == 6  # nothing lost or doubled

        gated.gate.clear()
        gated.held.clear()
        rebuild = holder.start_background(full=True)
        await asyncio.wait_for(gated.held.wait(), 60)
        with pytest.raises(IndexAlreadyRunning) as caught:
            await other.index(["runbooks"])  # while a rebuild runs, no source may
        assert "(full rebuild)" in str(caught.value)
        gated.gate.set()
        assert (await rebuild).added == 6
        assert (await other.index(["runbooks"])).unchanged == 3  # every lease was given back
    finally:
        await store.close()
        await one.dispose()
        await two.dispose()
