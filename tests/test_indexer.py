"""The indexer end to end: real loader, chunker, local ONNX embedder and Weaviate server.

Each test copies the fixture corpus into its own tmp dir (so it may edit files) and indexes
into its own collection. Embedder work is counted by a thin wrapper around the real embedder,
which can also fail on purpose after N calls to simulate a provider outage mid-run.
"""

from __future__ import annotations

import asyncio
import itertools
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
    OverlapProbe,
    add_large,
    expected_chunks,
    good_files,
    serving_and_generations,
    sources,
)

import services.indexing.pipeline as pipeline
from configs.config import Settings
from data.database import Database, SqlIndexRunLog
from data.embeddings import LocalOnnxEmbedder
from data.vector_store import WeaviateVectorStore
from services.indexer import (
    IndexAlreadyRunning,
    Indexer,
    IndexProgress,
    IndexResult,
    IndexRunFailed,
)

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
    return Indexer(store.settings, store, counting, run_log=SqlIndexRunLog(database))


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

    logged = await SqlIndexRunLog(database).last_run()
    assert logged is not None and logged["added"] == good and logged["failed"] == 3
    print(f"\nfirst index: {result.summary()}")


async def test_second_run_skips_unchanged_without_parsing_or_embedding(
    indexer: Indexer, counting: CountingEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    await indexer.index()
    texts_before = counting.texts
    parsed: list[str] = []
    real_parse = pipeline.parse_document

    def spy(path: Path, data: bytes | None = None) -> object:
        parsed.append(Path(path).name)
        return real_parse(path, data)

    monkeypatch.setattr(pipeline, "parse_document", spy)

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
    broken = Indexer(store.settings, store, failing, run_log=SqlIndexRunLog(database))

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
    logged = await SqlIndexRunLog(database).last_run()
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
    real_prepare = pipeline._prepare

    def spy(path: Path, *args: Any) -> Any:
        result = real_prepare(path, *args)
        time.sleep(0.05)  # in a worker thread: parsing as slow as a small PDF's
        parsed.append(path.name)
        return result

    monkeypatch.setattr(pipeline, "_prepare", spy)
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
