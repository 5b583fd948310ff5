"""The sources file (SOURCES_FILE, TOML): its format, validated as a whole when it is read.

Three tables: `sources` (what to index: docs/sources.md), `spaces` (named sets of sources with
who may ask and how the bot answers) and `places` (which spaces a Slack channel or workspace, a
Discord server or channel, or direct messages use: docs/spaces.md). A mistake anywhere is one
`SourcesFileError` naming the file and the key, never a bot that silently searches more.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from configs.errors import UserFacingError

__all__ = ["PLACE_KEY", "Mode", "PlaceModel", "SourceModel", "SourcesFile", "SourcesFileError", "SpaceModel"]

Mode = Literal["mention", "auto", "thread-only"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# slack:C123 (channel), slack-team:T123 (workspace), discord:123 (channel), discord-guild:123
# (server), slack-dm / discord-dm / dm (direct messages)
PLACE_KEY = re.compile(
    r"^(?:(?:slack|slack-team|discord|discord-guild):[A-Za-z0-9]+|slack-dm|discord-dm|dm)$"
)


class SourcesFileError(UserFacingError):
    """The sources file cannot be used; the message names the file and what is wrong."""


class SourceModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    location: str = Field(min_length=1)
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    refresh_minutes: float | None = Field(None, ge=0.0)
    max_pages: int | None = Field(None, ge=1)
    max_depth: int | None = Field(None, ge=0)


class AccessModel(BaseModel):
    """Who may ask and how the bot answers: on a space, and overridden per place."""

    model_config = ConfigDict(extra="forbid")

    mode: Mode | None = None  # mention (default), auto, thread-only
    ephemeral: bool | None = None  # answers only the asker sees, where the platform has them
    allowed_users: list[str] = Field(default_factory=list)  # Slack or Discord user ids; empty: all
    allowed_groups: list[str] = Field(default_factory=list)  # Slack user group ids (S…)
    allowed_roles: list[str] = Field(default_factory=list)  # Discord role ids
    rate_limit_per_minute: int | None = Field(None, ge=0)  # questions per user; 0: no limit
    experts: list[str] = Field(default_factory=list)  # Slack U…/S… ids; Discord "role:ID" or user ids


class SpaceModel(AccessModel):
    sources: list[str] = Field(min_length=1)


class PlaceModel(AccessModel):
    spaces: list[str] | None = None


class SourcesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: dict[str, SourceModel] = Field(min_length=1)
    spaces: dict[str, SpaceModel] = Field(default_factory=dict)
    places: dict[str, PlaceModel] = Field(default_factory=dict)

    @field_validator("sources", "spaces")
    @classmethod
    def _names(cls, value: dict[str, object]) -> dict[str, object]:
        for name in value:
            if re.fullmatch(NAME_PATTERN, name) is None:
                raise ValueError(f"the name '{name}' must be letters, digits, '.', '_' or '-'")
        return value

    @field_validator("places")
    @classmethod
    def _place_keys(cls, value: dict[str, PlaceModel]) -> dict[str, PlaceModel]:
        for key in value:
            if PLACE_KEY.fullmatch(key) is None:
                raise ValueError(
                    f"'{key}' is not a place: use slack:CHANNEL, slack-team:TEAM, discord:CHANNEL, "
                    "discord-guild:SERVER, slack-dm, discord-dm or dm"
                )
        return value

    def check_references(self, path: Path) -> None:
        """Spaces name configured sources, places name configured spaces."""
        for space, model in self.spaces.items():
            if unknown := [name for name in model.sources if name not in self.sources]:
                raise SourcesFileError(
                    f"SOURCES_FILE {path}: spaces.{space}.sources: no source {', '.join(unknown)}"
                )
        for place, placed in self.places.items():
            missing = [name for name in placed.spaces or [] if name not in self.spaces and name != "default"]
            if missing:
                raise SourcesFileError(
                    f"SOURCES_FILE {path}: places.{place}.spaces: no space {', '.join(missing)}"
                )

    @classmethod
    def read(cls, path: Path) -> SourcesFile:
        """Parse and validate the file; `SourcesFileError` for anything wrong with it."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SourcesFileError(f"SOURCES_FILE {path} cannot be read: {exc.strerror or exc}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SourcesFileError(f"SOURCES_FILE {path} is not valid TOML: {exc}") from None
        try:
            model = cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
            )
            raise SourcesFileError(f"SOURCES_FILE {path}: {problems}") from None
        model.check_references(path)
        return model
