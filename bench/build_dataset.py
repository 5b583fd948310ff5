"""Builds the benchmark's known-item query sets from documentation Debian ships (offline).

    python -m bench.build_dataset            # both sets, into bench/.work/datasets/

`django` (HTML): Django 3.2 docs from the Debian package `python-django-doc`. Queries: every
question of the FAQ pages (leaf sections of faq/*.html) and every question-shaped heading (ending
in "?") elsewhere. `python` (reStructuredText): the Sphinx sources of the Python 3.11 docs from
`python3.11-doc` (html/_sources). Queries: the leaf sections of faq/*.rst and question-shaped
headings elsewhere. For each query the heading is removed from the indexed page (so a query cannot
match its own title) and its answer is the set of sentences of the section's prose that are at
least `MIN_WORDS` words long and occur exactly once in the whole corpus (see `bench.dataset`).
Each package is installed with apt-get when missing (root only; otherwise the exact command is
printed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bs4 import BeautifulSoup, Tag

from bench.dataset import DATASETS_DIR, MIN_WORDS, Query, normalize, save_dataset, split_sentences

DJANGO_PACKAGE = "python-django-doc"
DJANGO_HTML = Path("/usr/share/doc/python-django-doc/html")
# The API reference (ref/), release notes and internals are left out: embedding ~1,000-character
# chunks runs at ~10/s on 2 cores, and a sweep re-indexes the corpus once per chunking.
DJANGO_DIRS = ("faq", "intro", "howto", "misc", "topics")
PYTHON_PACKAGE = "python3.11-doc"
PYTHON_SOURCES = Path("/usr/share/doc/python3.11/html/_sources")
# Likewise the library and language references, HOWTOs, C API, extending and What's New.
PYTHON_DIRS = ("faq", "tutorial", "using", "installing")
_ADORNMENT = re.compile(r"^([=\-~^\"'`#*+:.])\1{2,}\s*$")
_MARKUP = re.compile(r"[`*|<>\[\]]|::|\b_\w")


@dataclass
class Section:
    """A query section found in a page, before the uniqueness filter."""

    query: str
    sentences: list[str]  # normalised candidates
    document: str
    kind: str


def ensure_package(package: str, path: Path) -> None:
    """Install a Debian package with apt-get when `path` is missing (or say how to)."""
    if path.exists():
        return
    command = f"apt-get update && apt-get install -y {package}"
    if shutil.which("apt-get") is None or not hasattr(os, "getuid") or os.getuid() != 0:
        raise SystemExit(f"{path} is missing: install the Debian package {package} as root: {command}")
    print(f"Installing {package} ({command})…", file=sys.stderr)
    subprocess.run(["sh", "-c", command], check=True, stdout=subprocess.DEVNULL)
    if not path.exists():
        raise SystemExit(f"{package} is installed but {path} is still missing")


def prose_sentences(paragraphs: Iterable[str]) -> list[str]:
    out: list[str] = []
    for paragraph in paragraphs:
        for sentence in split_sentences(paragraph):
            normal = normalize(sentence)
            if len(normal.split()) >= MIN_WORDS and normal not in out:
                out.append(normal)
    return out


# --- Django (HTML) ------------------------------------------------------------------------------
def _heading_text(heading: Tag) -> str:
    return " ".join(heading.get_text(" ", strip=True).replace("¶", " ").split())


def _own_blocks(section: Tag) -> list[Tag]:
    """Paragraph-like elements of a section, not of its nested sections."""
    blocks = []
    for element in section.find_all(["p", "li", "dd"]):
        if element.find_parent("div", class_="section") is not section:
            continue
        if element.name != "p" and element.find("p") is not None:
            continue  # its paragraphs are taken one by one
        if element.find_parent("pre") is not None:
            continue
        blocks.append(element)
    return blocks


def _django_page(path: Path, relative: str) -> tuple[str, list[Section]]:
    """The cleaned page (main content only, query headings removed) and its query sections."""
    soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
    main = soup.find("div", id="yui-main")
    if not isinstance(main, Tag):
        raise ValueError(f"{relative}: no main content")
    tops = [
        s for s in main.find_all("div", class_="section") if s.find_parent("div", class_="section") is None
    ]
    title_tag = main.find("h1")
    title = _heading_text(title_tag) if isinstance(title_tag, Tag) else relative
    is_faq = relative.startswith("faq/")
    sections: list[Section] = []
    for top in tops:
        for section in top.find_all("div", class_="section"):
            heading = section.find(["h2", "h3", "h4", "h5"], recursive=False)
            if not isinstance(heading, Tag):
                continue
            text = _heading_text(heading)
            leaf = section.find("div", class_="section") is None
            if not ((is_faq and leaf) or text.endswith("?")):
                continue
            paragraphs = [block.get_text("", strip=False) for block in _own_blocks(section)]
            sections.append(
                Section(text, prose_sentences(paragraphs), relative, "faq" if is_faq else "heading")
            )
            heading.decompose()
    for link in main.find_all("a", class_="headerlink"):
        link.decompose()
    body = "\n".join(str(top) for top in tops)
    html = (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title></head>\n'
        f"<body>\n{body}\n</body></html>\n"
    )
    return html, sections


def _drop_question_links(html: str, questions: set[str]) -> tuple[str, str]:
    """Remove links (and table-of-contents entries) whose text is a query: the FAQ index lists
    every question. Returns the page and its normalised text."""
    soup = BeautifulSoup(html, "html.parser")
    changed = False
    for link in soup.find_all("a"):
        if normalize(link.get_text(" ")) in questions:
            parent = link.parent
            target = (
                parent if isinstance(parent, Tag) and parent.name == "li" and not parent.find("ul") else link
            )
            target.decompose()
            changed = True
    return (str(soup) if changed else html), normalize(soup.get_text(" "))


def build_django(out: Path) -> None:
    ensure_package(DJANGO_PACKAGE, DJANGO_HTML)
    pages: dict[str, str] = {}
    sections: list[Section] = []
    for folder in DJANGO_DIRS:
        for path in sorted((DJANGO_HTML / folder).rglob("*.html")):
            relative = path.relative_to(DJANGO_HTML).as_posix()
            html, found = _django_page(path, relative)
            pages[relative] = html
            sections.extend(found)
    questions = {normalize(section.query) for section in sections}
    texts: dict[str, str] = {}
    for name, html in pages.items():
        pages[name], texts[name] = _drop_question_links(html, questions)
    write_dataset("django", out, pages, texts, sections, DJANGO_PACKAGE, DJANGO_DIRS, "HTML")


# --- Python (reStructuredText) ---------------------------------------------------------------------
def _rst_headings(lines: list[str]) -> list[tuple[int, int, int, str]]:
    """(first line, last line, level, title) of each section title, levels by first appearance."""
    styles: list[tuple[str, bool]] = []
    found = []
    i = 0
    while i < len(lines) - 1:
        line = lines[i]
        over = _ADORNMENT.match(line)
        if over and i + 2 < len(lines) and lines[i + 2].strip() == line.strip() and lines[i + 1].strip():
            style, start, end, title = (line.strip()[0], True), i, i + 2, lines[i + 1].strip()
        elif (
            line.strip()
            and not line[0].isspace()
            and not _ADORNMENT.match(line)
            and (under := _ADORNMENT.match(lines[i + 1]))
            and len(lines[i + 1].rstrip()) >= len(line.rstrip())
        ):
            style, start, end, title = (under.group(1), False), i, i + 1, line.strip()
        else:
            i += 1
            continue
        if style not in styles:
            styles.append(style)
        found.append((start, end, styles.index(style), title))
        i = end + 1
    return found


def _rst_paragraphs(lines: list[str]) -> list[str]:
    """Unindented prose paragraphs (directives, literal blocks and comments skipped)."""
    paragraphs, current = [], []
    for line in [*lines, ""]:
        if line.strip():
            current.append(line)
            continue
        if current and not current[0][0].isspace() and not current[0].startswith(".."):
            paragraphs.append(re.sub(r"^\s*(?:[*\-+]|\d+\.|#\.)\s+", "", " ".join(current)))
        current = []
    return paragraphs


def _python_page(text: str, relative: str) -> tuple[str, list[Section]]:
    lines = text.splitlines()
    headings = _rst_headings(lines)
    is_faq = relative.startswith("faq/")
    sections: list[Section] = []
    drop: set[int] = set()
    for n, (start, end, level, title) in enumerate(headings):
        nxt = headings[n + 1] if n + 1 < len(headings) else None
        leaf = nxt is None or nxt[2] <= level
        if n == 0 or not ((is_faq and leaf) or title.endswith("?")):
            continue
        body = lines[end + 1 : nxt[0] if nxt else len(lines)]
        plain = [p for p in _rst_paragraphs(body)]
        sentences = [s for s in split_sentences(" ".join(plain)) if not _MARKUP.search(s)]
        sections.append(Section(title, prose_sentences(sentences), relative, "faq" if is_faq else "heading"))
        drop.update(range(start, end + 1))
    kept = [line for i, line in enumerate(lines) if i not in drop]
    return "\n".join(kept) + "\n", sections


def build_python(out: Path) -> None:
    ensure_package(PYTHON_PACKAGE, PYTHON_SOURCES)
    pages: dict[str, str] = {}
    sections: list[Section] = []
    for folder in PYTHON_DIRS:
        for path in sorted((PYTHON_SOURCES / folder).rglob("*.rst.txt")):
            relative = path.relative_to(PYTHON_SOURCES).as_posix().removesuffix(".txt")
            page, found = _python_page(path.read_text(encoding="utf-8"), relative)
            pages[relative] = page
            sections.extend(found)
    texts = {name: normalize(page) for name, page in pages.items()}
    write_dataset("python", out, pages, texts, sections, PYTHON_PACKAGE, PYTHON_DIRS, "reStructuredText")


# --- Common ----------------------------------------------------------------------------------------
def write_dataset(
    name: str,
    out: Path,
    pages: dict[str, str],
    texts: dict[str, str],
    sections: list[Section],
    package: str,
    folders: tuple[str, ...],
    file_format: str,
) -> None:
    """Keep answer sentences unique in the corpus, write corpus/, queries.jsonl and manifest.json."""
    everything = "\n".join(f" {t} " for t in texts.values())
    queries: list[Query] = []
    dropped = 0
    leaks = 0

    def same(query: str) -> str:
        return " ".join(query.lower().split())

    seen = Counter(same(section.query) for section in sections)
    generic = 0
    for number, section in enumerate(sections, 1):
        if seen[same(section.query)] > 1 or "..." in section.query or "…" in section.query:
            generic += 1  # "What's next?" twice, "How do I ...?": not a question one can answer
            continue
        unique = [s for s in section.sentences if everything.count(f" {s} ") == 1]
        if not unique:
            dropped += 1
            continue
        if f" {normalize(section.query)} " in everything:
            leaks += 1  # the question's words still appear somewhere (e.g. a link): counted, kept
        queries.append(Query(f"{name}-{number:03d}", section.query, unique, section.document, section.kind))
    root = out / name
    if root.exists():
        shutil.rmtree(root)
    corpus = root / "corpus"
    for relative, content in pages.items():
        target = corpus / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    version = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False
    ).stdout.strip()
    digest = hashlib.sha256(json.dumps(sorted(pages.items())).encode()).hexdigest()[:16]
    manifest: dict[str, object] = {
        "name": name,
        "package": package,
        "package_version": version or "unknown",
        "format": file_format,
        "folders": list(folders),
        "documents": len(pages),
        "corpus_characters": sum(len(t) for t in texts.values()),
        "queries": len(queries),
        "queries_faq": sum(q.kind == "faq" for q in queries),
        "queries_heading": sum(q.kind == "heading" for q in queries),
        "sections_without_unique_answer": dropped,
        "generic_questions_dropped": generic,
        "questions_still_in_corpus_text": leaks,
        "answer_sentences_mean": round(sum(len(q.answer) for q in queries) / max(1, len(queries)), 2),
        "corpus_sha256_16": digest,
    }
    save_dataset(root, queries, manifest)
    print(json.dumps(manifest))


def build_git(out: Path) -> None:
    from bench.build_git import build_git as build  # it builds on this module's helpers

    build(out)


def build_pallets(out: Path) -> None:
    from bench.build_pallets import build_pallets as build  # the report set (bench/build_pallets.py)

    build(out)


BUILDERS = {"django": build_django, "python": build_python, "git": build_git, "pallets": build_pallets}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("names", nargs="*", help=f"datasets: {', '.join(BUILDERS)} (default: all)")
    parser.add_argument("--out", type=Path, default=DATASETS_DIR)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(BUILDERS))
    if unknown:
        parser.error(f"unknown datasets: {', '.join(unknown)} (choose from {', '.join(BUILDERS)})")
    for name in args.names or list(BUILDERS):
        BUILDERS[name](args.out)


if __name__ == "__main__":
    main()
