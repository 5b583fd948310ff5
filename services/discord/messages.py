"""Turn answers into Discord messages: 2000-character chunks, source lists, throttled streaming.

Discord rejects messages over 2000 characters, renders a code block only when both fences are
in the same message, and rate-limits edits; this module keeps all three rules in one place so
the bot module only wires events.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import discord

from services.chat.contract import Answer, Source

log = logging.getLogger(__name__)

DISCORD_LIMIT = 2000
_CLOSE_FENCE = "\n```"
_MAX_FENCE_HEADER = 40  # longer "```lang" lines are reopened as a bare fence
# Links we must not cut: [text](url), [text](<url>), <https://...> and bare URLs.
_LINK = re.compile(r"\[[^\]\n]*\]\(<?[^)\s]*>?\)|<https?://[^\s>]+>|https?://\S+")


def split_message(text: str, limit: int = DISCORD_LIMIT) -> list[str]:
    """Split `text` into chunks of at most `limit` characters.

    Cuts between lines where possible, never inside a link, and closes and reopens a code
    block that spans a cut so each chunk renders on its own.
    """
    text = text.strip("\n")
    if len(text) <= limit:
        return [text] if text.strip() else []
    # Room for a reopened fence header plus the closing fence around any line.
    line_budget = limit - _MAX_FENCE_HEADER - len(_CLOSE_FENCE) - 2
    chunks: list[str] = []
    current = ""
    fence: str | None = None  # the opening line of a code block still open at the end of `current`
    for raw_line in text.split("\n"):
        for line in _split_long_line(raw_line, line_budget):
            after = _toggle_fence(fence, line)
            candidate = f"{current}\n{line}" if current else line
            if len(candidate) + (len(_CLOSE_FENCE) if after else 0) <= limit:
                current, fence = candidate, after
                continue
            if current.strip():
                chunks.append(current + (_CLOSE_FENCE if fence else ""))
            reopen = _reopen_header(fence)
            current = f"{reopen}\n{line}" if reopen else line
            fence = _toggle_fence(fence, line)
    if current.strip() and current != _reopen_header(fence):
        chunks.append(current + (_CLOSE_FENCE if fence else ""))
    return chunks


def _toggle_fence(fence: str | None, line: str) -> str | None:
    """The open fence after `line`: a ``` line opens a block, or closes the open one."""
    if not line.lstrip().startswith("```"):
        return fence
    if fence is not None:
        return None
    stripped = line.strip()
    # "```python code```" on one line opens and closes in place.
    if len(stripped) > 3 and stripped.endswith("```"):
        return None
    return stripped


def _reopen_header(fence: str | None) -> str:
    if fence is None:
        return ""
    return fence if len(fence) <= _MAX_FENCE_HEADER else "```"


def _split_long_line(line: str, budget: int) -> list[str]:
    """Break one overlong line at spaces, moving each cut out of any link it would split."""
    pieces: list[str] = []
    while len(line) > budget:
        links = [match.span() for match in _LINK.finditer(line)]
        cut = line.rfind(" ", 0, budget + 1)
        if cut <= 0:
            cut = budget
        for start, end in links:
            if start < cut < end:
                cut = start if start > 0 else max(cut, min(end, budget))
                break
        if cut <= 0:
            cut = budget  # a single link longer than a message: nothing better exists
        pieces.append(line[:cut].rstrip())
        line = line[cut:].lstrip()
    pieces.append(line)
    return pieces


def format_sources(sources: Sequence[Source]) -> str:
    """A numbered source list with links; `<url>` suppresses Discord's link previews."""
    if not sources:
        return ""
    lines = ["**Sources**"]
    for source in sources:
        title = _link_text(source.title or source.location)
        where = f" · {_link_text(source.heading_path)}" if source.heading_path else ""
        url = source.url or (source.location if source.location.startswith(("http://", "https://")) else None)
        if url:
            lines.append(f"\\[{source.number}\\] [{title}](<{url}>){where}")
        else:
            lines.append(f"\\[{source.number}\\] {title}{where} (`{source.location}`)")
    return "\n".join(lines)


def _link_text(text: str) -> str:
    """Text safe inside `[...]`: brackets would end the link, Markdown would restyle it."""
    return discord.utils.escape_markdown(text.replace("[", "(").replace("]", ")").replace("\n", " "))


def render_answer(answer: Answer) -> str:
    """The full reply: answer text, then its sources."""
    sources = format_sources(answer.sources)
    text = answer.text.strip() or "(The answer was empty.)"
    return f"{text}\n\n{sources}" if sources else text


M = TypeVar("M")


def _monotonic() -> float:
    # Looked up on each call (not bound at import) so a patched clock, e.g. a test's virtual time, applies.
    return time.monotonic()


class MessageStream(Generic[M]):
    """Shows a growing answer as one or more Discord messages, edited at most once per `interval`.

    `send` posts a new message and returns a handle; `edit` replaces a message's content.
    Streaming edits are cosmetic, so their HTTP errors are logged and skipped; `finish` must
    land, so its errors propagate to the caller, which reports them to the user.
    """

    def __init__(
        self,
        send: Callable[[str], Awaitable[M]],
        edit: Callable[[M, str], Awaitable[object]],
        *,
        interval: float = 1.0,
        limit: int = DISCORD_LIMIT,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._send = send
        self._edit = edit
        self._interval = interval
        self._limit = limit
        self._clock = clock or _monotonic
        self._shown: list[tuple[M, str]] = []
        self._last_sync: float | None = None

    @property
    def messages(self) -> list[M]:
        """The messages posted so far, in order."""
        return [message for message, _ in self._shown]

    async def update(self, text: str) -> None:
        """Show `text` (the answer so far) unless the last update was less than `interval` ago."""
        now = self._clock()
        if self._last_sync is not None and now - self._last_sync < self._interval:
            return
        self._last_sync = now
        try:
            await self._sync(text)
        except discord.HTTPException as exc:
            log.warning("Streaming edit failed (%s); the final answer will still be sent", exc)

    async def finish(self, text: str) -> M:
        """Show the final `text`, however recently the last update ran; returns its last message."""
        return await self._sync(text)

    async def _sync(self, text: str) -> M:
        chunks = split_message(text, self._limit) or ["…"]
        for index, chunk in enumerate(chunks):
            if index < len(self._shown):
                message, shown = self._shown[index]
                if shown != chunk:
                    await self._edit(message, chunk)
                    self._shown[index] = (message, chunk)
            else:
                self._shown.append((await self._send(chunk), chunk))
        for index in range(len(chunks), len(self._shown)):
            message, shown = self._shown[index]
            if shown != "…":  # the text got shorter: blank the leftover message rather than leave stale text
                await self._edit(message, "…")
                self._shown[index] = (message, "…")
        return self._shown[len(chunks) - 1][0]
