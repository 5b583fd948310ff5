"""Slack rendering of answers: Markdown to mrkdwn, Block Kit blocks, splitting within Slack's limits.

Slack rejects a section whose text passes 3,000 characters and a message with more than 50 blocks
(an answer that is too long must never be lost), and shows `&`, `<`, `>` only when escaped.
Pure functions only, so the limits are easy to test.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from markdown_to_mrkdwn import SlackMarkdownConverter

from services.chat.contract import Answer, Source
from services.insights.outcomes import classify_answer
from services.insights.records import NOT_COVERED

SECTION_LIMIT = 3000  # characters of text in one section block
MESSAGE_BLOCK_LIMIT = 50  # blocks in one message
STREAM_MESSAGE_LIMIT = 11000  # markdown characters streamed into one message (Slack caps it at 12,000)
FALLBACK_TEXT_LIMIT = 300  # the plain `text` shown in notifications
FEEDBACK_UP = "answer_feedback_up"
FEEDBACK_DOWN = "answer_feedback_down"
ASK_HUMAN = "ask_human"
BUTTON_VALUE_LIMIT = 2000  # characters in a button's value
ASKED_QUESTION_LIMIT = 500  # characters of the question an "Ask a human" button carries
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


@dataclass(frozen=True, slots=True)
class HumanOffer:
    """An answer may offer "Ask a human" (its place has experts): the question and its thread."""

    question: str
    thread_ts: str


@dataclass(frozen=True, slots=True)
class HumanRequest:
    """What a click on "Ask a human" (or on 👎 where it is offered) needs to hand the question over."""

    answer_id: str
    question: str
    answer: str
    thread_ts: str


def human_request_value(request: HumanRequest) -> str:
    """The request as a button value of at most 2,000 characters. The click may reach any replica
    and the value is all it brings, so the question and the bot's answer travel in it, cut to fit
    (the answer first: the question is what the experts and the docs need)."""
    question, answer, answer_id = request.question[:ASKED_QUESTION_LIMIT], request.answer, request.answer_id
    while True:
        fields = {"id": answer_id, "q": question, "a": answer, "t": request.thread_ts}
        value = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
        excess = len(value) - BUTTON_VALUE_LIMIT
        if excess <= 0:
            return value
        # A character is one to six in JSON (`"` is `\"`): cutting half the excess (and one for the
        # "…") each round never cuts much more than needed, and ends in a few rounds.
        cut = excess // 2 + 2
        if answer:
            answer = answer[: len(answer) - cut] + "…" if len(answer) > cut else ""
        elif question:
            question = question[: max(0, len(question) - cut)]
        else:
            answer_id = answer_id[: max(0, len(answer_id) - excess)]


def parse_human_request(value: str) -> HumanRequest | None:
    """The request in a button value, or None when the value is a bare answer id (or not ours)."""
    if not value.startswith("{"):
        return None
    try:
        fields = json.loads(value)
    except ValueError:
        return None
    if not isinstance(fields, dict):
        return None
    parts = [fields.get(name) for name in ("id", "q", "a", "t")]
    if not all(isinstance(part, str) for part in parts):
        return None
    return HumanRequest(*(str(part) for part in parts))


def answer_id_of(value: str) -> str:
    """The answer a feedback button is about: its value is the id, or a request holding it."""
    request = parse_human_request(value)
    return request.answer_id if request is not None else value


def _button(action_id: str, text: str, value: str) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "value": value[:BUTTON_VALUE_LIMIT],
    }


def ask_human_button(request_value: str) -> dict[str, Any]:
    return _button(ASK_HUMAN, "🙋 Ask a human", request_value)


def offer_human_blocks(text: str, request_value: str) -> list[dict[str, Any]]:
    """The reply to a 👎 where the place has experts: thanks, and "Ask a human" for this answer."""
    return [
        section(f"{escape_mrkdwn(text)} Would a person's answer help? The space's experts can answer here."),
        {"type": "actions", "block_id": "ask_human", "elements": [ask_human_button(request_value)]},
    ]


def feedback_block(
    answer_id: str, *, down_value: str | None = None, ask_human: str | None = None
) -> dict[str, Any]:
    """👍/👎 buttons (the answer id travels in their value), and "Ask a human" when `ask_human`
    (the request's value) is given. `down_value`: 👎 carries the request too, to offer it later."""
    elements = []
    if answer_id:
        elements += [
            _button(FEEDBACK_UP, "👍 Helpful", answer_id),
            _button(FEEDBACK_DOWN, "👎 Not helpful", down_value or answer_id),
        ]
    if ask_human is not None:
        elements.append(ask_human_button(ask_human))
    return {"type": "actions", "block_id": "answer_feedback", "elements": elements}


def footer_blocks(answer: Answer, human: HumanOffer | None = None) -> list[dict[str, Any]]:
    """What follows the answer text: sources and feedback buttons. Where `human` says the place has
    experts, a "not covered" answer offers "Ask a human" at once, any other after a 👎."""
    blocks = source_blocks(answer.sources)
    request = None
    if human is not None:
        request = human_request_value(
            HumanRequest(answer.answer_id or "", human.question, answer.text, human.thread_ts)
        )
    offer = request is not None and classify_answer(answer.text, len(answer.sources)) == NOT_COVERED
    if answer.answer_id or offer:
        blocks.append(
            feedback_block(answer.answer_id or "", down_value=request, ask_human=request if offer else None)
        )
    return blocks


def answer_messages(answer: Answer, human: HumanOffer | None = None) -> list[list[dict[str, Any]]]:
    """The whole answer as one or more messages of at most 50 blocks; the footer goes on the last."""
    text_blocks = [section(piece) for piece in split_text(to_mrkdwn(answer.text) or "_(empty answer)_")]
    return pack_blocks(text_blocks + footer_blocks(answer, human))


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
