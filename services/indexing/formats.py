"""Document bytes of a known type -> (title, sections, notes): the one table of supported formats.

Files on disk (`loader`) and documents from websites and Git repositories (`services.sources`)
are parsed here alike, so a format added once works for every source, with the same reasons for
bad input (binary data, a malformed PDF or Office file) and the same decoding of non-UTF-8 text.
"""

from __future__ import annotations

from collections.abc import Callable

from services.indexing.office import OFFICE_SUFFIXES, convert_office
from services.indexing.parsers import (
    ParseError,
    Section,
    parse_html,
    parse_markdown,
    parse_pdf,
    parse_plain,
    parse_rst,
)

__all__ = ["DOCUMENT_SUFFIXES", "decode_text", "parse_content"]

TextParser = Callable[[str], tuple[str | None, list[Section]]]
_TEXT_PARSERS: dict[str, TextParser] = {
    ".md": parse_markdown,
    ".markdown": parse_markdown,
    ".rst": parse_rst,
    ".txt": parse_plain,
    ".html": parse_html,
    ".htm": parse_html,
}
DOCUMENT_SUFFIXES = frozenset([*_TEXT_PARSERS, ".pdf", *OFFICE_SUFFIXES])


def _looks_binary(data: bytes) -> bool:
    sample = data[:8192]
    controls = sum(1 for byte in sample if byte < 32 and byte not in (9, 10, 12, 13))
    return b"\x00" in sample or controls > len(sample) * 0.1


def decode_text(data: bytes) -> tuple[str, str | None]:
    """Decode text bytes: UTF-8 (with or without BOM), else the detected charset, else cp1252.

    Returns the text and a note when it was not UTF-8, so a guessed encoding is never silent.
    """
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    best = matches.best()
    if best is not None:
        # Ties are common on short Western text (cp1250 vs cp1252); prefer the most common one.
        for match in matches:
            if (
                "cp1252" in match.could_be_from_charset
                and match.chaos <= best.chaos + 0.01
                and match.coherence >= best.coherence - 0.01
            ):
                best = match
                break
    if best is not None and best.encoding:
        return str(best), f"not UTF-8; decoded as {best.encoding} (detected)"
    try:
        return data.decode("cp1252"), "not UTF-8; decoded as cp1252 (fallback)"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "not UTF-8; decoded as latin-1 (fallback)"


def parse_content(kind: str, data: bytes) -> tuple[str | None, list[Section], list[str]]:
    """(title, sections, notes) of one document of type `kind` (a suffix such as ".md").

    Raises `ParseError` with a reason a user can act on; other exceptions are parser bugs, which
    callers turn into a failure of this document only.
    """
    kind = kind.lower()
    if kind == ".pdf":
        if not data.lstrip().startswith(b"%PDF"):
            raise ParseError("malformed PDF (no %PDF header; not a PDF file)")
        return (*parse_pdf(data), [])
    if kind in OFFICE_SUFFIXES:
        return (*convert_office(kind, data), [])
    parser = _TEXT_PARSERS.get(kind)
    if parser is None:
        raise ParseError(f"unsupported file type '{kind}'")
    if _looks_binary(data):
        raise ParseError(f"binary data, not a {kind} text file (contains NUL/control bytes)")
    text, note = decode_text(data)
    return (*parser(text), [note] if note else [])
