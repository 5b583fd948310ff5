"""The command line end to end: index, search (stdin JSON lines), ask --json, status --json.

Commands run in-process through Typer's runner against the session's real Weaviate (`cli_env`;
`plain_cli_env` has none behind it) and the real embedder; settings come from environment
variables exactly as a user would set them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from docs_corpus import BROKEN, build_corpus
from typer.testing import CliRunner

from configs.config import PROJECT_ROOT, Settings
from data.weaviate_server import EmbeddedWeaviate
from main import cli

MakeSettings = Callable[..., Settings]


@pytest.fixture
def plain_cli_env(
    tmp_path: Path, make_plain_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """Environment for the CLI: the test corpus plus one broken file, and no Weaviate behind it."""
    docs = tmp_path / "docs"
    build_corpus(docs)
    (docs / "empty.md").write_bytes((BROKEN / "empty.md").read_bytes())
    monkeypatch.chdir(tmp_path)  # no stray .env
    plain = make_plain_settings()  # (its fixture also clears the caller's settings variables)
    env = {
        "DATA_DIR": str(tmp_path / "data"),
        "DOCS_PATHS": str(docs),
        "WEAVIATE_URL": str(plain.weaviate_url),
        "WEAVIATE_COLLECTION": "Cli" + tmp_path.name.replace("_", "").replace("-", "")[-12:],
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def cli_env(
    plain_cli_env: dict[str, str], weaviate_server: EmbeddedWeaviate, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """`plain_cli_env` pointed at the session Weaviate."""
    env = {
        **plain_cli_env,
        "WEAVIATE_URL": weaviate_server.url,
        "WEAVIATE_GRPC_URL": weaviate_server.grpc_url,
    }
    if weaviate_server.api_key is not None:
        env["WEAVIATE_API_KEY"] = weaviate_server.api_key.get_secret_value()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def run(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), input=stdin)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout


def test_index_search_ask_status(cli_env: dict[str, str]) -> None:
    code, out = run("index")
    assert code == 3, out  # finished, but not everything was indexed
    assert "7 documents seen: 6 added" in out and "1 failed" in out
    assert "empty.md" in out  # the broken file is named with its reason

    code, out = run("index")
    assert code == 3 and "6 unchanged" in out and "0 embeddings computed" in out, out

    queries = "What is the default region?\nWhat is new in Acme Deploy 4.2?\n"
    code, out = run("search", "-k", "3", stdin=queries)
    assert code == 0, out
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["query"] for line in lines] == queries.splitlines()
    assert all(
        set(result) >= {"text", "title", "source", "score"} for line in lines for result in line["results"]
    )
    assert lines[0]["results"][0]["source"].endswith("configuration.rst")
    assert "eu-west-1" in lines[0]["results"][0]["text"]
    assert lines[1]["results"][0]["source"].endswith("release-notes.pdf")
    assert len(lines[0]["results"]) <= 3

    code, out = run("ask", "How do I contact support?", "--json")
    assert code == 0, out
    answer = json.loads(out)
    assert "No language model is configured" in answer["answer"]
    assert "support@acme.example" in answer["answer"]
    assert any(source["source"].endswith("faq.txt") for source in answer["sources"])

    code, out = run("status", "--json")
    assert code == 0, out
    status = json.loads(out)
    assert status["index"]["documents"] == 6 and status["index"]["chunks"] > 6
    assert status["index"]["embedder"] == "all-MiniLM-L6-v2-onnx-int8"
    assert status["last_run"]["unchanged"] == 6 and status["language_model"] is None


def test_index_of_a_folder_without_documents_says_so(cli_env: dict[str, str], tmp_path: Path) -> None:
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    (empty / "image.png").write_bytes(b"\x89PNG\r\n")
    code, out = run("index", str(empty))
    assert code == 0
    assert "no supported documents" in out.lower() or "empty" in out.lower(), out


def test_store_down_is_one_clear_line(plain_cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(cli, ["search", "anything"])
    assert result.exit_code == 1
    assert plain_cli_env["WEAVIATE_URL"] in result.output and "Traceback" not in result.output


def test_settings_fixture_is_isolated(plain_settings: Settings) -> None:
    """Guard: the variables the CLI tests above set must not leak into later fixture-built settings."""
    assert plain_settings.docs_paths == [str(PROJECT_ROOT / "docs")]  # the default, not DOCS_PATHS
    assert plain_settings.weaviate_collection.startswith("T")


def test_console_chat_keeps_the_conversation(cli_env: dict[str, str]) -> None:
    import asyncio

    from sqlalchemy import func, select

    from data.database import ConversationRow, Database, ItemRow

    assert run("index")[0] == 3  # indexed; the corpus's empty.md is reported as failed
    dialogue = "How do I install Acme Deploy?\nand on macOS?\n/exit\n"
    code, out = run("chat", stdin=dialogue)
    assert code == 0, out
    assert out.count("No language model is configured") == 2
    first, second = out.split("you> ")[1:3]
    assert "install.md" in first and "Sources" in first
    assert "install.md" in second  # the bare follow-up was searched with the earlier question
    assert any(line.startswith("[1] ") and line.endswith("install.md") for line in first.splitlines())

    async def stored() -> tuple[int, int]:
        database = Database(f"sqlite+aiosqlite:///{cli_env['DATA_DIR']}/docsbot.sqlite3")
        try:
            async with database.sessions() as session:
                conversations = await session.scalar(select(func.count()).select_from(ConversationRow))
                items = await session.scalar(select(func.count()).select_from(ItemRow))
            return int(conversations or 0), int(items or 0)
        finally:
            await database.dispose()

    conversations, items = asyncio.run(stored())
    assert conversations == 1  # one console conversation ...
    assert items >= 4  # ... holding both questions and both answers


def test_named_sources_and_spaces_from_the_command_line(
    cli_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, text in {
        "billing": "# Invoices\n\nInvoices are sent on the first working day of the month.\n",
        "ops": "# Backups\n\nBackups run every night at 02:00 and are kept for 35 days.\n",
    }.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{name}.md").write_text(text)
    sources = tmp_path / "sources.toml"
    sources.write_text(
        '[sources.billing]\nlocation = "billing"\n[sources.ops]\nlocation = "ops"\n'
        '[spaces.finance]\nsources = ["billing"]\n'
    )
    monkeypatch.setenv("SOURCES_FILE", str(sources))

    code, out = run("index", "--source", "nope")
    assert (code == 2 and "Unknown source nope" in out + str(out)) or code == 2
    code, out = run("index", "--source", "billing")
    assert code == 0 and "1 documents seen: 1 added" in out, out
    code, out = run("index")
    assert code == 0 and "1 added" in out and "1 unchanged" in out, out

    code, out = run("search", "--json", "--space", "finance", "How long are backups kept?")
    titles = [r["title"] for r in json.loads(out)["results"]]
    assert code == 0 and "Backups" not in titles, out  # the finance space holds only billing
    code, out = run("search", "--json", "How long are backups kept?")
    assert json.loads(out)["results"][0]["title"] == "Backups"
    code, out = run("search", "--space", "nowhere", "backups")
    assert code == 1

    code, out = run("status")
    assert code == 0 and "Sources:" in out, out
    assert "billing (local " in out and "ops (local " in out and "refreshed on demand" in out
    assert "  finance: billing — 1 documents" in out and "  default: billing, ops — 2 documents" in out
