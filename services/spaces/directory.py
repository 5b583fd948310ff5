"""The spaces as adapters use them: a place's policy, the chat commands that change it, the rate
limit and "Ask a human" — the same for Slack and Discord, every replica reading one database.

The sources file is read again when it changes (its modification time), so an edit applies to
the next message; a file that became invalid keeps the last good one in use (and is logged),
because a typo must not open every space to everyone.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from configs.config import Settings
from configs.errors import UserFacingError
from data.spaces_store import HumanAnswer, SpacesStore
from services.sources.sources_file import Mode, SourcesFile
from services.spaces.policy import DEFAULT_SPACE, Place, Policy, resolve

__all__ = ["MODES", "SpaceError", "Spaces"]

log = logging.getLogger(__name__)

MODES: tuple[Mode, ...] = ("mention", "auto", "thread-only")


class SpaceError(UserFacingError):
    """A chat command that cannot be done (an unknown space or mode); the message says why."""


@dataclass
class _Loaded:
    file: SourcesFile | None
    mtime: float | None


class Spaces:
    """Policies of places, from SOURCES_FILE and what admins set from the chat."""

    def __init__(self, settings: Settings, store: SpacesStore) -> None:
        self.settings = settings
        self.store = store
        self._loaded = _Loaded(None, None)
        self._lock = asyncio.Lock()

    async def file(self) -> SourcesFile | None:
        """The sources file as last read without errors (None: SOURCES_FILE is not set)."""
        path = self.settings.sources_file
        if path is None:
            return None
        async with self._lock:
            try:
                mtime = (await asyncio.to_thread(path.stat)).st_mtime
            except OSError:
                mtime = None
            if mtime != self._loaded.mtime or self._loaded.file is None:
                try:
                    self._loaded = _Loaded(await asyncio.to_thread(SourcesFile.read, path), mtime)
                except UserFacingError as exc:
                    if self._loaded.file is None:
                        raise
                    log.error("%s; the last valid version stays in use", exc)
            return self._loaded.file

    async def names(self) -> list[str]:
        file = await self.file()
        names = list(file.spaces) if file else []
        return names if DEFAULT_SPACE in names else [*names, DEFAULT_SPACE]

    async def policy(self, place: Place) -> Policy:
        return resolve(await self.file(), place, await self.store.override(place.key))

    async def sources_of(self, space: str) -> tuple[str, ...] | None:
        """What a search in `space` covers (None: every source); `SpaceError` for an unknown space."""
        file = await self.file()
        if file is not None and space in file.spaces:
            return tuple(file.spaces[space].sources)
        if space == DEFAULT_SPACE:
            return None
        raise SpaceError(f"There is no space '{space}'. Spaces: {', '.join(await self.names())}.")

    async def use(self, place: Place, spaces: list[str], by: str) -> Policy:
        """`use SPACE...`: the place searches these spaces (stored; every replica sees it)."""
        known = await self.names()
        if not spaces:
            raise SpaceError(f"Name one or more spaces: {', '.join(known)}.")
        if unknown := [name for name in spaces if name not in known]:
            raise SpaceError(f"No space called {', '.join(unknown)}. Spaces: {', '.join(known)}.")
        await self.store.set_override(place.key, by=by, spaces=tuple(dict.fromkeys(spaces)))
        return await self.policy(place)

    async def set_mode(self, place: Place, mode: str, by: str) -> Policy:
        """`mode mention|auto|thread-only` for the place."""
        if mode not in MODES:
            raise SpaceError(f"The mode must be one of {', '.join(MODES)}, not '{mode}'.")
        await self.store.set_override(place.key, by=by, mode=mode)
        return await self.policy(place)

    async def reset(self, place: Place) -> Policy:
        """Forget what was set from the chat: the sources file applies again."""
        await self.store.clear_override(place.key)
        return await self.policy(place)

    async def allow_question(self, policy: Policy, user: str | None) -> str | None:
        """None when the user may ask now, else the message to show (the per-user rate limit)."""
        limit = policy.rate_limit_per_minute
        if not limit or user is None:
            return None
        if await self.store.take_question(f"{policy.place.platform}:{user}", limit):
            return None
        return f"You have asked {limit} questions in the last minute, the limit here; please wait a moment."

    async def ask_human(
        self, policy: Policy, thread: str, question: str, answer: str, by: str | None
    ) -> None:
        await self.store.ask_human(thread, policy.spaces[0], question, answer, by)

    async def open_request(self, thread: str) -> bool:
        """Whether `thread` has an "Ask a human" request still waiting for an expert's reply."""
        return await self.store.open_request(thread)

    async def record_reply(self, thread: str, expert: str, reply: str) -> bool:
        return await self.store.record_reply(thread, expert, reply)

    async def human_answers(self) -> list[HumanAnswer]:
        return await self.store.human_answers()
