"""The command line when something is wrong: `index`'s exit codes, one line naming the setting for
an unusable DATA_DIR or DATABASE_URL (never its password), and error text printed as written.

In-process through Typer's runner like tests/test_cli.py (whose environments it reuses), except
the read-only DATA_DIR, which needs a process without root's permission override.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import cli_env, plain_cli_env, run  # noqa: F401 (fixtures)
from typer.testing import CliRunner

from configs.config import PROJECT_ROOT
from data.database import Database
from data.weaviate_server import free_port
from main import EXIT_BAD_SETTINGS, EXIT_INDEXED_WITH_FAILURES, cli

DOC = "# Rollouts\n\nDeployments roll out region by region and stop at the first failed health check.\n"


def _output(*args: str) -> tuple[int, list[str]]:
    """Exit code and the lines of stdout and stderr together."""
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output.strip().splitlines()


def test_index_exits_0_only_when_everything_was_indexed(
    cli_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    good = tmp_path / "good"
    good.mkdir()
    (good / "rollouts.md").write_text(DOC)
    assert run("index", str(good))[0] == 0

    code, out = run("index", str(tmp_path / "missing"))
    assert code == EXIT_INDEXED_WITH_FAILURES == 3
    assert f"- {tmp_path / 'missing'}: path does not exist" in out

    loop = tmp_path / "loop.md"
    loop.symlink_to(loop)
    code, out = run("index", "--full", str(loop), str(good))
    assert code == 3, out
    assert f"- {loop}: symbolic link loop" in out and "1 added" in out and "FAILED" not in out


@pytest.mark.parametrize(
    ("case", "problem"),
    [
        ("a file", "it exists and is not a folder"),
        ("under a file", "a part of its path is a file, not a folder"),
        ("a broken link", "it is a broken symbolic link"),
    ],
)
def test_unusable_data_dir_is_one_line_naming_it(
    plain_cli_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    problem: str,
) -> None:
    (tmp_path / "file").write_text("not a folder")
    data_dir = {
        "a file": tmp_path / "file",
        "under a file": tmp_path / "file" / "data",
        "a broken link": tmp_path / "link",
    }[case]
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    code, lines = _output("status")
    assert code == EXIT_BAD_SETTINGS == 2
    assert lines == [f"DATA_DIR={data_dir} cannot be used: {problem}. Point DATA_DIR at a writable folder."]


def test_read_only_data_dir_is_one_line_naming_it(
    plain_cli_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    prefix: list[str] = []
    if os.geteuid() == 0:  # root writes anywhere unless it gives up the permission override
        # util-linux is an Essential package on Debian: a missing setpriv is a broken machine.
        assert shutil.which("setpriv"), "setpriv (util-linux) is needed to drop root's permission override"
        drop = "-dac_override,-dac_read_search"
        prefix = ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}"]
    done = subprocess.run(
        [*prefix, sys.executable, str(PROJECT_ROOT / "main.py"), "status"],
        env={**os.environ, "DATA_DIR": str(folder)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        f"DATA_DIR={folder} cannot be used: no file can be created in it (permission denied). "
        "Point DATA_DIR at a writable folder."
    )


def test_missing_data_dir_is_created(
    plain_cli_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data_dir = tmp_path / "new" / "data"
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    code, lines = _output("status")
    assert code == 1 and "Weaviate" in lines[0] and "DATA_DIR" not in lines[0]  # got past DATA_DIR
    assert data_dir.is_dir()


@pytest.mark.parametrize("case", ["refused", "malformed", "unknown driver"])
def test_unusable_database_url_is_one_line_without_credentials(
    cli_env: dict[str, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    url, expected = {
        "refused": (
            f"postgresql://bob:s3cret-pw@127.0.0.1:{free_port()}/docs",
            "The conversation database postgresql+asyncpg://***@127.0.0.1:",
        ),
        "malformed": ("postgresql://bob:s3cret-pw@db:port/docs", "DATABASE_URL is not a database URL"),
        "unknown driver": ("mysql://bob:s3cret-pw@db/docs", "DATABASE_URL is not a database URL"),
    }[case]
    monkeypatch.setenv("DATABASE_URL", url)
    code, lines = _output("status")
    assert code == 1
    assert len(lines) == 1 and expected in lines[0] and "DATABASE_URL" in lines[0], lines
    assert "s3cret-pw" not in lines[0] and "bob" not in lines[0]


def test_database_display_url_has_no_credentials() -> None:
    database = Database("postgresql+asyncpg://bob:s3cret-pw@db.internal:5432/docs")
    assert database.display_url == "postgresql+asyncpg://***@db.internal:5432/docs"


def test_error_text_is_printed_as_written(
    plain_cli_env: dict[str, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLACK_REINDEX_COMMAND", "reindex")
    code, lines = _output("status")
    assert code == 2
    assert lines == [
        "Invalid configuration: SLACK_REINDEX_COMMAND: String should match pattern '^/[a-z0-9_-]+$'"
    ]
