"""Split parsed documents into passages that fit the embedder and keep their context.

Sections (headings) are split first, then by size at the best boundary available: paragraph,
line, sentence, word — never inside a word (unless a single "word" is longer than a chunk).
Chunks are exact slices of the section text, so the overlap between neighbours is real text.
Tiny neighbouring sections under the same heading are merged so a chunk is never just a stub.
Chunks are made as they are asked for (`iter_chunks`), so a large document never has all of its
chunks (or all of a long section's cut points) in memory at once.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, islice

from configs.config import Settings
from data.records import Chunk
from services.indexing.loader import ParsedDocument, Section

HEADING_SEPARATOR = " > "

# Separators, from the strongest boundary to the weakest; pieces are the text between them.
_PARAGRAPHS = re.compile(r"\n[ \t]*\n\s*")
_LINES = re.compile(r"\n\s*")
_SENTENCES = re.compile(r"(?<=[.!?;:])\s+")
_WORDS = re.compile(r"\s+")
_PROSE = (_PARAGRAPHS, _SENTENCES, _LINES, _WORDS)
_CODE = (_PARAGRAPHS, _LINES, _SENTENCES, _WORDS)  # code: a line is the natural unit
_WORD_START = re.compile(r"(?<!\S)\S")


@dataclass(frozen=True, slots=True)
class _Piece:
    """A section (or several merged tiny ones) to be split by size."""

    heading_path: list[str]
    text: str


def _common_prefix(a: Sequence[str], b: Sequence[str]) -> list[str]:
    prefix: list[str] = []
    for left, right in zip(a, b, strict=False):
        if left != right:
            break
        prefix.append(left)
    return prefix


def merge_small_sections(sections: Sequence[Section], chunk_size: int) -> list[_Piece]:
    """Merge runs of tiny sections that share a heading (or both have none) within `chunk_size`.

    The merged piece keeps the shared heading path; the sub-headings it absorbs stay in its text
    as a line of their own, so nothing is lost.
    """
    tiny = max(1, chunk_size // 4)
    pieces: list[_Piece] = []
    for section in sections:
        if pieces:
            last = pieces[-1]
            prefix = _common_prefix(last.heading_path, section.heading_path)
            related = bool(prefix) or not (last.heading_path or section.heading_path)
            # Only when a side is tiny and the shared heading keeps the context.
            small = len(last.text) < tiny or len(section.text) < tiny
            if related and small:
                text = "\n\n".join(
                    _with_subheading(part.heading_path, part.text, prefix) for part in (last, section)
                )
                if len(text) <= chunk_size:
                    pieces[-1] = _Piece(prefix, text)
                    continue
        pieces.append(_Piece(list(section.heading_path), section.text))
    return pieces


def _with_subheading(path: Sequence[str], text: str, prefix: Sequence[str]) -> str:
    rest = list(path[len(prefix) :])
    return HEADING_SEPARATOR.join(rest) + "\n" + text if rest else text


def _spans(
    text: str, start: int, end: int, size: int, order: tuple[re.Pattern[str], ...] = _PROSE, level: int = 0
) -> Iterator[tuple[int, int]]:
    """Cut text[start:end] into trimmed spans of at most `size`, at the strongest boundary possible."""
    if end - start <= size:
        yield start, end
        return
    if level == len(order):  # a single word longer than a chunk: cut it, no other way
        yield from ((s, min(s + size, end)) for s in range(start, end, size))
        return
    cursor = start
    separators = ((m.start(), m.end()) for m in order[level].finditer(text, start, end))
    for separator_start, separator_end in chain(separators, [(end, end)]):
        if separator_start > cursor:
            inner = order
            if level == 0:  # per paragraph: code splits at lines first, prose at sentences
                inner = _CODE if "```" in text[cursor:separator_start] else _PROSE
            yield from _spans(text, cursor, separator_start, size, inner, level + 1)
        cursor = separator_end


def _overlap_start(
    text: str, chunk_start: int, chunk_end: int, next_span: tuple[int, int], size: int, overlap: int
) -> int:
    """Where the next chunk begins: up to `overlap` chars back, at a sentence or word start."""
    next_start, next_end = next_span
    if overlap <= 0:
        return next_start
    lowest = max(chunk_start + 1, chunk_end - overlap, next_end - size)
    words = [m.start() for m in _WORD_START.finditer(text, lowest, chunk_end)]
    if not words:
        return next_start
    latest_clean = chunk_end - (chunk_end - words[0]) // 3
    for position in words:  # the earliest sentence/line start keeps the most context
        if position > latest_clean:
            break
        before = text[chunk_start:position].rstrip()
        if before[-1] in ".!?:;" or "\n" in text[chunk_start + len(before) : position]:
            return position
    return words[0]


def split_text(text: str, chunk_size: int, chunk_overlap: int) -> list[str]:
    """Split `text` into slices of at most `chunk_size` chars; neighbours share up to
    `chunk_overlap` chars of text, starting at a word (preferably sentence) boundary."""
    return list(_iter_split(text, chunk_size, chunk_overlap))


def _iter_split(text: str, chunk_size: int, chunk_overlap: int) -> Iterator[str]:
    """`split_text`, one slice at a time."""
    stripped = text.strip()
    if not stripped:
        return
    spans = _spans(stripped, 0, len(stripped), chunk_size)
    start, end = next(spans)
    for span in spans:
        if span[1] - start <= chunk_size:
            end = span[1]
            continue
        yield stripped[start:end]
        start = _overlap_start(stripped, start, end, span, chunk_size, chunk_overlap)
        end = span[1]
    yield stripped[start:end]


def headings_below_title(title: str, heading_path: Sequence[str]) -> list[str]:
    """The heading path without a first heading that repeats the title (the usual H1)."""
    headings = list(heading_path)
    if headings and headings[0].casefold() == title.casefold():
        return headings[1:]
    return headings


def embed_text_for(title: str, heading_path: Sequence[str], text: str, with_headings: bool) -> str:
    """What the embedder sees: title and headings give a short passage its topic."""
    if not with_headings:
        return text
    headings = headings_below_title(title, heading_path)
    context = [title, HEADING_SEPARATOR.join(headings)] if headings else [title]
    return "\n".join(part for part in context if part) + "\n\n" + text


def chunk_sections(
    document: ParsedDocument,
    *,
    chunk_size: int,
    chunk_overlap: int,
    embed_heading_path: bool = True,
) -> list[Chunk]:
    """Chunks of one document, numbered 0..n-1 in reading order."""
    return list(_iter_sections(document, chunk_size, chunk_overlap, embed_heading_path))


def _iter_sections(
    document: ParsedDocument, chunk_size: int, chunk_overlap: int, embed_heading_path: bool
) -> Iterator[Chunk]:
    if chunk_overlap >= chunk_size:
        raise ValueError(f"chunk_overlap ({chunk_overlap}) must be smaller than chunk_size ({chunk_size})")
    index = 0
    for piece in merge_small_sections(document.sections, chunk_size):
        heading_path = HEADING_SEPARATOR.join(headings_below_title(document.title, piece.heading_path))
        for text in _iter_split(piece.text, chunk_size, chunk_overlap):
            yield Chunk(
                document_id=document.document_id,
                chunk_index=index,
                text=text,
                title=document.title,
                heading_path=heading_path,
                source=document.source,
                content_hash=document.content_hash,
                modified_time=document.modified_time,
                embed_text=embed_text_for(document.title, piece.heading_path, text, embed_heading_path),
            )
            index += 1


def chunk_document(document: ParsedDocument, settings: Settings) -> list[Chunk]:
    """Chunks of one document with CHUNK_SIZE, CHUNK_OVERLAP and EMBED_HEADING_PATH."""
    return list(iter_chunks(document, settings))


def iter_chunks(document: ParsedDocument, settings: Settings) -> Iterator[Chunk]:
    """`chunk_document`, one chunk at a time, made as it is asked for: the indexer counts a
    document's chunks without keeping them, then streams them to the embedder."""
    return _iter_sections(document, settings.chunk_size, settings.chunk_overlap, settings.embed_heading_path)


def chunk_count_problem(document: ParsedDocument, settings: Settings) -> str | None:
    """Why the document cannot be indexed as chunks (none, or over MAX_CHUNKS_PER_DOCUMENT), or None.

    Counts the chunks without keeping them, so a document over the limit is skipped whole before
    any of it is embedded. Blocking: run it in a thread.
    """
    count = sum(1 for _ in iter_chunks(document, settings))
    if not count:
        return "no text to index after splitting into chunks"
    limit = settings.max_chunks_per_document
    if limit and count > limit:
        return f"skipped: too large ({count:,} chunks, over MAX_CHUNKS_PER_DOCUMENT={limit:,})"
    return None


async def chunk_slices(document: ParsedDocument, settings: Settings, size: int) -> AsyncIterator[list[Chunk]]:
    """The document's chunks, `size` at a time, each slice made (in a thread) only when asked for."""
    chunks = iter_chunks(document, settings)
    while part := await asyncio.to_thread(lambda: list(islice(chunks, size))):
        yield part
