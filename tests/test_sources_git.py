"""Git sources against real repositories made here with `git`: a bare repository on disk (file://)
and the same repository served by `git http-backend` behind an aiohttp server that demands a token.
Commits add, change, rename and delete files; the scans must report exactly those changes."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from sources_support import Repo, git

from data.records import DocumentState
from services.indexing.loader import LoadFailure
from services.sources.build import SourceOptions, build_source
from services.sources.contract import Change, Failed, Fetched, Gone, KnownDocument, SourceDocument, Unchanged
from services.sources.git_source import GitOptions, GitSource, hosted_file_url
from services.sources.naming import GitSpec, parse_source
from services.sources.state import SourceStateFile

TOKEN = "ghp_s3cretTokenValue42"


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    repo = Repo(tmp_path)
    repo.write("README.md", "# Outside\n\nNot under docs.\n")
    repo.write("docs/intro.md", "# Intro\n\nWelcome to the widget.\n\n## Setup\n\nRun the setup script.\n")
    repo.write("docs/guide.rst", "Guide\n=====\n\nThe guide explains the widget in depth.\n")
    repo.write("docs/old.txt", "An old note about the widget.\n")
    repo.write("docs/notes.txt", "Version one of the notes.\n")
    repo.write("docs/logo.png", b"\x89PNG\r\n\x1a\n\x00\x00")
    repo.write("docs/.drafts/secret.md", "# Draft\n\nNot for the index.\n")
    repo.commit("first")
    return repo


def source_for(name: str, tmp_path: Path, **environ: str) -> GitSource:
    spec = parse_source(name)
    assert isinstance(spec, GitSpec)
    options = GitOptions(
        clones_dir=tmp_path / "data" / "sources" / "git",
        timeout_seconds=60,
        environ={**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", **environ},
    )
    return GitSource(spec, options)


async def scan(
    source: GitSource, known: Mapping[str, KnownDocument], cursor: Mapping[str, str] | None = None
) -> tuple[list[Change], dict[str, KnownDocument], dict[str, str]]:
    """One scan, applied as the pipeline would: parse what was fetched, keep memos, drop the gone."""
    result = source.scan(known, cursor or {})
    changes = [change async for change in result]
    after = dict(known)
    for change in changes:
        if isinstance(change, Fetched):
            parsed = change.parse()
            assert isinstance(parsed, SourceDocument), parsed
            after[change.document_id] = KnownDocument(change.document_id, change.content_hash, change.memo)
        elif isinstance(change, Unchanged):
            after[change.document_id] = KnownDocument(
                change.document_id, after[change.document_id].content_hash, change.memo
            )
        elif isinstance(change, Gone):
            del after[change.document_id]
    return changes, after, result.cursor


def paths(changes: list[Change], kind: type) -> list[str]:
    return sorted(str(c.document_id).split("#path=")[1] for c in changes if isinstance(c, kind))


async def test_first_scan_indexes_supported_files_under_the_subdirectory(repo: Repo, tmp_path: Path) -> None:
    source = source_for(f"git+file://{repo.bare}@main#subdirectory=docs", tmp_path)
    changes, _, cursor = await scan(source, {})

    assert paths(changes, Fetched) == ["docs/guide.rst", "docs/intro.md", "docs/notes.txt", "docs/old.txt"]
    assert cursor == {"commit": git(repo.work, "rev-parse", "HEAD")}
    intro = next(c for c in changes if isinstance(c, Fetched) and c.document_id.endswith("intro.md"))
    parsed = intro.parse()
    assert isinstance(parsed, SourceDocument)
    assert parsed.document.title == "Intro"
    assert [s.heading_path for s in parsed.document.sections] == [["Intro"], ["Intro", "Setup"]]
    assert intro.source == "docs/intro.md"  # no known host: the path inside the repository
    assert (tmp_path / "data" / "sources" / "git").is_dir()
    shallow = git(source.clone_dir, "rev-parse", "--is-shallow-repository")
    assert shallow == "true"


async def test_add_change_rename_delete_re_reads_only_changed_blobs(repo: Repo, tmp_path: Path) -> None:
    source = source_for(f"git+file://{repo.bare}#subdirectory=docs", tmp_path)
    _, known, cursor = await scan(source, {})

    repo.write("docs/notes.txt", "Version two of the notes.\n")  # changed
    (repo.work / "docs" / "manual").mkdir()
    (repo.work / "docs" / "guide.rst").rename(repo.work / "docs" / "manual" / "guide.rst")  # same blob
    (repo.work / "docs" / "old.txt").unlink()  # deleted
    repo.write("docs/new.md", "# New\n\nA new page.\n")  # added
    second = repo.commit("second")
    changes, known, cursor = await scan(source, known, cursor)

    assert paths(changes, Unchanged) == ["docs/intro.md"]
    assert paths(changes, Fetched) == ["docs/manual/guide.rst", "docs/new.md", "docs/notes.txt"]
    assert paths(changes, Gone) == ["docs/guide.rst", "docs/old.txt"]
    moved = next(c for c in changes if isinstance(c, Fetched) and c.document_id.endswith("manual/guide.rst"))
    assert moved.renamed_from == source.document_id("docs/guide.rst")
    reasons = {c.document_id.split("#path=")[1]: c.reason for c in changes if isinstance(c, Gone)}
    assert reasons == {
        "docs/guide.rst": "renamed to docs/manual/guide.rst",
        "docs/old.txt": "deleted from the repository",
    }
    assert cursor == {"commit": second}

    # Nothing changed since: every document is unchanged and nothing is fetched for embedding.
    changes, known, cursor = await scan(source, known, cursor)
    assert [c for c in changes if not isinstance(c, Unchanged)] == []
    assert len(changes) == 4
    assert cursor == {"commit": second}


async def test_unchanged_content_without_a_memo_is_recognised_by_hash(repo: Repo, tmp_path: Path) -> None:
    source = source_for(f"git+file://{repo.bare}#subdirectory=docs", tmp_path)
    _, known, _ = await scan(source, {})
    forgotten = {d: KnownDocument(d, k.content_hash) for d, k in known.items()}  # lost state file
    changes, _, _ = await scan(source, forgotten)
    assert all(isinstance(c, Unchanged) for c in changes) and len(changes) == 4


async def test_a_tag_and_a_commit_are_refs_too(repo: Repo, tmp_path: Path) -> None:
    first = git(repo.work, "rev-parse", "HEAD")
    git(repo.work, "tag", "v1")
    repo.write("docs/later.md", "# Later\n\nAdded after v1.\n")
    repo.commit("later")

    for ref in ("v1", first):
        source = source_for(f"git+file://{repo.bare}@{ref}#subdirectory=docs", tmp_path / ref)
        changes, _, cursor = await scan(source, {})
        assert "docs/later.md" not in paths(changes, Fetched)
        assert cursor == {"commit": first}


async def test_bad_repositories_are_reported_and_change_nothing(repo: Repo, tmp_path: Path) -> None:
    cases = {
        f"git+file://{tmp_path}/missing.git": "does not exist",
        f"git+file://{repo.bare}@no-such-branch": "ref does not exist",
        f"git+file://{repo.bare}#subdirectory=nowhere": "subdirectory 'nowhere' does not exist",
    }
    known = {"x": KnownDocument("x", "h")}
    for name, reason in cases.items():
        changes, after, cursor = await scan(source_for(name, tmp_path / str(len(name))), known)
        assert len(changes) == 1 and isinstance(changes[0], Failed), changes
        assert reason in changes[0].reason
        assert after == known and cursor == {}


async def test_unsupported_and_hidden_files_are_skipped_with_a_note(repo: Repo, tmp_path: Path) -> None:
    source = source_for(f"git+file://{repo.bare}", tmp_path)
    result = source.scan({}, {})
    fetched = [c.document_id.split("#path=")[1] async for c in result if isinstance(c, Fetched)]
    assert "README.md" in fetched
    assert not any(p.endswith((".png", "secret.md")) for p in fetched)
    assert any("2 files of other types or in hidden folders skipped" in note for note in result.notes)


def test_citations_open_the_file_at_the_commit_on_known_hosts() -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    assert (
        hosted_file_url("https://github.com/org/repo.git", commit, "docs/a b.md")
        == f"https://github.com/org/repo/blob/{commit}/docs/a%20b.md"
    )
    assert (
        hosted_file_url("ssh://git@gitlab.com/group/sub/repo.git", commit, "a.md")
        == f"https://gitlab.com/group/sub/repo/-/blob/{commit}/a.md"
    )
    assert hosted_file_url("https://bitbucket.org/t/r.git", commit, "a.md") == (
        f"https://bitbucket.org/t/r/src/{commit}/a.md"
    )
    assert hosted_file_url("https://codeberg.org/t/r", commit, "a.md") == (
        f"https://codeberg.org/t/r/src/commit/{commit}/a.md"
    )
    assert hosted_file_url("https://gitlab.example.org/t/r.git", commit, "a.md") == (
        f"https://gitlab.example.org/t/r/-/blob/{commit}/a.md"
    )
    assert hosted_file_url("https://git.example.org/t/r.git", commit, "a.md") is None
    assert hosted_file_url("file:///srv/r.git", commit, "a.md") is None


# --- credentials over http, served by git http-backend -------------------------------------------


@pytest.fixture
async def git_server(repo: Repo) -> AsyncIterator[str]:
    """`git http-backend` (smart HTTP) behind Basic auth that accepts only TOKEN as the password."""
    expected = "Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()

    async def backend(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != expected:
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="git"'})
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": str(repo.bare.parent),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": request.path,
            "REQUEST_METHOD": request.method,
            "QUERY_STRING": request.query_string,
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "GIT_PROTOCOL": request.headers.get("Git-Protocol", ""),
            "REMOTE_USER": "x-access-token",
            "REMOTE_ADDR": "127.0.0.1",
        }
        process = await asyncio.create_subprocess_exec(
            "git", "http-backend", env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        output, _ = await process.communicate(await request.read())
        head, _, body = output.partition(b"\r\n\r\n")
        status, headers = 200, {}
        for line in head.decode().splitlines():
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.split()[0])
            else:
                headers[key.strip()] = value.strip()
        return web.Response(status=status, body=body, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", backend)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/remote.git"
    finally:
        await runner.cleanup()


async def test_a_token_from_the_environment_clones_and_never_shows(
    git_server: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    name = git_server.replace("http://", "git+http://") + "#subdirectory=docs&token_env=DOCS_TOKEN"
    source = source_for(name, tmp_path, DOCS_TOKEN=TOKEN)
    changes, _, cursor = await scan(source, {})

    assert paths(changes, Fetched) == ["docs/guide.rst", "docs/intro.md", "docs/notes.txt", "docs/old.txt"]
    assert cursor["commit"]
    assert TOKEN not in source.name and "token_env" not in source.name
    config = (source.clone_dir / "config").read_text()
    assert TOKEN not in config and TOKEN not in caplog.text
    assert not any(TOKEN in repr(change) for change in changes)


async def test_missing_or_wrong_credentials_are_reported_without_the_secret(
    git_server: str, tmp_path: Path
) -> None:
    plain = git_server.replace("http://", "git+http://")
    unset = source_for(plain + "#token_env=DOCS_TOKEN", tmp_path / "unset")
    wrong = source_for(plain + "#token_env=DOCS_TOKEN", tmp_path / "wrong", DOCS_TOKEN="wrong-token-123")
    none = source_for(plain, tmp_path / "none")
    in_url = source_for(plain.replace("127.0.0.1", f"me:{TOKEN}x@127.0.0.1"), tmp_path / "url")

    reasons = {}
    for label, source in {"unset": unset, "wrong": wrong, "none": none, "in_url": in_url}.items():
        changes, _, _ = await scan(source, {})
        assert len(changes) == 1 and isinstance(changes[0], Failed), changes
        assert not changes[0].temporary
        reasons[label] = changes[0].reason
        for secret in (TOKEN, "wrong-token-123"):
            assert secret not in changes[0].reason and secret not in changes[0].target
    assert "DOCS_TOKEN (token_env) is not set" in reasons["unset"]
    assert "rejected the credentials" in reasons["wrong"]
    assert "needs credentials" in reasons["none"]
    assert "rejected the credentials" in reasons["in_url"]
    assert in_url.name == plain  # the name (status, logs, state key) carries no userinfo


async def test_parse_result_of_a_broken_file_is_a_failure_not_an_exception(
    repo: Repo, tmp_path: Path
) -> None:
    repo.write("docs/broken.pdf", b"not a pdf at all")
    repo.commit("broken pdf")
    source = source_for(f"git+file://{repo.bare}#subdirectory=docs", tmp_path)
    changes, _, _ = await scan_raw(source)
    broken = next(c for c in changes if isinstance(c, Fetched) and c.document_id.endswith("broken.pdf"))
    outcome = broken.parse()
    assert isinstance(outcome, LoadFailure) and "not a PDF" in outcome.reason


async def scan_raw(source: GitSource) -> tuple[list[Change], None, None]:
    return [change async for change in source.scan({}, {})], None, None


# --- the state between runs, and the other kinds of source behind the same contract -------------


async def test_saved_state_makes_the_next_run_read_nothing(repo: Repo, tmp_path: Path) -> None:
    options = SourceOptions(
        data_dir=tmp_path / "data", environ={**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null"}
    )
    source = build_source(f"git+file://{repo.bare}#subdirectory=docs", options)
    state = await SourceStateFile.load(options.state_path)
    registry: dict[str, DocumentState] = {}  # what the index records once a document is written
    scan_one = source.scan(state.known(source, registry), state.cursor(source))
    async for change in scan_one:
        assert isinstance(change, Fetched)
        registry[change.document_id] = DocumentState(
            change.document_id, change.source, "t", change.content_hash, change.modified_time, 1
        )
        state.record(source, change.document_id, change.content_hash, change.memo)
    state.set_cursor(source, scan_one.cursor)
    await state.save()

    reloaded = await SourceStateFile.load(options.state_path)
    known = reloaded.known(source, registry)
    assert {k.memo["blob"] for k in known.values()} and reloaded.cursor(source) == scan_one.cursor
    changes = [change async for change in source.scan(known, reloaded.cursor(source))]
    assert len(changes) == 4 and all(isinstance(c, Unchanged) for c in changes)

    # A memo saved for other content than the index holds is not offered (it could hide a change).
    some_id = next(iter(registry))
    registry[some_id] = DocumentState(some_id, "s", "t", "another hash", datetime.now(UTC), 1)
    assert reloaded.known(source, registry)[some_id].memo == {}
    other = build_source("git+file:///elsewhere.git", options)
    assert reloaded.known(other, registry) == {}  # owned by the source that recorded them


async def test_a_local_folder_follows_the_same_contract(tmp_path: Path) -> None:
    folder = tmp_path / "handbook"
    folder.mkdir()
    (folder / "a.md").write_text("# A\n\nFirst page.\n")
    (folder / "b.txt").write_text("Second page.\n")
    source = build_source(str(folder), SourceOptions(data_dir=tmp_path / "data"))
    changes = [change async for change in source.scan({}, {})]
    fetched = {c.document_id: c for c in changes if isinstance(c, Fetched)}
    assert set(fetched) == {str((folder / "a.md").resolve()), str((folder / "b.txt").resolve())}
    parsed = fetched[str((folder / "a.md").resolve())].parse()
    assert isinstance(parsed, SourceDocument) and parsed.document.title == "A"
    known = {d: KnownDocument(d, c.content_hash) for d, c in fetched.items()}

    (folder / "b.txt").unlink()
    changes = [change async for change in source.scan(known, {})]
    assert [type(c).__name__ for c in changes] == ["Unchanged", "Gone"]
    (folder / "a.md").unlink()
    scan = source.scan(known, {})
    changes = [change async for change in scan]
    assert changes == [] and not scan.complete  # emptied: nothing deleted
    assert "no supported documents" in scan.notes[0]
