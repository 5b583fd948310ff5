"""Which retrieved passages an answer cites, as `Source`s for adapters and chatkit annotations,
and citations that hold: an answer may cite only passages retrieved in its own turn.

The agent numbers passages [1], [2], ... in the order `search_docs` returned them
(`DocsAgentContext.passages[n - 1]`); the answer cites them by those numbers. A language model can
still write [7] after three passages, or cite nothing and answer from general knowledge:
`checked_answers` removes (and logs) every citation that points at no passage, as the answer
streams, and marks a factual answer left without a valid citation as not verified against the
docs — or, with `UNVERIFIED_ANSWERS=not-covered`, replaces it with "not covered".
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Sequence
from typing import Literal

from chatkit.types import (
    Annotation,
    AssistantMessageContentPartDone,
    AssistantMessageContentPartTextDelta,
    AssistantMessageItem,
    FileSource,
    ThreadItemDoneEvent,
    ThreadItemUpdatedEvent,
    ThreadStreamEvent,
    URLSource,
    UserMessageItem,
)

from data.records import Passage
from services.chat.contract import Source

log = logging.getLogger(__name__)

UnverifiedAnswers = Literal["note", "not-covered"]
UNVERIFIED_NOTE = "_Not verified against the docs: this answer cites none of the passages found for it._"
NOT_COVERED_ANSWER = (
    "The indexed documents don't seem to cover this: no answer could be verified against them. "
    "Try other words, or index more documents."
)
_CITATION = re.compile(r"\[(\d+)\]")
# A citation group as models write them: [2], [2, 3]; not a Markdown link ([2](url)) or [^2].
_CITATION_GROUP = re.compile(r"[ \t]*\[(\d+(?:\s*,\s*\d+)*)\](?!\()")
# What may still become a citation group when more text arrives: held back while streaming.
_UNFINISHED_TAIL = re.compile(r"[ \t]*\[[\d,\s]*\]?\Z")
# Code is never rewritten: fenced blocks and inline spans (an unclosed one runs to the line end).
_CODE = re.compile(r"```[\s\S]*?(?:```|\Z)|`[^`\n]*(?:`|(?=\n)|\Z)")
# An answer that says the documents don't cover the question needs no citation.
_ABSTENTION = re.compile(
    r"\b(?:do(?:es)?n[’']?t|do(?:es)? not|did(?:n[’']?t| not))\s+(?:seem to\s+)?"
    r"(?:cover|mention|say|contain|include|describe|explain|document)"
    r"|\bnot (?:covered|mentioned|documented|described)\b"
    r"|\b(?:couldn[’']?t|could not|can[’']?t|cannot|unable to) find\b"
    r"|\bno (?:matching|relevant) (?:passages?|documents?|information)\b",
    re.IGNORECASE,
)
# Messages that are not questions about anything: greetings, thanks, acknowledgements.
_PLEASANTRIES = frozenset(
    "hi hello hey hiya morning evening thanks thank thx ty cheers ok okay cool great nice awesome "
    "perfect bye goodbye lol haha".split()
)
_WORD = re.compile(r"\w+")


def cited_sources(text: str, passages: Sequence[Passage]) -> list[Source]:
    """The passages cited as [n] in `text`, by number; all passages when none is cited."""
    numbers = sorted({int(n) for n in _CITATION.findall(text) if 1 <= int(n) <= len(passages)})
    chosen = numbers or list(range(1, len(passages) + 1))
    return [to_source(number, passages[number - 1]) for number in chosen]


def to_source(number: int, passage: Passage) -> Source:
    """A `Source`, with `url` set when the passage came from a web page."""
    url = passage.source if passage.source.startswith(("http://", "https://")) else None
    return Source(
        number=number,
        title=passage.title,
        location=passage.source,
        url=url,
        heading_path=passage.heading_path,
    )


def annotate(item: AssistantMessageItem, sources: Sequence[Source]) -> AssistantMessageItem:
    """The item with one annotation per source, so ChatKit clients show them and the thread keeps them."""
    if not item.content or not sources:
        return item
    first = item.content[0]
    annotations = list(first.annotations)
    for source in sources:
        marker = f"[{source.number}]"
        position = first.text.find(marker)
        annotations.append(
            Annotation(
                source=_chatkit_source(source), index=position + len(marker) if position >= 0 else None
            )
        )
    content = [first.model_copy(update={"annotations": annotations}), *item.content[1:]]
    return item.model_copy(update={"content": content})


def annotated_sources(item: AssistantMessageItem) -> list[Source]:
    """The sources `annotate` attached to an answer, read back (how a turn's sources reach
    `ChatService`: the stored answer carries them, so nothing else has to)."""
    sources: list[Source] = []
    for part in item.content[:1]:
        for annotation in part.annotations:
            source = annotation.source
            location = source.url if isinstance(source, URLSource) else getattr(source, "filename", "")
            number_text, _, title = source.title.partition("] ")
            if not number_text.startswith("[") or not number_text[1:].isdigit():
                continue  # an annotation this module did not write
            sources.append(
                Source(
                    number=int(number_text[1:]),
                    title="" if title == location else title,
                    location=location,
                    url=source.url if isinstance(source, URLSource) else None,
                    heading_path=source.description or "",
                )
            )
    return sources


async def checked_answers(
    events: AsyncIterator[ThreadStreamEvent],
    passages: Sequence[Passage],
    question: UserMessageItem | None,
    policy: UnverifiedAnswers,
) -> AsyncIterator[ThreadStreamEvent]:
    """The turn's chatkit events with every answer's citations checked against `passages` (the
    turn's own list, which grows as the agent searches), and each finished answer annotated with
    the sources it cites.

    Text deltas are rewritten as they stream, so an invalid [n] is never shown; with `not-covered`
    an answer's text is held back until it cites a passage, so an unverified answer is never shown.
    """
    asked = _question_text(question)
    checks: dict[tuple[str, int], CitationCheck] = {}

    def check_for(item_id: str, index: int) -> CitationCheck:
        return checks.setdefault((item_id, index), CitationCheck(passages, policy))

    async for event in events:
        if isinstance(event, ThreadItemUpdatedEvent):
            update = event.update
            if isinstance(update, AssistantMessageContentPartTextDelta):
                shown = check_for(event.item_id, update.content_index).feed(update.delta)
                if shown:
                    yield event.model_copy(update={"update": update.model_copy(update={"delta": shown})})
                continue
            if isinstance(update, AssistantMessageContentPartDone):
                check = check_for(event.item_id, update.content_index)
                text = check.finish(asked, update.content.text)
                if rest := check.rest():
                    yield _delta(event.item_id, update.content_index, rest)
                content = update.content.model_copy(update={"text": text})
                event = event.model_copy(update={"update": update.model_copy(update={"content": content})})
        elif isinstance(event, ThreadItemDoneEvent) and isinstance(event.item, AssistantMessageItem):
            item = event.item
            parts = []
            for index, part in enumerate(item.content):
                check = checks.pop((item.id, index), CitationCheck(passages, policy, streamed=False))
                parts.append(part.model_copy(update={"text": check.finish(asked, part.text)}))
                if rest := check.rest():
                    yield _delta(item.id, index, rest)
            text = "".join(part.text for part in parts)
            item = annotate(item.model_copy(update={"content": parts}), cited_sources(text, passages))
            event = ThreadItemDoneEvent(item=item)
        yield event


def _delta(item_id: str, index: int, text: str) -> ThreadItemUpdatedEvent:
    update = AssistantMessageContentPartTextDelta(content_index=index, delta=text)
    return ThreadItemUpdatedEvent(item_id=item_id, update=update)


class CitationCheck:
    """One answer text's citations, checked as it streams (`feed`) and once whole (`finish`)."""

    def __init__(
        self, passages: Sequence[Passage], policy: UnverifiedAnswers, *, streamed: bool = True
    ) -> None:
        self.passages = passages
        self.policy = policy
        self.streamed = streamed  # False: the text came whole (no deltas to complete)
        self.raw = ""
        self.shown = ""
        self.final: str | None = None  # what `finish` decided (it runs at the part's and the item's end)

    def feed(self, delta: str) -> str:
        """The text to show now for `delta`: invalid citations removed, an unfinished one held
        back; with `not-covered`, nothing until a valid citation has appeared."""
        self.raw += delta
        tail = _UNFINISHED_TAIL.search(self.raw)
        settled = self.raw[: tail.start()] if tail else self.raw
        cleaned, valid, _ = remove_invalid_citations(settled, len(self.passages))
        if (self.policy == "not-covered" and not valid) or not cleaned.startswith(self.shown):
            return ""
        new, self.shown = cleaned[len(self.shown) :], cleaned
        return new

    def rest(self) -> str:
        """What the deltas have not shown of the final text yet (held back, or the note), once; the
        streamed text then adds up to the answer. Empty when the final text no longer continues
        what was shown (the not-covered answer after shown text cannot happen: nothing is shown
        before a valid citation)."""
        if not self.streamed or self.final is None or not self.final.startswith(self.shown):
            return ""
        rest, self.shown = self.final[len(self.shown) :], self.final
        return rest

    def finish(self, question: str, text: str) -> str:
        """The final text of the answer whose whole text is `text` (decided once, then repeated)."""
        if self.final is None:
            self.final = self._decide(question, text)
        return self.final

    def _decide(self, question: str, text: str) -> str:
        cleaned, valid, removed = remove_invalid_citations(text, len(self.passages))
        if removed:
            log.warning(
                "Removed citations %s from an answer: only %d passages were retrieved in its turn",
                ", ".join(f"[{n}]" for n in removed),
                len(self.passages),
            )
        if valid or not is_factual_question(question) or _ABSTENTION.search(cleaned):
            return cleaned
        log.info("An answer cites none of the %d passages retrieved for it", len(self.passages))
        if self.policy == "not-covered":
            return NOT_COVERED_ANSWER
        return f"{cleaned.rstrip()}\n\n{UNVERIFIED_NOTE}" if cleaned.strip() else UNVERIFIED_NOTE


def remove_invalid_citations(text: str, passages: int) -> tuple[str, list[int], list[int]]:
    """`text` without the citations that point at no passage (1..`passages`), code left as it is;
    also the valid and the removed numbers, in order. "[2, 9]" becomes "[2]"."""
    valid: list[int] = []
    removed: list[int] = []

    def rewrite(match: re.Match[str]) -> str:
        numbers = [int(n) for n in re.findall(r"\d+", match.group(1))]
        kept = [n for n in numbers if 1 <= n <= passages]
        valid.extend(kept)
        removed.extend(n for n in numbers if n not in kept)
        if not kept:
            return ""
        space = match.group(0)[: match.group(0).index("[")]
        return space + "".join(f"[{n}]" for n in kept)

    pieces: list[str] = []
    position = 0
    for code in _CODE.finditer(text):
        pieces += [_CITATION_GROUP.sub(rewrite, text[position : code.start()]), code.group(0)]
        position = code.end()
    pieces.append(_CITATION_GROUP.sub(rewrite, text[position:]))
    return "".join(pieces), valid, removed


def is_factual_question(text: str) -> bool:
    """Whether a message asks about something (so an answer to it needs sources): not a greeting,
    a thank-you or a short acknowledgement ("ok thanks", "lol")."""
    words = _WORD.findall(text.lower())
    if not words:
        return False
    if "?" not in text and len(words) <= 3:
        return False
    return not (words[0] in _PLEASANTRIES and len(words) <= 6)


def _question_text(item: UserMessageItem | None) -> str:
    if item is None:
        return ""
    return " ".join(getattr(part, "text", "") for part in item.content).strip()


def _chatkit_source(source: Source) -> URLSource | FileSource:
    title = f"[{source.number}] {source.title or source.location}"
    description = source.heading_path or None
    if source.url:
        return URLSource(url=source.url, title=title, description=description)
    return FileSource(filename=source.location, title=title, description=description)
