"""Which sources a run indexes: the sources file (SOURCES_FILE), else DOCS_PATHS, plus ad-hoc names.

The sources file (TOML) names each source, so a name means the same thing to `index --source`,
`/reindex NAME`, the schedule in `serve` and `status`:

    [sources.handbook]
    location = "./handbook"            # relative to the file's folder
    include = ["*.md"]                 # globs on the path inside the source; `*` crosses folders
    exclude = ["drafts/*"]
    refresh_minutes = 360              # `serve` refreshes it this often (default REINDEX_INTERVAL_MINUTES)

    [sources.site]
    location = "https://docs.example.com/sitemap.xml"
    max_pages = 500                    # WEB_MAX_PAGES for this source
    max_depth = 4                      # WEB_MAX_DEPTH for this source

The file (`sources_file`) is validated as a whole when it is loaded; a mistake is one
`SourcesFileError` naming the file and the key, never a run that silently indexes less.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from configs.config import Settings
from configs.errors import UserFacingError
from services.indexing.loader import resolve_path
from services.sources.build import SourceOptions, build_source
from services.sources.contract import Source
from services.sources.filtering import FilteredSource
from services.sources.naming import LocalSpec, SourceSpec, parse_source
from services.sources.sources_file import SourcesFile, SourcesFileError
from services.sources.web_client import WebLimits

__all__ = ["Catalog", "SourceEntry", "SourcesFileError", "load_catalog", "source_options"]


@dataclass(frozen=True, slots=True)
class SourceEntry:
    """One source to index: its name (the file's key, or the location itself) and its options."""

    name: str
    spec: SourceSpec
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    refresh_minutes: float | None = None  # None: REINDEX_INTERVAL_MINUTES
    max_pages: int | None = None
    max_depth: int | None = None

    @property
    def location(self) -> str:
        """Where it is, without credentials (for `status` and reports)."""
        return self.spec.name

    def build(self, options: SourceOptions) -> Source:
        """The `Source` that scans it, with this entry's limits and globs."""
        web = options.web
        if self.max_pages is not None:
            web = dataclasses.replace(web, max_pages=self.max_pages)
        if self.max_depth is not None:
            web = dataclasses.replace(web, max_depth=self.max_depth)
        inner = build_source(self.spec, dataclasses.replace(options, web=web))
        return FilteredSource(inner, self.name, self.spec, self.include, self.exclude)


@dataclass(frozen=True, slots=True)
class Catalog:
    """The configured sources, in the order they are indexed."""

    entries: tuple[SourceEntry, ...]
    path: Path | None = None  # the sources file, when there is one

    def find(self, name: str) -> SourceEntry | None:
        return next((entry for entry in self.entries if entry.name == name), None)

    @property
    def names(self) -> list[str]:
        return [entry.name for entry in self.entries]

    def require(self, names: Sequence[str]) -> list[str]:
        """`names`, each a configured source; else `SourcesFileError` naming the known ones."""
        unknown = [name for name in names if self.find(name) is None]
        if unknown:
            where = f"SOURCES_FILE {self.path}" if self.path else "DOCS_PATHS (SOURCES_FILE is not set)"
            known = ", ".join(self.names) or "none"
            raise SourcesFileError(f"Unknown source {', '.join(unknown)}: {where} names {known}.")
        return list(names)

    def select(self, names: Sequence[str | Path] | None) -> list[SourceEntry]:
        """The entries to index: all of them for None; else each name as a configured source, or as
        a location (a path, a URL or a Git URL) indexed with the default options."""
        if names is None:
            return list(self.entries)
        chosen: list[SourceEntry] = []
        for name in names:
            entry = (self.find(name) if isinstance(name, str) else None) or self._by_location(name)
            if entry is None:
                spec = _spec(str(name))  # raises SourceNameError for an unusable name
                entry = SourceEntry(spec.name, spec)
            if all(picked.name != entry.name for picked in chosen):
                chosen.append(entry)
        return chosen

    def _by_location(self, name: str | Path) -> SourceEntry | None:
        """The configured entry a location names (`index docs` when DOCS_PATHS=docs), if any."""
        try:
            spec = _spec(str(name))
        except UserFacingError:
            return None
        for entry in self.entries:
            if entry.spec == spec or (
                isinstance(spec, LocalSpec)
                and isinstance(entry.spec, LocalSpec)
                and resolve_path(spec.path) == resolve_path(entry.spec.path)
            ):
                return entry
        return None


def _spec(location: str, base: Path | None = None) -> SourceSpec:
    spec = parse_source(location)
    if isinstance(spec, LocalSpec) and base is not None and not spec.path.is_absolute():
        return LocalSpec(base / spec.path)
    return spec


def load_catalog(settings: Settings) -> Catalog:
    """SOURCES_FILE when set, else one source per DOCS_PATHS entry. Raises `SourcesFileError`."""
    path = settings.sources_file
    if path is None:
        return Catalog(tuple(SourceEntry(spec.name, spec) for spec in map(parse_source, settings.docs_paths)))
    model = SourcesFile.read(path)
    entries = []
    for name, source in model.sources.items():
        try:
            spec = _spec(source.location, path.parent)
        except UserFacingError as exc:
            raise SourcesFileError(f"SOURCES_FILE {path}: sources.{name}.location: {exc}") from None
        entries.append(
            SourceEntry(
                name,
                spec,
                tuple(source.include),
                tuple(source.exclude),
                source.refresh_minutes,
                source.max_pages,
                source.max_depth,
            )
        )
    return Catalog(tuple(entries), path)


def source_options(settings: Settings) -> SourceOptions:
    """What sources need from `Settings`. `token_env` names are looked up in this process's
    environment: they name a secret the operator put there on purpose, not a setting."""
    return SourceOptions(
        data_dir=settings.data_dir,
        web=WebLimits(
            max_pages=settings.web_max_pages,
            max_depth=settings.web_max_depth,
            max_page_bytes=int(settings.web_max_page_bytes),
            concurrency_per_host=settings.web_concurrency_per_host,
            delay_seconds=settings.web_delay_seconds,
            timeout_seconds=settings.web_timeout_seconds,
            max_retry_after_seconds=settings.web_max_retry_after_seconds,
            max_url_variants=settings.web_max_url_variants,
            user_agent=settings.web_user_agent,
        ),
        git_timeout_seconds=settings.git_timeout_seconds,
        max_file_bytes=int(settings.max_file_bytes),
        environ=dict(os.environ),
    )
