"""Which spaces a chat place searches, who may ask there and how the bot answers: the resolution.

Layers, strongest first: what an admin set for the channel from the chat (stored in the
database), the channel's entry in the sources file's `places`, the direct-message entry (for
DMs), the workspace's or server's entry, then the spaces' own settings, then the defaults
(`mention`, everyone, no rate limit). A place nothing maps uses the space `default`: the
sources file's `[spaces.default]` when it has one, else every source. Each setting remembers the
layer it came from, so `show` can say where it comes from.

Access is the intersection: a user may ask when every layer and every space that names allowed
users, groups or roles allows them (a space must not answer from its docs to someone it does
not allow, just because the channel also searches an open space).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, cast

from data.spaces_store import PlaceOverride
from services.sources.sources_file import AccessModel, Mode, SourcesFile

__all__ = ["DEFAULT_SPACE", "Place", "Policy", "resolve"]

DEFAULT_SPACE = "default"
Platform = Literal["slack", "discord"]


@dataclass(frozen=True, slots=True)
class Place:
    """Where a message was written."""

    platform: Platform
    workspace: str | None  # Slack team id, Discord guild id (None for a Discord DM)
    channel: str | None
    is_dm: bool = False

    @property
    def key(self) -> str:
        """Where chat-set settings of this place are stored: the channel (a DM: the platform's DMs)."""
        return f"{self.platform}-dm" if self.is_dm else f"{self.platform}:{self.channel}"

    def file_keys(self) -> list[str]:
        """The sources file's `places` keys that apply, strongest first."""
        keys = [f"{self.platform}-dm", "dm"] if self.is_dm else [f"{self.platform}:{self.channel}"]
        if self.workspace:
            keys.append(f"{'slack-team' if self.platform == 'slack' else 'discord-guild'}:{self.workspace}")
        return keys


@dataclass(frozen=True, slots=True)
class AccessRule:
    """Who a layer or space allows; a user must be named, or be in a named group or role."""

    where: str
    users: frozenset[str]
    groups: frozenset[str]
    roles: frozenset[str]

    def allows(self, user: str | None, groups: Iterable[str], roles: Iterable[str]) -> bool:
        return (user is not None and user in self.users) or bool(
            self.groups & set(groups) or self.roles & set(roles)
        )


@dataclass(frozen=True, slots=True)
class Policy:
    """How a place works, resolved; `origins` says where each setting comes from."""

    place: Place
    spaces: tuple[str, ...]
    sources: tuple[str, ...] | None  # what to search; None: every source
    mode: Mode = "mention"
    ephemeral: bool = False
    rate_limit_per_minute: int = 0
    experts: tuple[str, ...] = ()
    rules: tuple[AccessRule, ...] = ()
    origins: dict[str, str] = field(default_factory=dict)

    def may_ask(self, user: str | None, groups: Iterable[str] = (), roles: Iterable[str] = ()) -> bool:
        groups, roles = list(groups), list(roles)
        return all(rule.allows(user, groups, roles) for rule in self.rules)

    def refusal(self) -> str:
        """The polite answer for someone the place does not allow (names who may ask)."""
        spaces = ", ".join(self.spaces)
        where = self.origins.get("access")
        return f"Sorry, questions here (space {spaces}) are limited to certain people ({where})."

    def describe(self) -> list[str]:
        """`show`: each setting and where it comes from."""
        sources = "every source" if self.sources is None else ", ".join(self.sources) or "none"
        access = "everyone" if not self.rules else "; ".join(rule.where for rule in self.rules)
        limit = (
            f"{self.rate_limit_per_minute} questions per user per minute"
            if self.rate_limit_per_minute
            else "none"
        )
        return [
            f"Spaces: {', '.join(self.spaces)} ({self.origins['spaces']}) — searching {sources}",
            f"Answer mode: {self.mode} ({self.origins['mode']})",
            f"Who may ask: {access}",
            f"Rate limit: {limit} ({self.origins['rate_limit_per_minute']})",
            f'Experts for "Ask a human": {", ".join(self.experts) or "none"} ({self.origins["experts"]})',
            f"Ephemeral answers: {'on' if self.ephemeral else 'off'} ({self.origins['ephemeral']})",
        ]


def _first(layers: Sequence[tuple[str, AccessModel]], name: str) -> tuple[object, str] | None:
    for where, model in layers:
        value = getattr(model, name)
        if value is not None and value != []:
            return value, where
    return None


def _chat_origin(override: PlaceOverride) -> str:
    return f"set in the chat by {override.updated_by} at {override.updated_at:%Y-%m-%d %H:%M} UTC"


def resolve(file: SourcesFile | None, place: Place, override: PlaceOverride | None) -> Policy:
    """The policy of `place` from the sources file (None: no file, one default space) and the
    chat-set `override`."""
    file = file or SourcesFile.model_construct(sources={}, spaces={}, places={})
    places: list[tuple[str, AccessModel]] = [
        (f"sources file, places.{key}", file.places[key]) for key in place.file_keys() if key in file.places
    ]
    origins: dict[str, str] = {}

    spaces: tuple[str, ...] = (DEFAULT_SPACE,)
    origins["spaces"] = "default: no mapping for this place"
    if override is not None and override.spaces is not None:
        spaces = override.spaces
        origins["spaces"] = _chat_origin(override)
    elif (found := _first(places, "spaces")) is not None:
        spaces, origins["spaces"] = tuple(cast(list[str], found[0])), found[1]

    space_layers: list[tuple[str, AccessModel]] = [
        (f"sources file, spaces.{name}", file.spaces[name]) for name in spaces if name in file.spaces
    ]
    layers: list[tuple[str, AccessModel]] = [*places, *space_layers]

    sources: tuple[str, ...] | None = ()
    for name in spaces:
        if name in file.spaces:
            sources = tuple(dict.fromkeys([*(sources or ()), *file.spaces[name].sources]))
        elif name == DEFAULT_SPACE:
            sources = None  # the implicit default space: every source
            break

    def setting(name: str, default: object) -> object:
        found = _first(layers, name)
        origins[name] = found[1] if found else "default"
        return found[0] if found else default

    mode = cast(Mode, setting("mode", "mention"))
    if override is not None and override.mode is not None:
        mode = cast(Mode, override.mode)
        origins["mode"] = _chat_origin(override)
    limits = [m.rate_limit_per_minute for _, m in space_layers if m.rate_limit_per_minute]
    place_limit = _first(places, "rate_limit_per_minute")
    if place_limit is not None:
        limit, origins["rate_limit_per_minute"] = cast(int, place_limit[0]), place_limit[1]
    else:
        limit = min(limits) if limits else 0
        origins["rate_limit_per_minute"] = "the strictest of the spaces" if limits else "default"
    place_experts = _first(places, "experts")
    experts = (
        tuple(cast(list[str], place_experts[0]))
        if place_experts
        else tuple(dict.fromkeys(e for _, m in space_layers for e in m.experts))
    )
    origins["experts"] = place_experts[1] if place_experts else "the spaces" if experts else "default"
    rules = tuple(
        AccessRule(where, frozenset(m.allowed_users), frozenset(m.allowed_groups), frozenset(m.allowed_roles))
        for where, m in layers
        if m.allowed_users or m.allowed_groups or m.allowed_roles
    )
    origins["access"] = "; ".join(rule.where for rule in rules) or "default"
    return Policy(
        place=place,
        spaces=spaces,
        sources=sources,
        mode=mode,
        ephemeral=bool(setting("ephemeral", False)),
        rate_limit_per_minute=limit,
        experts=experts,
        rules=rules,
        origins=origins,
    )
