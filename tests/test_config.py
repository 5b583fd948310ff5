"""Settings: defaults, parsing, documentation in .env.example, and one-line errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from configs.config import ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No inherited variables, no .env: run from an empty folder."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_setting_is_documented_in_env_example() -> None:
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    fields = {name.upper() for name in Settings.model_fields}
    assert fields - documented == set(), "variables missing from .env.example"
    assert documented - fields == set(), ".env.example documents variables Settings does not read"


def test_env_example_as_dotenv_gives_the_defaults(clean_env: Path) -> None:
    (clean_env / ".env").write_text((ROOT / ".env.example").read_text())
    settings = load_settings()
    assert settings.openai_api_key is None  # empty values mean "unset", not an empty key
    assert not settings.llm_configured
    assert settings.docs_paths == ["docs"]
    assert settings.search_fusion == "relative_score"
    assert not settings.slack_enabled and not settings.discord_enabled


def test_lists_and_secrets_from_environment(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCS_PATHS", "handbook, wiki/export ,")
    monkeypatch.setenv("DISCORD_GUILD_IDS", "123,456")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value")
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db:5432/bot")
    settings = load_settings()
    assert settings.docs_paths == ["handbook", "wiki/export"]
    assert settings.discord_guild_ids == [123, 456]
    assert "sk-secret-value" not in repr(settings) and "sk-secret-value" not in str(settings.openai_api_key)
    assert settings.database_dsn == "postgresql+asyncpg://u:p@db:5432/bot"
    assert "u:p@" not in repr(settings)
    assert settings.use_responses_api  # OpenAI itself: Responses API


def test_other_endpoints_default_to_chat_completions(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:11434/v1")
    settings = load_settings()
    assert settings.llm_configured and not settings.use_responses_api


def test_invalid_values_name_the_variable(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PORT", "eighty")
    monkeypatch.setenv("EMBEDDING_PROVIDER", "magic")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "HTTP_PORT" in message and "EMBEDDING_PROVIDER" in message
    assert "\n" not in message


def test_overlap_must_be_smaller_than_chunk_size(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHUNK_SIZE", "300")
    monkeypatch.setenv("CHUNK_OVERLAP", "300")
    with pytest.raises(ConfigError, match="CHUNK_OVERLAP"):
        load_settings()


def test_main_stops_with_one_clear_line(clean_env: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "SEARCH_ALPHA": "2.5", "HOME": str(clean_env)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "status"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "SEARCH_ALPHA" in lines[0], done.stderr
    assert "Traceback" not in done.stderr
