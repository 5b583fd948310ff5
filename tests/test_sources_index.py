"""Sources through the whole index run, into the real Weaviate: a website on 127.0.0.1, a Git
repository made with `git`, a sources file with names and globs, a failing source beside a good
one, and a rebuild that finds nothing. Embeddings are counted to prove the incremental claims."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from counting_embedder import CountingEmbedder
from sources_support import Page, Repo, Site, serve_site
from test_sources_web import INSTALL, html

from configs.config import Settings
from data.database import Database
from data.embeddings import LocalOnnxEmbedder
from data.vector_store import WeaviateVectorStore
from services.indexer import Indexer
from services.insights.index_health import index_health
from services.rag import Retriever
from services.sources.catalog import SourcesFileError, load_catalog

MakeSettings = type(lambda **_: None)  # the conftest factory's type is not importable


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    async with serve_site() as site:
        site.pages.update(
            {
                "/robots.txt": Page(b"User-agent: *\n", "text/plain"),
                "/docs/": Page(html("Widget docs", "Start with the install page.", ["install", "faq"])),
                "/docs/install": Page(INSTALL.encode()),
                "/docs/faq": Page(html("FAQ", "The widget stores its settings in widget.toml.", ["install"])),
                "/docs/guide": Page(html("Guide", "The guide explains the widget.", ["faq"])),
            }
        )
        yield site


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    (tmp_path / "git").mkdir()
    repo = Repo(tmp_path / "git")
    repo.write("docs/deploy.md", "# Deploy\n\nDeploy the gadget with the deploy script on port 9876.\n")
    repo.write("docs/adr/0001-queues.md", "# Use queues\n\nWe chose a message queue for gadget jobs.\n")
    repo.write("docs/drafts/idea.md", "# Idea\n\nA draft that is not ready.\n")
    repo.write("docs/diagram.png", b"\x89PNG\r\n\x1a\n")
    repo.commit("first")
    return repo


async def open_indexer(
    settings: Settings, embedder: LocalOnnxEmbedder
) -> tuple[Indexer, WeaviateVectorStore, CountingEmbedder, Database]:
    store = WeaviateVectorStore(settings)
    await store.connect()
    database = Database(settings.database_dsn)
    await database.create()
    counting = CountingEmbedder(embedder)
    return Indexer(settings, store, counting, run_log=database.index_runs), store, counting, database


async def test_a_website_and_a_repository_index_incrementally_with_citations(
    make_settings: MakeSettings, embedder: LocalOnnxEmbedder, site: Site, repo: Repo, tmp_path: Path
) -> None:
    settings = make_settings(web_delay_seconds=0, data_dir=tmp_path / "data", chunk_size=250, chunk_overlap=0)
    indexer, store, counting, database = await open_indexer(settings, embedder)
    web, git = f"{site.url}/docs/", f"git+file://{repo.bare}@main#subdirectory=docs"
    try:
        first = await indexer.index([web, git])
        assert (first.added, first.failed) == (7, 0), first.summary()
        outcomes = {source.name: source for source in first.sources}
        assert outcomes[web].documents == 4 and outcomes[git].documents == 3
        assert first.embeddings_computed > 0
        [skipped] = [note for note in first.notes if "files of other types" in note]
        assert skipped.startswith(f"{git}: 1 files") and skipped.count(git) == 1  # named once, not twice

        retriever = Retriever(settings, store, embedder)
        question = "How do I install the widget on Linux?"
        vector = await embedder.embed_query(question)
        chunks = await store.search(
            question, vector, model_id=embedder.model_id, limit=10, alpha=0.5, fusion="ranked"
        )
        linux = [chunk for chunk in chunks if "On Linux run the installer" in chunk.text]
        assert linux and linux[0].source == f"{site.url}/docs/install#linux"  # the page at its heading
        hits = await retriever.search("Which port does the gadget deploy script use?", 3)
        assert hits[0].source == "docs/deploy.md" and "9876" in hits[0].text  # no known host: the path

        pages = lambda: sum(n for path, n in site.bodies.items() if path.startswith("/docs/"))  # noqa: E731
        bodies, texts = pages(), counting.texts
        second = await indexer.index([web, git])
        assert counting.texts == texts
        assert (second.unchanged, second.added, second.updated, second.embeddings_computed) == (7, 0, 0, 0)
        assert pages() == bodies  # 304s: no page was downloaded again (robots.txt is read each run)

        repo.write("docs/deploy.md", "# Deploy\n\nDeploy the gadget with the deploy script on port 4242.\n")
        (repo.work / "docs" / "adr" / "0001-queues.md").unlink()
        repo.commit("change and delete")
        third = await indexer.index([web, git])
        assert (third.updated, third.deleted, third.unchanged) == (1, 1, 5), third.summary()
        assert {s.name: s.documents for s in third.sources} == {web: 4, git: 2}
    finally:
        await store.close()
        await database.dispose()


async def test_a_failing_source_does_not_stop_the_others(
    make_settings: MakeSettings, embedder: LocalOnnxEmbedder, tmp_path: Path
) -> None:
    folder = tmp_path / "handbook"
    folder.mkdir()
    (folder / "leave.md").write_text("# Leave\n\nAsk your manager for leave two weeks ahead.\n")
    settings = make_settings(data_dir=tmp_path / "data", web_timeout_seconds=2)
    indexer, store, _counting, database = await open_indexer(settings, embedder)
    gone_repo = f"git+file://{tmp_path}/no-such-repo.git"
    try:
        result = await indexer.index(["http://127.0.0.1:9/docs/", gone_repo, str(folder)])
        assert result.added == 1 and result.failed == 2, result.summary()
        reasons = " ".join(f"{f.path}: {f.reason}" for f in result.failures)
        assert "127.0.0.1:9" in reasons and "no-such-repo" in reasons
        assert "Source " in result.summary()  # one line per source

        health = await index_health(
            database,
            stats=await store.stats(),
            progress=None,
            embedding_model=None,
            reindex_interval_minutes=60,
        )
        by_name = {source.name: source for source in health.sources}  # the admin page's index health
        assert by_name[str(folder)].result == "ok" and by_name[str(folder)].failures == []
        assert by_name[gone_repo].result == "failed" and by_name[gone_repo].error
        assert "no-such-repo" in by_name[gone_repo].failures[0].path
        [unreachable] = by_name["http://127.0.0.1:9/docs/"].failures
        assert "127.0.0.1:9" in unreachable.path and by_name[str(folder)].next_run_at is not None

        # A rebuild that indexes nothing is abandoned: the previous index keeps serving.
        rebuilt = await indexer.index(["http://127.0.0.1:9/docs/"], full=True)
        assert rebuilt.added == 0 and any("previous index keeps serving" in n for n in rebuilt.notes)
        stats = await store.stats()
        assert stats is not None and stats.documents == 1
    finally:
        await store.close()
        await database.dispose()


async def test_named_sources_from_a_file_with_globs_and_per_source_status(
    make_settings: MakeSettings, embedder: LocalOnnxEmbedder, repo: Repo, tmp_path: Path
) -> None:
    handbook = tmp_path / "handbook"
    handbook.mkdir()
    (handbook / "leave.md").write_text("# Leave\n\nAsk your manager for leave two weeks ahead.\n")
    (handbook / "notes.txt").write_text("Private notes that the globs leave out.\n")
    sources_file = tmp_path / "sources.toml"
    sources_file.write_text(
        f"""
[sources.handbook]
location = "./handbook"
include = ["*.md"]

[sources.engineering]
location = "git+file://{repo.bare}@main#subdirectory=docs"
exclude = ["drafts/*"]
refresh_minutes = 60
"""
    )
    settings = make_settings(data_dir=tmp_path / "data", sources_file=sources_file)
    indexer, store, _, database = await open_indexer(settings, embedder)
    try:
        catalog = load_catalog(settings)
        assert catalog.names == ["handbook", "engineering"]
        everything = await indexer.index()
        assert everything.added == 3 and everything.failed == 0, everything.summary()

        only = await indexer.index(["engineering"])
        assert [s.name for s in only.sources] == ["engineering"] and only.unchanged == 2

        sources_file.write_text(
            sources_file.read_text().replace('exclude = ["drafts/*"]', 'exclude = ["adr/*"]')
        )
        changed = await indexer.index(["engineering"])
        assert (changed.added, changed.deleted) == (1, 1), changed.summary()  # the globs moved

        lines = await indexer.sources.status_lines()
        assert lines[0].startswith("handbook (local ") and "1 documents" in lines[0]
        assert "refreshed on demand" in lines[0]
        assert lines[1].startswith("engineering (git git+file://") and "2 documents" in lines[1]
        assert "next run in 60 min" in lines[1] or "next run in 59 min" in lines[1]
    finally:
        await store.close()
        await database.dispose()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[sources.a]\nlocation = 'x'\nrefresh = 5\n", "sources.a.refresh: Extra inputs"),
        ("[sources.'a b']\nlocation = 'x'\n", "'a b' must be letters"),
        ("[sources.a]\nlocation = 'ftp://host/x'\n", "sources.a.location: Unsupported source"),
        ("[sources.a\n", "is not valid TOML"),
        ("title = 'no sources'\n", "sources: Field required"),
    ],
)
def test_a_broken_sources_file_is_one_clear_error(
    make_plain_settings: MakeSettings, tmp_path: Path, text: str, words: str
) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(text)
    with pytest.raises(SourcesFileError) as caught:
        load_catalog(make_plain_settings(sources_file=path))
    assert str(path) in str(caught.value) and words in str(caught.value)
