"""The indexer end to end: real loader, chunker, local ONNX embedder and Weaviate server.

Each test copies the fixture corpus into its own tmp dir (so it may edit files) and indexes
into its own collection. Embedder work is counted by a thin wrapper around the real embedder,
which can also fail on purpose after N calls to simulate a provider outage mid-run.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from counting_embedder import CountingEmbedder, EmbedderOutage
from docs_corpus import BROKEN, build_corpus
from indexing_support import (
    BROKEN_FILES,
    GatedEmbedder,
    OverlapProbe,
    add_large,
    assert_clean_build,
    expected_chunks,
    good_files,
    serving_and_generations,
    sources,
    until,
)

import services.indexing.stages as stages
import services.sources.local as local_source
from configs.config import Settings
from data.database import Database
from data.embeddings import LocalOnnxEmbedder
from data.leases import LeaseRow
from data.vector_store import WeaviateVectorStore
from data.weaviate_schema import GenerationInfo
from services.indexer import (
    IndexAlreadyRunning,
    Indexer,
    IndexProgress,
    IndexResult,
    IndexRunFailed,
)
from services.sources.contract import Fetched

MakeSettings = Callable[..., Settings]
GOOD_DOCS = 7  # docs/ (5 + generated PDF) and broken/legacy-notes.txt; +1 with `add_large`


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """docs/ (with the generated PDF) and broken/ copied into a folder of this test."""
    root = tmp_path / "corpus"
    build_corpus(root / "docs")
    shutil.copytree(BROKEN, root / "broken")
    return root


@pytest.fixture
async def store(make_settings: MakeSettings, corpus: Path) -> AsyncIterator[WeaviateVectorStore]:
    async with WeaviateVectorStore(make_settings(docs_paths=[str(corpus)])) as opened:
        yield opened


@pytest.fixture
async def database(store: WeaviateVectorStore) -> AsyncIterator[Database]:
    db = Database(store.settings.database_dsn)
    await db.create()
    yield db
    await db.dispose()


@pytest.fixture
def counting(embedder: LocalOnnxEmbedder) -> CountingEmbedder:
    return CountingEmbedder(embedder)


@pytest.fixture
def indexer(store: WeaviateVectorStore, counting: CountingEmbedder, database: Database) -> Indexer:
    return Indexer(store.settings, store, counting, run_log=database.index_runs)


async def test_first_run_indexes_good_files_and_reports_broken_ones(
    indexer: Indexer, store: WeaviateVectorStore, counting: CountingEmbedder, corpus: Path, database: Database
) -> None:
    add_large(corpus)
    result = await indexer.index()

    good = GOOD_DOCS + 1
    assert (result.seen, result.added, result.updated, result.unchanged) == (good + 3, good, 0, 0)
    assert (result.deleted, result.failed, result.empty_source, result.full) == (0, 3, False, False)
    reasons = {Path(f.path).name: f.reason for f in result.failures}
    assert reasons.keys() == BROKEN_FILES.keys()
    for name, words in BROKEN_FILES.items():
        assert words in reasons[name]
        assert f"{name}: {reasons[name]}" in result.summary()
    assert any("legacy-notes.txt" in note and "not UTF-8" in note for note in result.notes)

    chunks = expected_chunks(store.settings, good_files(corpus))
    assert result.chunks_written == result.embeddings_computed == counting.texts == chunks
    stats = await store.stats()
    assert stats is not None and (stats.documents, stats.chunks) == (good, chunks)
    assert result.collection == stats.collection
    assert "install.md" in await sources(store, counting.inner, "brew install acme/tap/acme-deploy on macOS")

    logged = await database.index_runs.last_run()
    assert logged is not None and logged["added"] == good and logged["failed"] == 3
    print(f"\nfirst index: {result.summary()}")


async def test_second_run_skips_unchanged_without_parsing_or_embedding(
    indexer: Indexer, counting: CountingEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    await indexer.index()
    texts_before = counting.texts
    parsed: list[str] = []
    real_parse = local_source.parse_document

    def spy(path: Path, **options: Any) -> object:
        parsed.append(Path(path).name)
        return real_parse(path, **options)

    monkeypatch.setattr(local_source, "parse_document", spy)

    result = await indexer.index()

    assert (result.unchanged, result.added, result.updated, result.deleted) == (GOOD_DOCS, 0, 0, 0)
    assert result.embeddings_computed == 0 and result.chunks_written == 0
    assert counting.texts == texts_before
    # Only the broken files (never recorded) are parsed again.
    assert sorted(parsed) == sorted(BROKEN_FILES)
    assert result.failed == 3


async def test_modified_file_is_reembedded_alone(
    indexer: Indexer, store: WeaviateVectorStore, counting: CountingEmbedder, corpus: Path
) -> None:
    await indexer.index()
    faq = corpus / "docs" / "faq.txt"
    faq.write_text(faq.read_text() + "\n\nThe office parrot is called Zanzibar-Quill.\n")
    config = corpus / "docs" / "configuration.rst"
    config.write_text(config.read_text()[:400])  # shrinks: its stale chunks must go
    texts_before = counting.texts

    result = await indexer.index()

    assert (result.updated, result.unchanged, result.added, result.deleted) == (2, GOOD_DOCS - 2, 0, 0)
    changed = expected_chunks(store.settings, [faq, config])
    assert result.embeddings_computed == result.chunks_written == changed == counting.texts - texts_before
    stats = await store.stats()
    assert stats is not None and stats.chunks == expected_chunks(store.settings, good_files(corpus))
    assert (await sources(store, counting.inner, "What is the office parrot called?"))[0] == "faq.txt"


async def test_deleted_file_disappears_and_single_file_runs_delete_nothing_else(
    indexer: Indexer, store: WeaviateVectorStore, counting: CountingEmbedder, corpus: Path
) -> None:
    await indexer.index()
    (corpus / "docs" / "install.md").unlink()

    result = await indexer.index()

    assert (result.deleted, result.unchanged, result.added) == (1, GOOD_DOCS - 1, 0)
    assert "install.md" not in await sources(store, counting.inner, "brew install acme/tap/acme-deploy macOS")
    stats = await store.stats()
    assert stats is not None and stats.documents == GOOD_DOCS - 1

    faq = corpus / "docs" / "faq.txt"
    faq.write_text(faq.read_text() + "\nOne more answer.\n")
    single = await indexer.index([faq])
    assert (single.seen, single.updated, single.deleted) == (1, 1, 0)
    missing = await indexer.index([corpus / "no-such-folder"])
    assert missing.failures[0].reason == "path does not exist" and missing.deleted == 0
    stats = await store.stats()
    assert stats is not None and stats.documents == GOOD_DOCS - 1


async def test_full_rebuild_never_leaves_searches_empty(
    indexer: Indexer, store: WeaviateVectorStore, counting: CountingEmbedder
) -> None:
    first = await indexer.index()
    query = "What does error E1042 mean?"
    vector = await counting.inner.embed_query(query)
    searches: list[int] = []
    stop = asyncio.Event()

    async def search_loop() -> None:
        while not stop.is_set():
            hits = await store.search(
                query, vector, model_id=counting.model_id, limit=3, alpha=0.5, fusion="relative_score"
            )
            searches.append(len(hits))
            await asyncio.sleep(0.02)

    searcher = asyncio.create_task(search_loop())
    try:
        result = await indexer.index(full=True)
    finally:
        stop.set()
        await searcher

    assert result.full and result.added == GOOD_DOCS and result.collection != first.collection
    assert len(searches) >= 3 and min(searches) > 0, searches
    serving, generations = await serving_and_generations(store)
    assert serving == result.collection and generations == {result.collection}


async def test_embedder_failure_during_rebuild_keeps_old_index_serving(
    indexer: Indexer, store: WeaviateVectorStore, counting: CountingEmbedder, database: Database
) -> None:
    first = await indexer.index()
    failing = CountingEmbedder(counting.inner, fail_on_call=2)
    broken = Indexer(store.settings, store, failing, run_log=database.index_runs)

    with pytest.raises(IndexRunFailed) as caught:
        await broken.index(full=True)

    message = str(caught.value)
    assert "embedding chunks" in message and "embedding provider unavailable" in message
    assert "previous index keeps serving" in message
    assert isinstance(caught.value.__cause__, EmbedderOutage)
    assert caught.value.result.error is not None and "FAILED" in caught.value.result.summary()
    serving, generations = await serving_and_generations(store)
    assert serving == first.collection and generations == {first.collection}
    assert "troubleshooting.html" in await sources(store, counting.inner, "What does error E1042 mean?")
    logged = await database.index_runs.last_run()
    assert logged is not None and logged["error"] == caught.value.result.error

    again = await indexer.index(full=True)
    assert again.added == GOOD_DOCS and again.error is None


async def test_embedder_failure_during_incremental_run_is_finished_by_the_next_run(
    store: WeaviateVectorStore, counting: CountingEmbedder, corpus: Path
) -> None:
    add_large(corpus)  # a document spanning batches: it must not be recorded half-written
    failing = CountingEmbedder(counting.inner, fail_on_call=3)

    with pytest.raises(IndexRunFailed) as caught:
        await Indexer(store.settings, store, failing).index()

    partial = caught.value.result
    assert "will be indexed by the next run" in str(caught.value)
    assert "Indexing stopped while embedding chunks: EmbedderOutage" in str(caught.value)
    good = GOOD_DOCS + 1
    assert partial.added < good
    writer = await store.open_writer(rebuild=False, model_id=counting.model_id, dimension=counting.dimension)
    recorded = await writer.document_states()
    assert len(recorded) == partial.added  # only documents whose chunks were all written
    assert not any(name.endswith("changelog.md") for name in recorded)

    result = await Indexer(store.settings, store, counting).index()

    assert (result.unchanged, result.added) == (partial.added, good - partial.added)
    stats = await store.stats()
    assert stats is not None and stats.documents == good
    assert stats.chunks == expected_chunks(store.settings, good_files(corpus))


async def test_parsing_embedding_and_writing_overlap(
    store: WeaviateVectorStore, embedder: LocalOnnxEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[str] = []
    real_prepare = stages._prepare

    def spy(change: Fetched, *args: Any) -> Any:
        result = real_prepare(change, *args)
        time.sleep(0.05)  # in a worker thread: parsing as slow as a small PDF's
        parsed.append(Path(change.source).name)
        return result

    monkeypatch.setattr(stages, "_prepare", spy)
    probe = OverlapProbe(embedder, lambda: probed, parsed)
    probed = Indexer(store.settings, store, probe)

    result = await probed.index()

    assert probe.calls >= 2 and result.added == GOOD_DOCS and result.failed == 3


async def test_second_concurrent_run_is_refused_with_progress(indexer: Indexer) -> None:
    task = indexer.start_background(progress_interval=0.0)
    assert indexer.running

    with pytest.raises(IndexAlreadyRunning) as caught:
        await indexer.index(full=True)
    assert "A reindex is already running (" in str(caught.value)
    assert caught.value.progress.phase in {"scanning", "indexing"}
    with pytest.raises(IndexAlreadyRunning):
        indexer.start_background()

    result = await task
    assert result.added == GOOD_DOCS and not indexer.running and indexer.progress is None


async def test_empty_source_says_so_and_changes_nothing(
    indexer: Indexer, store: WeaviateVectorStore, tmp_path: Path
) -> None:
    await indexer.index()
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    (empty / "diagram.png").write_bytes(b"\x89PNG\r\n")

    for full in (False, True):
        result = await indexer.index([empty], full=full)
        assert result.empty_source and result.seen == 0 and result.deleted == 0
        assert "no supported documents" in result.summary()
        assert "1 files of other types were skipped" in result.summary()
        stats = await store.stats()
        assert stats is not None and stats.documents == GOOD_DOCS
    serving, generations = await serving_and_generations(store)
    assert generations == {serving}


async def test_progress_reports_increasing_counts_and_is_throttled(indexer: Indexer) -> None:
    seen: list[IndexProgress] = []

    async def record(progress: IndexProgress) -> None:
        seen.append(progress)

    result = await indexer.index(on_progress=record, progress_interval=0.0)

    assert len(seen) >= 3
    assert seen[-1].phase == "done" and seen[-1].documents_done == result.seen
    assert seen[-1].chunks_written == result.chunks_written
    for before, after in itertools.pairwise(seen):
        assert after.documents_done >= before.documents_done
        assert after.chunks_written >= before.chunks_written
    assert any(p.phase == "indexing" and 0 < p.documents_done < result.seen for p in seen)
    assert "documents" in seen[-1].describe() and "chunks written" in seen[-1].describe()

    throttled: list[IndexProgress] = []
    await indexer.index(full=True, on_progress=throttled.append, progress_interval=600)
    assert len(throttled) == 2 and throttled[-1].phase == "done"


async def test_start_background_hands_result_or_exception_to_on_done(
    indexer: Indexer, store: WeaviateVectorStore, counting: CountingEmbedder
) -> None:
    outcomes: list[IndexResult | BaseException] = []

    async def on_done(outcome: IndexResult | BaseException) -> None:
        outcomes.append(outcome)

    await indexer.start_background(on_done=on_done)
    assert isinstance(outcomes[0], IndexResult) and outcomes[0].added == GOOD_DOCS

    failing = Indexer(store.settings, store, CountingEmbedder(counting.inner, fail_on_call=1))
    task = failing.start_background(full=True, on_done=on_done)
    with pytest.raises(IndexRunFailed):
        await task
    assert isinstance(outcomes[1], IndexRunFailed) and not failing.running


async def test_embedding_model_change_rebuilds_fully_with_a_note(
    store: WeaviateVectorStore, counting: CountingEmbedder
) -> None:
    renamed = CountingEmbedder(counting.inner)
    renamed.model_id = "previous-model"  # same vectors, but the index records another model
    first = await Indexer(store.settings, store, renamed).index()

    result = await Indexer(store.settings, store, counting).index()

    assert result.full and result.added == GOOD_DOCS and result.collection != first.collection
    assert any(note.startswith("embedding model changed: rebuilt fully") for note in result.notes)
    stats = await store.stats()
    assert stats is not None and stats.embedder_model_id == counting.model_id
    assert stats.documents == GOOD_DOCS


async def test_an_interrupted_run_leaves_no_half_document_behind(
    store: WeaviateVectorStore, counting: CountingEmbedder, corpus: Path, database: Database
) -> None:
    """Ctrl-C during a large file: the chunks it wrote are removed by the next run (here, after the
    file was deleted too), and the interrupted run is recorded as such."""
    indexer = Indexer(store.settings, store, counting, run_log=database.index_runs)
    await indexer.index()
    before = good_files(corpus)
    add_large(corpus)  # ~180 chunks: the first batch of 64 is written, then the run is held
    gated = GatedEmbedder(counting.inner, hold_on_call=2)
    held = Indexer(store.settings, store, gated, run_log=database.index_runs)
    task = asyncio.create_task(held.index())
    await until(
        lambda: gated.held.is_set() and held.progress is not None and held.progress.chunks_written > 0,
        "64 chunks written, the run held",
    )
    task.cancel()  # what Ctrl-C (and, in the CLI, SIGTERM) does to the run
    with pytest.raises(asyncio.CancelledError):
        await task
    stats = await store.stats()
    assert stats is not None and stats.chunks == expected_chunks(store.settings, before) + 64  # half a doc
    assert stats.documents == GOOD_DOCS  # ... that the registry does not know
    interrupted = await database.index_runs.last_run()
    assert interrupted is not None and interrupted["status"] == "interrupted"
    assert interrupted["error"].startswith("interrupted: the run was stopped")
    assert interrupted["chunks_written"] == 64

    (corpus / "large" / "changelog.md").unlink()
    result = await indexer.index()

    removed = [note for note in result.notes if note.startswith("removed ")]
    assert removed == [
        "removed 64 chunks of 1 documents an interrupted run left unfinished (changelog.md); "
        "those still present are indexed again"
    ]
    assert (result.added, result.unchanged, result.deleted) == (0, GOOD_DOCS, 0)
    await assert_clean_build(store, store.settings, before)


async def test_an_unfinished_rebuild_is_dropped_by_the_next_incremental_run(
    indexer: Indexer, store: WeaviateVectorStore, counting: CountingEmbedder
) -> None:
    first = await indexer.index()
    # A rebuild whose process died: its generation exists, half filled, and nothing serves it.
    crashed = await store.open_writer(rebuild=True, model_id=counting.model_id, dimension=counting.dimension)

    result = await indexer.index()

    assert result.notes == [
        f"dropped what an unfinished rebuild left: {crashed.collection}, {crashed.collection}_Docs"
    ]
    serving, generations = await serving_and_generations(store)
    assert serving == first.collection and generations == {first.collection}


async def test_a_run_in_another_process_is_refused_with_its_live_progress(
    store: WeaviateVectorStore, counting: CountingEmbedder, database: Database
) -> None:
    """Two indexers on one Weaviate and one database, as two processes (or replicas) have them."""
    settings = store.settings.model_copy(update={"index_heartbeat_seconds": 0.1})
    gated = GatedEmbedder(counting.inner, hold_on_call=1)
    holder = Indexer(settings, store, gated, run_log=database.index_runs)
    elsewhere = Database(settings.database_dsn)  # its own engine and connections
    other = Indexer(settings, store, counting, run_log=elsewhere.index_runs)
    try:
        task = holder.start_background()
        await asyncio.wait_for(gated.held.wait(), 60)  # parsed everything, embedding: 3 broken files done

        async def progress_in_lease() -> bool:  # the run's lease, as the run log names it
            run = await database.index_runs.last_run()
            lease = await database.leases.holder(str(run.get("lease"))) if run else None
            return lease is not None and (lease.progress or {}).get("documents_done", 0) == 3

        await until(progress_in_lease, "the holder's progress in its lease")
        running = await elsewhere.index_runs.last_run()
        assert (
            running is not None
            and running["status"] == "running"
            and running["progress"]["phase"] == "indexing"
        )

        with pytest.raises(IndexAlreadyRunning) as caught:
            await other.index(full=True)
        message = str(caught.value)
        assert message.startswith(f"A reindex is already running (indexing: 3/{GOOD_DOCS + 3} documents, ")
        assert f"in pid {os.getpid()} on " in message and "progress as of" in message
        assert not other.running

        gated.gate.set()
        result = await task
        assert result.added == GOOD_DOCS
        done = await elsewhere.index_runs.last_run()
        assert done is not None and done["status"] == "succeeded" and done["added"] == GOOD_DOCS
        again = await other.index()  # the lease was released: the other process may run now
        assert again.unchanged == GOOD_DOCS
    finally:
        await elsewhere.dispose()


async def test_a_run_whose_lease_was_taken_stops_before_its_next_write(
    store: WeaviateVectorStore, counting: CountingEmbedder, database: Database, corpus: Path
) -> None:
    """What a run paused past its lease finds when it resumes: another holder. It writes nothing more."""
    await Indexer(store.settings, store, counting, run_log=database.index_runs).index()
    before = await store.stats()
    faq = corpus / "docs" / "faq.txt"
    faq.write_text(faq.read_text() + "\nA late answer.\n")
    settings = store.settings.model_copy(update={"index_heartbeat_seconds": 0.1})
    gated = GatedEmbedder(counting.inner, hold_on_call=1)
    task = asyncio.create_task(Indexer(settings, store, gated, run_log=database.index_runs).index())
    await asyncio.wait_for(gated.held.wait(), 60)
    running = await database.index_runs.last_run()
    assert running is not None and running["status"] == "running"
    name = str(running["lease"])  # the run's own lease (each source's is taken over the same way)
    async with database.sessions.begin() as session:  # its lease expired and another process took it
        lease = await session.get(LeaseRow, name)
        assert lease is not None
        lease.token, lease.owner = "another-run", "pid 1 on elsewhere"
    await asyncio.sleep(0.5)  # a few heartbeats: the run finds out
    gated.gate.set()

    with pytest.raises(IndexRunFailed) as caught:
        await task

    message = str(caught.value)
    assert f"lost its lease {name}" in message
    assert "pid 1 on elsewhere" in message and "It wrote nothing after that" in message
    assert await store.stats() == before  # not one chunk of the changed file was written
    last = await database.index_runs.last_run()
    assert last is not None and last["status"] == "failed"


async def test_cancelling_background_runs_records_them_and_frees_the_lease(
    indexer: Indexer, database: Database, store: WeaviateVectorStore
) -> None:
    """What `serve` does while it stops: a chat-started reindex is interrupted, says so in the run
    log, and gives its lease back before the database closes (the next replica may index at once)."""
    started = asyncio.Event()
    indexer.start_background(on_progress=lambda progress: started.set(), progress_interval=0.0)
    await asyncio.wait_for(started.wait(), 30)
    await indexer.cancel_background()

    assert not indexer.running
    run = await database.index_runs.last_run()
    assert run is not None and run["status"] == "interrupted"
    async with database.sessions() as session:
        assert await session.get(LeaseRow, f"index:{store.settings.weaviate_collection}") is None


async def test_an_index_from_before_named_sources_is_rebuilt_and_serves_meanwhile(
    indexer: Indexer, store: WeaviateVectorStore, counting: CountingEmbedder
) -> None:
    """A generation built by an older version (chunk schema 1: no `source_name`) keeps answering
    unfiltered searches, finds nothing for a search limited to sources (never another space's
    text), and the next incremental run rebuilds it blue/green."""
    first = await indexer.index()
    client = await store.client()
    old = GenerationInfo(counting.model_id, counting.dimension, schema=1)
    await client.collections.use(first.collection).config.update(description=old.to_description())
    store._info.clear()  # the generation info cache: a description never changes in the product
    vector = await counting.embed_query("configuration")
    search = {"model_id": counting.model_id, "limit": 5, "alpha": 0.5, "fusion": "ranked"}
    assert await store.search("configuration", vector, **search)
    assert await store.search("configuration", vector, **search, sources=[first.sources[0].name]) == []

    rebuilt = await indexer.index()
    assert rebuilt.full and rebuilt.collection != first.collection and rebuilt.added == GOOD_DOCS
    assert any(note.startswith("index format changed: rebuilt fully") for note in rebuilt.notes)
    assert await store.search("configuration", vector, **search, sources=[rebuilt.sources[0].name])


async def test_a_rebuild_where_every_file_fails_keeps_the_previous_index(
    indexer: Indexer, store: WeaviateVectorStore, tmp_path: Path
) -> None:
    """`--full` over documents that all fail to parse must not swap in an empty index."""
    first = await indexer.index()
    broken = tmp_path / "all-broken"
    broken.mkdir()
    (broken / "empty.md").write_text("")
    (broken / "binary.txt").write_bytes(b"\x00\x01\x02" * 100)

    result = await indexer.index([broken], full=True)

    assert result.added == 0 and result.failed == 2
    assert any("previous index keeps serving" in note for note in result.notes), result.notes
    stats = await store.stats()
    assert stats is not None and stats.collection == first.collection and stats.documents == GOOD_DOCS
