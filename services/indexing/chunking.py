"""Split parsed documents into passages that fit the embedder and keep their context.

Sections (headings) are split first, then by size at the best boundary available: paragraph,
line, sentence, word — never inside a word (unless a single "word" is longer than a chunk).
Chunks are exact slices of the section text, so the overlap between neighbours is real text.
Tiny neighbouring sections under the same heading are merged so a chunk is never just a stub.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

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
) -> list[tuple[int, int]]:
    """Cut text[start:end] into trimmed spans of at most `size`, at the strongest boundary possible."""
    if end - start <= size:
        return [(start, end)]
    if level == len(order):  # a single word longer than a chunk: cut it, no other way
        return [(s, min(s + size, end)) for s in range(start, end, size)]
    out: list[tuple[int, int]] = []
    cursor = start
    separators = [(m.start(), m.end()) for m in order[level].finditer(text, start, end)]
    for separator_start, separator_end in [*separators, (end, end)]:
        if separator_start > cursor:
            inner = order
            if level == 0:  # per paragraph: code splits at lines first, prose at sentences
                inner = _CODE if "```" in text[cursor:separator_start] else _PROSE
            out.extend(_spans(text, cursor, separator_start, size, inner, level + 1))
        cursor = separator_end
    return out


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
    stripped = text.strip()
    if not stripped:
        return []
    spans = _spans(stripped, 0, len(stripped), chunk_size)
    chunks: list[str] = []
    start = spans[0][0]
    end = spans[0][1]
    for span in spans[1:]:
        if span[1] - start <= chunk_size:
            end = span[1]
            continue
        chunks.append(stripped[start:end])
        start = _overlap_start(stripped, start, end, span, chunk_size, chunk_overlap)
        end = span[1]
    chunks.append(stripped[start:end])
    return chunks


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
    if chunk_overlap >= chunk_size:
        raise ValueError(f"chunk_overlap ({chunk_overlap}) must be smaller than chunk_size ({chunk_size})")
    chunks: list[Chunk] = []
    for piece in merge_small_sections(document.sections, chunk_size):
        for text in split_text(piece.text, chunk_size, chunk_overlap):
            chunks.append(
                Chunk(
                    document_id=document.document_id,
                    chunk_index=len(chunks),
                    text=text,
                    title=document.title,
                    heading_path=HEADING_SEPARATOR.join(
                        headings_below_title(document.title, piece.heading_path)
                    ),
                    source=document.source,
                    content_hash=document.content_hash,
                    modified_time=document.modified_time,
                    embed_text=embed_text_for(document.title, piece.heading_path, text, embed_heading_path),
                )
            )
    return chunks


def chunk_document(document: ParsedDocument, settings: Settings) -> list[Chunk]:
    """Chunks of one document with CHUNK_SIZE, CHUNK_OVERLAP and EMBED_HEADING_PATH."""
    return chunk_sections(
        document,
        chunk_size=settings.chunk_size,
        chunk_overlap=settings.chunk_overlap,
        embed_heading_path=settings.embed_heading_path,
    )
