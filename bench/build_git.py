"""The `git` set: Git's manual pages (Debian package `git-doc`), with two-turn conversations.

A corpus the bot was never tuned on, and one whose pages all share the same section names
(DESCRIPTION, OPTIONS, EXAMPLES, CONFIGURATION, ...): a follow-up such as "any examples?" means
nothing without the conversation, because 50 of the pages have an EXAMPLES section. Pages are the
`git-*.html` manual pages of at most `MAX_PAGE_CHARS` characters of text (134 of 160: the longest,
such as git-config and git-log, would double the indexing time).

- **Queries** (`queries.jsonl`, kind "name"): "How do I <purpose>?" from the page's NAME line
  (git-bisect: "Use binary search to find the commit that introduced a bug"), answered by the
  DESCRIPTION section. The NAME line's purpose is removed from the indexed page, so a query cannot
  match its own words.
- **Follow-ups** (`followups.jsonl`): that question, then a follow-up about another section of the
  same page, in a short and in a pronoun phrasing (`FOLLOW_UPS`), answered by that section's own
  prose. Neither phrasing names the command: only the first question says what "it" is.

Answers are sentences of at least `MIN_WORDS` words that occur once in the whole corpus, as for the
other sets (`bench.dataset`).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from bs4 import BeautifulSoup, Tag

from bench.build_dataset import Section, ensure_package, prose_sentences, write_dataset
from bench.dataset import normalize

GIT_PACKAGE = "git-doc"
GIT_HTML = Path("/usr/share/doc/git-doc")
MAX_PAGE_CHARS = 20_000
# Section heading -> (short follow-up, pronoun follow-up): what a colleague would type next.
FOLLOW_UPS = {
    "EXAMPLES": ("any examples?", "can you show me an example of how it is used?"),
    "CONFIGURATION": ("and the configuration?", "which configuration variables affect it?"),
    "DISCUSSION": ("why?", "can you explain the background of how it works?"),
    "OUTPUT": ("and the output?", "what does its output look like?"),
    "BUGS": ("known bugs?", "are there any known bugs in it?"),
    "NOTES": ("any notes?", "is there anything else I should know about it?"),
    "FILES": ("which files?", "which files does it read or write?"),
    "ENVIRONMENT": ("environment variables?", "which environment variables does it look at?"),
    "CAVEATS": ("any caveats?", "what are the caveats when using it?"),
    "SECURITY": ("is it secure?", "what should I know about its security?"),
    "EXIT STATUS": ("exit status?", "what exit status does it return?"),
    "HOOKS": ("and hooks?", "which hooks does it run?"),
}
_NAME_LINE = re.compile(r"^\s*(git-[\w-]+)\s*-\s*(.+?)\s*$", re.DOTALL)


@dataclass(frozen=True)
class FollowUp:
    """A two-turn conversation: `first`, then `follow_up`, whose answer is `answer`."""

    id: str
    first: str
    follow_up: str
    phrasing: str  # "short" or "pronoun"
    answer: list[str]  # normalised sentences, unique in the corpus
    document: str
    section: str


def _section_sentences(section: Tag) -> list[str]:
    """Normalised prose sentences of a section (paragraphs, list items; code left out)."""
    paragraphs = [p.get_text(" ") for p in section.find_all("p") if p.find_parent("pre") is None]
    return prose_sentences(paragraphs)


def _git_page(path: Path) -> tuple[str, str, dict[str, Tag]] | None:
    """(cleaned page, purpose, {section heading: section}), or None when not a manual page."""
    soup = BeautifulSoup(path.read_text(encoding="utf-8", errors="replace"), "html.parser")
    header, content = soup.find("div", id="header"), soup.find("div", id="content")
    if not isinstance(header, Tag) or not isinstance(content, Tag):
        return None
    name = header.find("p")
    match = _NAME_LINE.match(name.get_text(" ")) if isinstance(name, Tag) else None
    if match is None or not isinstance(name, Tag):
        return None
    command, purpose = match.group(1), " ".join(match.group(2).split())
    name.string = command  # the purpose is the query: it must not be indexed
    sections: dict[str, Tag] = {}
    for sect in content.find_all("div", class_="sect1", recursive=False):
        heading = sect.find("h2")
        title = " ".join(heading.get_text(" ").split()) if isinstance(heading, Tag) else ""
        if title == "GIT":  # "Part of the git(1) suite" on every page
            sect.decompose()
            continue
        sections[title] = sect
    h1 = header.find("h1")
    title = " ".join(h1.get_text(" ").split()) if isinstance(h1, Tag) else command
    html = (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title></head>\n'
        f"<body>\n{header}\n{content}\n</body></html>\n"
    )
    return html, purpose, sections


def build_git(out: Path) -> None:
    ensure_package(GIT_PACKAGE, GIT_HTML)
    pages: dict[str, str] = {}
    texts: dict[str, str] = {}
    queries: list[Section] = []
    candidates: list[tuple[str, str, str, list[str]]] = []  # (first, document, heading, sentences)
    for path in sorted(GIT_HTML.glob("git-*.html")):
        parsed = _git_page(path)
        if parsed is None:
            continue
        html, purpose, sections = parsed
        text = normalize(BeautifulSoup(html, "html.parser").get_text(" "))
        if len(text) > MAX_PAGE_CHARS:
            continue
        pages[path.name], texts[path.name] = html, text
        first = f"How do I {purpose[0].lower()}{purpose[1:].rstrip('.')}?"
        description = sections.get("DESCRIPTION")
        sentences = _section_sentences(description) if description is not None else []
        queries.append(Section(first, sentences, path.name, "name"))
        for heading, section in sections.items():
            if heading in FOLLOW_UPS:
                candidates.append((first, path.name, heading, _section_sentences(section)))
    write_dataset("git", out, pages, texts, queries, GIT_PACKAGE, ("git-*.html",), "HTML")
    everything = "\n".join(f" {t} " for t in texts.values())
    follow_ups: list[FollowUp] = []
    for first, document, heading, sentences in candidates:
        unique = [s for s in sentences if everything.count(f" {s} ") == 1]
        if not unique:
            continue
        for phrasing, text in zip(("short", "pronoun"), FOLLOW_UPS[heading], strict=True):
            number = len(follow_ups) + 1
            follow_ups.append(
                FollowUp(f"git-f{number:03d}", first, text, phrasing, unique, document, heading)
            )
    with (out / "git" / "followups.jsonl").open("w", encoding="utf-8") as lines:
        for follow_up in follow_ups:
            lines.write(json.dumps(asdict(follow_up), ensure_ascii=False) + "\n")
    print(json.dumps({"followups": len(follow_ups), "pages": len(pages)}))


def load_follow_ups(root: Path) -> list[FollowUp]:
    """The conversations `build_git` wrote next to the set's queries."""
    with (root / "followups.jsonl").open(encoding="utf-8") as lines:
        return [FollowUp(**json.loads(line)) for line in lines if line.strip()]
