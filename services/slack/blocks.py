"""Slack rendering of answers: Markdown to mrkdwn, Block Kit blocks, splitting within Slack's limits.

Slack rejects a section whose text passes 3,000 characters and a message with more than 50 blocks
(an answer that is too long must never be lost), and shows `&`, `<`, `>` only when escaped.
Pure functions only, so the limits are easy to test.
"""

from __future__ import annotations

import re
from typing import Any

from markdown_to_mrkdwn import SlackMarkdownConverter

from services.chat.contract import Answer, Source

SECTION_LIMIT = 3000  # characters of text in one section block
MESSAGE_BLOCK_LIMIT = 50  # blocks in one message
STREAM_MESSAGE_LIMIT = 11000  # markdown characters streamed into one message (Slack caps it at 12,000)
FALLBACK_TEXT_LIMIT = 300  # the plain `text` shown in notifications
FEEDBACK_UP = "answer_feedback_up"
FEEDBACK_DOWN = "answer_feedback_down"
_FENCE = "```"

_converter = SlackMarkdownConverter()
_LINE_START_QUOTE = re.compile(r"^(\s*)&gt;", re.MULTILINE)
_AUTOLINK = re.compile(r"<(https?://[^\s<>]+)>")


def escape_mrkdwn(text: str) -> str:
    """Escape the three characters Slack treats as control sequences."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_mrkdwn(markdown: str) -> str:
    """Markdown (as the model writes it) to Slack mrkdwn; `<`, `>` and `&` in the text stay visible."""
    markdown = _AUTOLINK.sub(r"[\1](\1)", markdown)  # <https://...> autolinks stay links
    escaped = _LINE_START_QUOTE.sub(r"\1>", escape_mrkdwn(markdown))  # keep `> quote` lines as quotes
    return _converter.convert(escaped).strip()


def split_text(text: str, limit: int = SECTION_LIMIT) -> list[str]:
    """Split at line, then word boundaries into pieces of at most `limit` characters.

    A code block cut in two is closed at the end of one piece and reopened in the next, so each
    piece renders on its own.
    """
    if len(text) <= limit:
        return [text] if text else []
    budget = limit - len(_FENCE) - 1  # room to close a code block
    pieces: list[str] = []
    current = ""
    in_code = False
    for line in _hard_wrap(text.split("\n"), budget - len(_FENCE) - 1):
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > budget and current:
            pieces.append(current + ("\n" + _FENCE if in_code else ""))
            current = (_FENCE + "\n" + line) if in_code else line
        else:
            current = candidate
        if line.strip().startswith(_FENCE):
            in_code = not in_code
    if current.strip():
        pieces.append(current)
    return pieces


def _hard_wrap(lines: list[str], width: int) -> list[str]:
    """Lines longer than `width` cut at the last space before it (or hard, for one long word)."""
    wrapped: list[str] = []
    for line in lines:
        while len(line) > width:
            cut = line.rfind(" ", 0, width)
            cut = cut if cut > width // 2 else width
            wrapped.append(line[:cut])
            line = line[cut:].lstrip(" ")
        wrapped.append(line)
    return wrapped


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def source_line(source: Source) -> str:
    """`[n] <url|title> · headings`, or the path in code when the source is a file."""
    title = escape_mrkdwn(source.title or source.location)
    url = source.url or (source.location if source.location.startswith(("http://", "https://")) else None)
    where = f"<{escape_mrkdwn(url)}|{title}>" if url else f"{title} `{escape_mrkdwn(source.location)}`"
    heading = f" · {escape_mrkdwn(source.heading_path)}" if source.heading_path else ""
    return f"[{source.number}] {where}{heading}"


def source_blocks(sources: list[Source]) -> list[dict[str, Any]]:
    """The cited sources as section block(s), each within the section limit."""
    if not sources:
        return []
    text = "*Sources*\n" + "\n".join(source_line(source) for source in sources)
    return [section(piece) for piece in split_text(text)]


def feedback_block(answer_id: str) -> dict[str, Any]:
    """👍/👎 buttons; the answer id travels in the button value (at most 2,000 characters)."""
    return {
        "type": "actions",
        "block_id": "answer_feedback",
        "elements": [
            {
                "type": "button",
                "action_id": FEEDBACK_UP,
                "text": {"type": "plain_text", "text": "👍 Helpful", "emoji": True},
                "value": answer_id[:2000],
            },
            {
                "type": "button",
                "action_id": FEEDBACK_DOWN,
                "text": {"type": "plain_text", "text": "👎 Not helpful", "emoji": True},
                "value": answer_id[:2000],
            },
        ],
    }


def footer_blocks(answer: Answer) -> list[dict[str, Any]]:
    """What follows the answer text: sources and feedback buttons."""
    blocks = source_blocks(answer.sources)
    if answer.answer_id:
        blocks.append(feedback_block(answer.answer_id))
    return blocks


def answer_messages(answer: Answer) -> list[list[dict[str, Any]]]:
    """The whole answer as one or more messages of at most 50 blocks; the footer goes on the last."""
    text_blocks = [section(piece) for piece in split_text(to_mrkdwn(answer.text) or "_(empty answer)_")]
    return pack_blocks(text_blocks + footer_blocks(answer))


def pack_blocks(blocks: list[dict[str, Any]], limit: int = MESSAGE_BLOCK_LIMIT) -> list[list[dict[str, Any]]]:
    return [blocks[start : start + limit] for start in range(0, len(blocks), limit)] or [[]]


def progress_blocks(markdown: str) -> list[dict[str, Any]]:
    """A partial answer shown while it is written (the fallback to streaming): the last fitting part."""
    pieces = split_text(to_mrkdwn(markdown))
    return [section(piece) for piece in pieces[-MESSAGE_BLOCK_LIMIT:]] or [section("…")]


def notification_text(markdown: str) -> str:
    """Plain `text` for notifications and screen readers."""
    flat = " ".join(markdown.split())
    return flat if len(flat) <= FALLBACK_TEXT_LIMIT else flat[: FALLBACK_TEXT_LIMIT - 1] + "…"


def failure_text(message: str) -> str:
    """What the user sees when no answer could be produced."""
    return f":warning: Sorry, I could not answer: {escape_mrkdwn(message)}"
