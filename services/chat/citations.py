"""Which retrieved passages an answer cites, as `Source`s for adapters and chatkit annotations.

The agent numbers passages [1], [2], ... in the order `search_docs` returned them
(`DocsAgentContext.passages[n - 1]`); the answer cites them by those numbers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from chatkit.types import Annotation, AssistantMessageItem, FileSource, URLSource

from data.records import Passage
from services.chat.contract import Source

_CITATION = re.compile(r"\[(\d+)\]")


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


def _chatkit_source(source: Source) -> URLSource | FileSource:
    title = f"[{source.number}] {source.title or source.location}"
    description = source.heading_path or None
    if source.url:
        return URLSource(url=source.url, title=title, description=description)
    return FileSource(filename=source.location, title=title, description=description)
