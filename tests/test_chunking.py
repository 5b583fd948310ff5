"""Structure-aware chunking: size and overlap bounds, word boundaries, heading paths, merging."""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from docs_corpus import LARGE, build_corpus

from configs.config import Settings
from data.records import Chunk
from services.indexing.chunking import chunk_document, chunk_sections, merge_small_sections, split_text
from services.indexing.loader import ParsedDocument, Section, parse_document

MakeSettings = Callable[..., Settings]


def _random_text(seed: int, words: int = 2500) -> str:
    """Unique-ish words, sentences and paragraphs, so overlaps cannot match by accident."""
    rng = random.Random(seed)
    out: list[str] = []
    for _ in range(words):
        out.append("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 11))))
        roll = rng.random()
        out.append(". " if roll < 0.07 else "\n\n" if roll < 0.08 else " ")
    return "".join(out).strip()


def _located(text: str, chunks: list[str]) -> list[tuple[int, int]]:
    """Where each chunk sits in `text`, searching forward (chunks are exact slices, in order)."""
    spans: list[tuple[int, int]] = []
    cursor = 0
    for chunk in chunks:
        start = text.find(chunk, cursor)
        assert start >= 0, f"chunk is not a slice of the text: {chunk[:40]!r}"
        spans.append((start, start + len(chunk)))
        cursor = start + 1
    return spans


@pytest.mark.parametrize(("size", "overlap"), [(100, 0), (200, 50), (1000, 150), (500, 400)])
def test_split_bounds_words_and_coverage(size: int, overlap: int) -> None:
    text = _random_text(size + overlap)
    chunks = split_text(text, size, overlap)
    spans = _located(text, chunks)
    assert len(chunks) > 3
    assert all(0 < len(chunk) <= size for chunk in chunks)
    for start, end in spans:  # never inside a word
        assert start == 0 or text[start - 1].isspace()
        assert end == len(text) or text[end].isspace()
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    shared = []
    for (_, previous_end), (start, _) in itertools.pairwise(spans):
        assert text[previous_end:start].strip() == "" or start < previous_end  # no text skipped
        shared.append(max(0, previous_end - start))
    assert max(shared) <= overlap
    if overlap:
        assert sum(shared) / len(shared) > overlap / 3  # overlap is actually used


def test_split_prefers_paragraphs_then_sentences() -> None:
    paragraphs = [f"Paragraph {n} starts here. " + "word " * 40 + "and ends." for n in range(6)]
    text = "\n\n".join(paragraphs)  # ~240 chars each
    chunks = split_text(text, 600, 0)
    assert all(chunk.endswith("and ends.") for chunk in chunks)
    assert all(chunk.startswith("Paragraph") for chunk in chunks)
    long_paragraph = " ".join(f"Sentence number {n} says something useful here." for n in range(30))
    pieces = split_text(long_paragraph, 300, 0)
    assert len(pieces) > 3 and all(piece.endswith("here.") for piece in pieces)
    # with overlap, the next chunk starts at a sentence start when one is in reach
    overlapping = split_text(long_paragraph, 300, 120)
    assert all(piece.startswith("Sentence number") for piece in overlapping)
    # code is split at line ends, not at the "sentence" punctuation inside its lines
    code = "```python\n" + "\n".join(f"result_{n} = compute(alpha: {n}. beta)" for n in range(40)) + "\n```"
    code_chunks = split_text(code, 300, 0)
    assert len(code_chunks) > 3 and all(chunk.endswith(("beta)", "```")) for chunk in code_chunks)


def test_split_cuts_an_oversized_word_without_losing_text() -> None:
    blob = "x" * 450
    chunks = split_text(f"before {blob} after", 200, 20)
    assert all(len(chunk) <= 200 for chunk in chunks)
    assert chunks[0] == "before" and chunks[-1].endswith(" after")
    # the blob is cut into 200-char pieces; no word start inside it, so no overlap either
    assert "".join(chunks).replace(" ", "") == "before" + blob + "after"
    assert split_text("   \n ", 100, 10) == []


def test_tiny_sections_merge_under_their_shared_heading() -> None:
    sections = [
        Section(["Guide"], "Intro."),
        Section(["Guide", "Install"], "Run the installer."),
        Section(["Guide", "Configure"], "Edit the file." + " more" * 100),
        Section(["Other"], "Separate topic."),
        Section(["Page 1"], "one"),
        Section(["Page 2"], "two"),
    ]
    pieces = merge_small_sections(sections, 400)
    assert [(p.heading_path, p.text) for p in pieces] == [
        (["Guide"], "Intro.\n\nInstall\nRun the installer."),
        (["Guide", "Configure"], sections[2].text),  # too big to merge (budget 400)
        (["Other"], "Separate topic."),
        (["Page 1"], "one"),  # no shared heading: never merged
        (["Page 2"], "two"),
    ]


def _corpus_chunks(tmp_path: Path, settings: Settings) -> dict[str, list[Chunk]]:
    corpus = build_corpus(tmp_path / "docs")
    out: dict[str, list[Chunk]] = {}
    for path in sorted(corpus.iterdir()):
        doc = parse_document(path)
        assert isinstance(doc, ParsedDocument), doc
        out[path.name] = chunk_document(doc, settings)
    return out


def test_corpus_chunks_carry_context(tmp_path: Path, make_plain_settings: MakeSettings) -> None:
    settings = make_plain_settings(chunk_size=400, chunk_overlap=80)
    by_file = _corpus_chunks(tmp_path, settings)
    assert set(by_file) == {
        "cli-reference.md",
        "configuration.rst",
        "faq.txt",
        "install.md",
        "release-notes.pdf",
        "troubleshooting.html",
    }
    for name, chunks in by_file.items():
        assert [c.chunk_index for c in chunks] == list(range(len(chunks))), name
        assert all(0 < len(c.text) <= 400 for c in chunks), name
        assert len({(c.document_id, c.content_hash, c.title, c.source) for c in chunks}) == 1
    install = by_file["install.md"]
    debian = [c for c in install if c.heading_path == "Linux > Debian and Ubuntu"]
    assert debian and debian[0].embed_text.startswith("Installing Acme Deploy\nLinux > Debian and Ubuntu\n\n")
    assert debian[0].embed_text.endswith(debian[0].text)
    html = by_file["troubleshooting.html"]
    e1042 = next(c for c in html if "E1042 means" in c.text)
    assert e1042.heading_path == "Troubleshooting > Error E1042: deploy lock held"
    # the H1 repeats the title's topic; it is not repeated twice in the embed text
    assert e1042.embed_text.startswith(
        "Troubleshooting Acme Deploy\nTroubleshooting > Error E1042: deploy lock held\n\n"
    )
    rst = next(c for c in by_file["configuration.rst"] if "ACME_REGION" in c.text)
    assert rst.embed_text.startswith("Configuring Acme Deploy\nEnvironment variables\n\n")  # H1 == title
    pdf = by_file["release-notes.pdf"]
    assert {c.heading_path for c in pdf} == {"Page 1", "Page 2"}


def test_every_sentence_survives_chunking(tmp_path: Path, make_plain_settings: MakeSettings) -> None:
    settings = make_plain_settings(chunk_size=300, chunk_overlap=60)
    corpus = build_corpus(tmp_path / "docs")
    for path in sorted(corpus.iterdir()):
        doc = parse_document(path)
        assert isinstance(doc, ParsedDocument)
        joined = "\n".join(c.text for c in chunk_document(doc, settings))
        for section in doc.sections:
            for word in re.findall(r"\S+", section.text):
                assert word in joined, (path.name, word)


def test_embed_text_without_headings(tmp_path: Path, make_plain_settings: MakeSettings) -> None:
    by_file = _corpus_chunks(tmp_path, make_plain_settings(embed_heading_path=False))
    assert all(c.embed_text == c.text for chunks in by_file.values() for c in chunks)


def test_large_file_default_settings(make_plain_settings: MakeSettings) -> None:
    settings = make_plain_settings()
    doc = parse_document(LARGE)
    assert isinstance(doc, ParsedDocument)
    chunks = chunk_document(doc, settings)
    assert 100 < len(chunks) < 400
    assert all(len(c.text) <= settings.chunk_size for c in chunks)
    assert all(c.title == "Acme Deploy changelog" for c in chunks)
    # the H1 repeats the title, so the stored heading path starts below it
    assert not any(c.heading_path.startswith("Acme Deploy changelog") for c in chunks)
    assert all(c.heading_path for c in chunks[1:])
    small = chunk_sections(doc, chunk_size=200, chunk_overlap=50)
    same_section = [(a, b) for a, b in itertools.pairwise(small) if a.heading_path == b.heading_path]
    assert same_section
    for a, b in same_section:
        shared = max((k for k in range(1, 51) if a.text.endswith(b.text[:k])), default=0)
        assert shared <= 50
    with pytest.raises(ValueError, match="smaller than chunk_size"):
        chunk_sections(doc, chunk_size=100, chunk_overlap=100)
