"""The `/reindex` chat command, once for every platform: what to do and what to say, not how to send it.

The flow parses the option (`[incremental|full] [SOURCE...]`, `status`, `help`), asks the adapter
whether the user may reindex, starts the run in the background (of the named sources, else all
of them), and tells the adapter what to show: one reply to
the command, then progress updates spaced in time and a final report. The messages are data
(`Started`, `AlreadyRunning`, `ReindexReport`...); each adapter words and formats them for its
platform and delivers them through its own channels (Slack's ack and response_url, Discord's
interaction followups).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from services.chat.replies import describe_error
from services.indexing.contract import (
    IndexAlreadyRunning,
    IndexProgress,
    IndexResult,
    IndexRunFailed,
    Reindexer,
)

ReindexMode = Literal["incremental", "full", "status", "help"]
MODES: dict[str, ReindexMode] = {
    "": "incremental",
    "incremental": "incremental",
    "full": "full",
    "status": "status",
    "help": "help",
    "?": "help",
}


def parse_mode(option: str) -> ReindexMode | None:
    """The mode a user typed (case and spaces ignored; nothing means incremental), or None."""
    return MODES.get(option.strip().lower())


def parse_command(text: str) -> tuple[ReindexMode, list[str]]:
    """`full handbook site` -> ("full", ["handbook", "site"]); words that are not a mode are
    source names (an unknown one is answered with the known names)."""
    words = text.split()
    mode = parse_mode(words[0]) if words else "incremental"
    if mode is None:
        return "incremental", words
    return mode, words[1:]


# --- What the flow says -------------------------------------------------------------------------
@dataclass(frozen=True)
class Help:
    """The user asked what the command does."""


@dataclass(frozen=True)
class UnknownMode:
    """`option` is not a mode nor a source (as typed, lower-cased); adapters add their help."""

    option: str
    known: tuple[str, ...] = ()  # the source names


@dataclass(frozen=True)
class UnknownSource:
    """Names that are no configured source; `known` are the ones that are."""

    names: tuple[str, ...]
    known: tuple[str, ...]


@dataclass(frozen=True)
class Status:
    """The running run's progress (None when idle), and a line per source."""

    progress: IndexProgress | None
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class Refused:
    """The user may not do this; `reason` is the adapter's own words from its admin check."""

    reason: str


@dataclass(frozen=True)
class AlreadyRunning:
    """Another run holds the single slot; nothing was started."""

    progress: IndexProgress


@dataclass(frozen=True)
class Started:
    """A run of `sources` started in the background; progress and a report follow as updates."""

    full: bool
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class Progress:
    """How far the run this command started is (already spaced as the platform's pacing asks)."""

    progress: IndexProgress


@dataclass(frozen=True)
class ReindexReport:
    """How the run ended. `summary` has the counts and failed files (empty when the run failed before
    counting); `error` says why a failed run stopped, as a sentence the user can act on."""

    level: Literal["ok", "warning", "failed"]
    summary: str
    error: str = ""


ReindexReply = Help | UnknownMode | UnknownSource | Status | Refused | AlreadyRunning | Started
RunUpdate = Progress | ReindexReport
# Awaited before a run starts (and, without `public_status`, before the status): None when the
# user may reindex, else the reason in the adapter's words.
AdminCheck = Callable[[], Awaitable[str | None]]


def report_of(outcome: IndexResult | BaseException) -> ReindexReport:
    """The final report of a run's result or of what stopped it."""
    if isinstance(outcome, IndexResult):
        clean = outcome.failed == 0 and outcome.error is None
        return ReindexReport("ok" if clean else "warning", outcome.summary())
    if isinstance(outcome, IndexRunFailed):  # its message says what failed and what still serves
        return ReindexReport("failed", outcome.result.summary(), str(outcome))
    if isinstance(outcome, IndexAlreadyRunning):  # another process holds the lease: nothing ran
        return ReindexReport("warning", "", str(outcome))
    return ReindexReport("failed", "", f"The reindex failed: {describe_error(outcome)}")


class ReindexOutput(Protocol):
    """Where one command's messages go; each adapter implements it with its platform's calls."""

    async def reply(self, message: ReindexReply) -> None:
        """Answer the command, exactly once (Slack: the acknowledgement; Discord: the interaction)."""
        ...

    async def update(self, message: RunUpdate) -> None:
        """Progress and the final report of the run the command started, sent from the run's task.

        The report must reach the user even when the command's reply channel has expired.
        """
        ...


@dataclass(frozen=True)
class ProgressPacing:
    """How often a platform takes progress updates of one run.

    A platform that edits one message (Discord) shows every report the indexer makes, `interval`
    seconds apart. One with a message budget (Slack's response_url takes five) sets `limit`: the
    first update then waits `interval` and each later one twice as long as the one before, so a few
    messages cover a long run.
    """

    interval: float
    limit: int | None = None


class ReindexFlow:
    """Runs `/reindex` against a `Reindexer` for one platform; one run at a time is the reindexer's rule."""

    def __init__(self, reindexer: Reindexer, pacing: ProgressPacing, *, public_status: bool = True) -> None:
        self.reindexer = reindexer
        self.pacing = pacing
        self.public_status = public_status  # False: the status, too, is for admins only

    async def handle(
        self,
        option: str,
        *,
        check_admin: AdminCheck,
        output: ReindexOutput,
        scope: Sequence[str] | None = None,
    ) -> None:
        """Answer one command; a started run reports through `output.update` until it ends.

        `scope`: the sources an incremental run without names refreshes (the channel's spaces');
        a full rebuild always reads every source (it replaces the whole index).
        """
        mode, names = parse_command(option)
        if mode == "help":
            await output.reply(Help())
            return
        if mode == "status" and self.public_status:
            await output.reply(await self._status())
            return
        known = await self.reindexer.sources.names()
        unknown = [name for name in names if name not in known]
        if unknown:  # a lone unknown word is more likely a mistyped mode than a source
            lone = len(names) == 1 and option.split()[0].lower() not in MODES
            await output.reply(
                UnknownMode(names[0].lower(), tuple(known))
                if lone
                else UnknownSource(tuple(unknown), tuple(known))
            )
            return
        refusal = await check_admin()
        if refusal is not None:
            await output.reply(Refused(refusal))
            return
        if mode == "status":
            await output.reply(await self._status())
            return
        full = mode == "full"
        if not names and not full and scope is not None:
            names = [name for name in known if name in scope]
        await self._start(full, names, tuple(names or known), output)

    async def _status(self) -> Status:
        lines = await self.reindexer.sources.status_lines()
        return Status(self.reindexer.progress, tuple(lines))

    async def _start(
        self, full: bool, names: list[str], shown: tuple[str, ...], output: ReindexOutput
    ) -> None:
        updates = _RunUpdates(output, self.pacing)
        try:
            self.reindexer.start_background(
                full=full,
                sources=names or None,
                on_progress=updates.progress,
                progress_interval=self.pacing.interval,
                on_done=updates.done,
            )
        except IndexAlreadyRunning as exc:
            await output.reply(AlreadyRunning(exc.progress))
            return
        try:
            await output.reply(Started(full, shown))
        finally:
            updates.replied.set()


class _RunUpdates:
    """The updates of one run: never before the reply to the command, progress within the pacing."""

    def __init__(self, output: ReindexOutput, pacing: ProgressPacing) -> None:
        self.output = output
        self.pacing = pacing
        self.replied = asyncio.Event()  # an update before "started" would confuse, and may have nowhere to go
        self.sent = 0
        self.next_at = time.monotonic() + pacing.interval

    async def progress(self, progress: IndexProgress) -> None:
        await self.replied.wait()
        if self._due():
            await self.output.update(Progress(progress))

    def _due(self) -> bool:
        if self.pacing.limit is None:
            return True  # the indexer already spaces its reports by the interval
        now = time.monotonic()
        if self.sent >= self.pacing.limit or now < self.next_at:
            return False
        self.sent += 1
        self.next_at = now + self.pacing.interval * 2**self.sent
        return True

    async def done(self, outcome: IndexResult | BaseException) -> None:
        await self.replied.wait()
        await self.output.update(report_of(outcome))
