"""Settings for the bot, read from the environment and `.env` (see `.env.example`).

One flat `Settings` object is built once in `main.py` and passed down; nothing deeper
reads the environment. Variable names are the field names in upper case.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import ByteSize, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from configs.errors import UserFacingError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WEAVIATE_BINARY = PROJECT_ROOT / ".cache" / "weaviate" / "bin" / "weaviate-server"
# Also the loader's default, for callers without Settings.
DEFAULT_MAX_FILE_BYTES = 25_000_000

CommaList = Annotated[list[str], NoDecode]
CommaIntList = Annotated[list[int], NoDecode]


class ConfigError(UserFacingError):
    """A setting is missing or invalid; the message names the variable."""


def _split_commas(value: object) -> object:
    """Accept `a,b,c` (and JSON-style lists given directly) for list settings."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every setting of the bot. Secrets are `SecretStr` and never printed."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,
    )

    # --- General -----------------------------------------------------------------------
    data_dir: Path = Field(Path(".data"), description="Embedded Weaviate data, SQLite file and caches.")
    docs_paths: CommaList = Field(
        default_factory=lambda: [str(PROJECT_ROOT / "docs")],
        description="Comma-separated files or folders that `index` indexes by default.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # --- Language model (any OpenAI-compatible endpoint) -------------------------------------
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    chat_model: str = "gpt-4.1-mini"
    openai_api: Literal["auto", "responses", "chat_completions"] = "auto"
    openai_tracing: bool = False
    llm_timeout_seconds: float = Field(120.0, gt=0)
    # An LLM answer citing none of its turn's passages: a visible note, or "not covered" instead.
    unverified_answers: Literal["note", "not-covered"] = "note"

    # --- Embeddings ---------------------------------------------------------------------
    embedding_provider: Literal["local", "openai"] = "local"
    embedding_model: str | None = None
    embedding_batch_size: int = Field(32, ge=1, le=2048)
    embedding_threads: int = Field(0, ge=0, le=64, description="ONNX threads for local embeddings; 0 = auto.")

    # --- Weaviate -----------------------------------------------------------------------
    weaviate_url: str | None = None
    weaviate_api_key: SecretStr | None = None
    weaviate_grpc_url: str | None = None
    weaviate_binary: Path = DEFAULT_WEAVIATE_BINARY
    weaviate_http_port: int = Field(8079, ge=0, le=65535)
    weaviate_grpc_port: int = Field(50061, ge=0, le=65535)
    weaviate_startup_timeout: float = Field(90.0, gt=0)
    # A dead embedded server is restarted; after this long without one, `serve` exits non-zero.
    weaviate_restart_give_up_seconds: float = Field(300.0, gt=0)
    # A Weaviate call running this long gets a readiness check; a server failing it ends the call.
    weaviate_stall_check_seconds: float = Field(3.0, gt=0)
    weaviate_collection: str = Field("DocChunks", pattern=r"^[A-Z][A-Za-z0-9_]*$")
    # A Weaviate cluster: copies of each index generation (set when one is created), background
    # repair between them, and how many copies must answer a search / acknowledge a write.
    weaviate_replication_factor: int = Field(1, ge=1, le=15)
    weaviate_async_replication: bool = True
    weaviate_read_consistency: Literal["ONE", "QUORUM", "ALL"] = "QUORUM"
    weaviate_write_consistency: Literal["ONE", "QUORUM", "ALL"] = "QUORUM"

    # --- Indexing and retrieval -----------------------------------------------------------
    chunk_size: int = Field(1000, ge=100, le=20000)
    chunk_overlap: int = Field(150, ge=0, le=5000)
    embed_heading_path: bool = True
    # Bounds on one file's memory and embedding time; a file over either is skipped and reported.
    max_file_bytes: ByteSize = Field(ByteSize(DEFAULT_MAX_FILE_BYTES), ge=0, description="0 = no limit.")
    max_chunks_per_document: int = Field(5000, ge=0, description="0 = no limit.")
    reindex_interval_minutes: float = Field(0.0, ge=0.0)
    # One index run at a time across processes: a lease in the database (docs/indexing.md).
    index_lease_seconds: float = Field(30.0, ge=1.0, le=3600.0)
    index_heartbeat_seconds: float = Field(5.0, gt=0.0, le=1200.0)
    search_top_k: int = Field(5, ge=1, le=50)
    search_alpha: float = Field(0.7, ge=0.0, le=1.0)  # best nDCG@10 in docs/benchmarks.md
    search_fusion: Literal["relative_score", "ranked"] = "relative_score"
    search_min_score: float = Field(0.0, ge=0.0, le=1.0)
    # Empty = the floor measured for the local model (docs/benchmarks.md), none for other models.
    search_min_similarity: float | None = Field(None, ge=0.0, le=1.0)
    # Empty = the coverage judgement's measured threshold (local model); 0 = no judgement.
    search_min_coverage: float | None = Field(None, ge=0.0, le=1.0)

    # --- Knowledge sources: websites and Git repositories (docs/sources.md) -----------------
    # A TOML file naming each source with its location, globs, limits and refresh interval.
    sources_file: Path | None = None
    web_max_pages: int = Field(1000, ge=1, le=1_000_000)
    web_max_depth: int = Field(8, ge=0, le=100)
    web_max_page_bytes: ByteSize = Field(ByteSize(20_000_000), ge=1)
    web_concurrency_per_host: int = Field(2, ge=1, le=32)
    web_delay_seconds: float = Field(0.25, ge=0.0, le=60.0)
    web_timeout_seconds: float = Field(30.0, gt=0.0, le=600.0)
    web_max_retry_after_seconds: float = Field(60.0, ge=0.0, le=3600.0)
    web_max_url_variants: int = Field(50, ge=1, le=100_000)
    web_user_agent: str = Field("docs-chat-bot/0.1 (documentation indexer)", min_length=1)
    git_timeout_seconds: float = Field(300.0, gt=0.0, le=86_400.0)

    # --- Storage and HTTP ----------------------------------------------------------------
    database_url: SecretStr | None = None
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    chatkit_api_token: SecretStr | None = None
    # SIGTERM: seconds in-flight answers get to finish after readiness turns false (then cut short).
    shutdown_grace_seconds: float = Field(20.0, ge=0.0, le=3600.0)

    # --- Slack --------------------------------------------------------------------------
    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_admin_user_ids: CommaList = Field(default_factory=list)
    slack_reindex_command: str = Field("/reindex", pattern=r"^/[a-z0-9_-]+$")
    # The command that shows and changes a channel's spaces and answer mode (docs/spaces.md).
    slack_spaces_command: str = Field("/docs-bot", pattern=r"^/[a-z0-9_-]+$")
    slack_answer_bots: bool = False
    slack_dedup_ttl_seconds: int = Field(3600, ge=60)

    # --- Insights: the report, /admin, the weekly digest, retention (docs/insights.md) --------
    admin_token: SecretStr | None = None
    admin_username: str = "admin"
    admin_password: SecretStr | None = None
    insights_show_user_ids: bool = False
    insights_cluster_distance: float = Field(0.45, gt=0.0, lt=2.0)
    retention_days: int = Field(0, ge=0)
    retention_mode: Literal["delete", "anonymise"] = "delete"
    insights_digest_channel: str | None = Field(None, pattern=r"^(slack|discord):\S+$")
    insights_digest_weekday: int = Field(0, ge=0, le=6)
    insights_digest_hour_utc: int = Field(9, ge=0, le=23)

    # --- Discord ------------------------------------------------------------------------
    discord_token: SecretStr | None = None
    discord_guild_ids: CommaIntList = Field(default_factory=list)
    discord_admin_role_ids: CommaIntList = Field(default_factory=list)
    # Gateway shards (docs/deployment.md, "Discord shards"): how many the bot has (empty = as many as
    # Discord recommends) and which of them this process connects (empty = all). No two processes
    # may hold the same shard: both would answer every message in its guilds.
    discord_shard_count: int | None = Field(None, ge=1, le=65536)
    discord_shard_ids: CommaIntList = Field(default_factory=list)

    _split = field_validator(
        "docs_paths",
        "slack_admin_user_ids",
        "discord_guild_ids",
        "discord_admin_role_ids",
        "discord_shard_ids",
        mode="before",
    )(_split_commas)

    @field_validator("discord_shard_ids")
    @classmethod
    def _shards_within_count(cls, value: list[int], info: object) -> list[int]:
        count = getattr(info, "data", {}).get("discord_shard_count")
        if not value:
            return value
        if count is None:
            raise ValueError("needs DISCORD_SHARD_COUNT: shard ids only mean something for a known count")
        if len(set(value)) != len(value):
            raise ValueError("lists a shard twice")
        if outside := [shard for shard in value if not 0 <= shard < count]:
            raise ValueError(f"must be between 0 and DISCORD_SHARD_COUNT - 1 ({count - 1}); got {outside}")
        return sorted(value)

    @field_validator("index_heartbeat_seconds")
    @classmethod
    def _heartbeat_within_lease(cls, value: float, info: object) -> float:
        lease = getattr(info, "data", {}).get("index_lease_seconds")
        if lease is not None and value > lease / 3:
            raise ValueError(f"must be at most a third of INDEX_LEASE_SECONDS ({lease:g})")
        return value

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap_below_size(cls, value: int, info: object) -> int:
        size = getattr(info, "data", {}).get("chunk_size")
        if size is not None and value >= size:
            raise ValueError(f"must be smaller than CHUNK_SIZE ({size})")
        return value

    # --- Derived values -----------------------------------------------------------------
    @property
    def database_dsn(self) -> str:
        """The SQLAlchemy async URL: DATABASE_URL, else a SQLite file in DATA_DIR."""
        if self.database_url is not None:
            url = self.database_url.get_secret_value()
            if url.startswith("postgres://"):
                url = "postgresql://" + url.removeprefix("postgres://")
            if url.startswith("postgresql://"):
                url = "postgresql+asyncpg://" + url.removeprefix("postgresql://")
            return url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'docsbot.sqlite3').resolve()}"

    @property
    def llm_configured(self) -> bool:
        """True when an OpenAI-compatible endpoint is configured."""
        return self.openai_api_key is not None or self.openai_base_url is not None

    @property
    def use_responses_api(self) -> bool:
        """Responses API for OpenAI itself; Chat Completions for other servers unless chosen."""
        if self.openai_api == "auto":
            return self.openai_base_url is None
        return self.openai_api == "responses"

    @property
    def slack_enabled(self) -> bool:
        """Slack runs when a bot token and a transport (Socket Mode or HTTP events) are set."""
        return self.slack_bot_token is not None and (
            self.slack_app_token is not None or self.slack_signing_secret is not None
        )

    @property
    def discord_enabled(self) -> bool:
        return self.discord_token is not None


def load_settings(**overrides: object) -> Settings:
    """Build `Settings`, turning validation errors into one line per bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = "_".join(str(part) for part in error["loc"] if isinstance(part, str)).upper()
            problems.append(f"{name or 'settings'}: {error['msg']}")
        raise ConfigError("Invalid configuration: " + "; ".join(problems)) from None
