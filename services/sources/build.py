"""From a source name to a `Source`: the one place that knows every kind and what each needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from configs.config import DEFAULT_MAX_FILE_BYTES
from services.sources.contract import Source
from services.sources.git_source import GitOptions, GitSource
from services.sources.local import LocalSource
from services.sources.naming import GitSpec, LocalSpec, SourceSpec, parse_source
from services.sources.web_client import WebLimits
from services.sources.web_source import WebSource

__all__ = ["SourceOptions", "build_source", "build_sources"]


@dataclass(frozen=True, slots=True)
class SourceOptions:
    """What sources need from `Settings` (built once by the caller; nothing here reads settings)."""

    data_dir: Path  # clones go to DATA_DIR/sources/git, the state file to DATA_DIR/sources/state.json
    web: WebLimits = field(default_factory=WebLimits)
    git_timeout_seconds: float = 300.0
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES  # MAX_FILE_BYTES: local and Git files
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)  # where token_env is looked up

    @property
    def state_path(self) -> Path:
        return self.data_dir / "sources" / "state.json"


def build_source(name: str | SourceSpec, options: SourceOptions) -> Source:
    """A path, a website or a Git repository; raises `SourceNameError` for an unusable name."""
    spec = parse_source(name) if isinstance(name, str) else name
    if isinstance(spec, LocalSpec):
        return LocalSource(spec, options.max_file_bytes)
    if isinstance(spec, GitSpec):
        git = GitOptions(
            clones_dir=options.data_dir / "sources" / "git",
            timeout_seconds=options.git_timeout_seconds,
            max_file_bytes=options.max_file_bytes,
            environ=options.environ,
        )
        return GitSource(spec, git)
    return WebSource(spec, options.web)


def build_sources(names: list[str], options: SourceOptions) -> list[Source]:
    return [build_source(name, options) for name in names]
