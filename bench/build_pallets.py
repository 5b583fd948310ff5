"""The `pallets` report set: the Flask, Werkzeug, Jinja and Click documentation (Debian packages), with
questions written by hand. Built by `python -m bench.build_dataset pallets`.

A corpus no part of the bot was tuned on, kept apart from the development sets: nothing may be
chosen on it (see docs/benchmarks.md, "How the query sets are built"). The four manuals form one
documentation site of ~140 pages, as a team on that stack would index it; most pages answer none of
the questions, and many are near-duplicates (Flask's and Werkzeug's deployment chapters share their
text), which is what makes it hard.

- **Corpus**: every page of the four HTML manuals (`div.body` with its `<title>`, permalinks removed)
  except the generated index, search, 404 and module-index pages and the changelogs. Headings stay:
  the questions are not headings.
- **Queries** (`bench.pallets_questions`): each entry names the section(s) that answer it and gives
  the question twice, as a user would write it in a FAQ (kind "faq") and typed in a hurry in chat
  (kind "chat"). The answer is the section's own prose sentences (paragraphs, list items and
  definitions outside nested sections and code) of at least `MIN_WORDS` words that occur once in the
  whole corpus, as for the other sets; an entry left with no such sentence is dropped and counted.
- **Off-topic** (`offtopic.jsonl`): questions about other software, general knowledge and small talk
  (`bench.pallets_questions.OFF_TOPIC`), none answered by these manuals.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from bs4 import BeautifulSoup, Tag

from bench.build_dataset import Section, ensure_package, prose_sentences, write_dataset
from bench.dataset import normalize
from bench.pallets_questions import OFF_TOPIC, QUESTIONS

# Project folder in the corpus -> Debian package holding its HTML manual.
PACKAGES = {
    "flask": "python-flask-doc",
    "werkzeug": "python-werkzeug-doc",
    "jinja": "python-jinja2-doc",
    "click": "python-click-doc",
}
_SKIPPED = {"genindex.html", "search.html", "404.html", "py-modindex.html", "changes.html"}


def _html_root(package: str) -> Path:
    return Path("/usr/share/doc") / package / "html"


def _own_prose(section: Tag) -> list[str]:
    """Paragraph-like texts of a section, not of its nested sections nor of code blocks."""
    texts = []
    for element in section.find_all(["p", "li", "dd"]):
        if element.find_parent("section") is not section or element.find_parent("pre") is not None:
            continue
        if element.name != "p" and element.find("p") is not None:
            continue  # its paragraphs are taken one by one
        texts.append(element.get_text(""))
    return texts


def _page(path: Path) -> tuple[str, dict[str, list[str]]]:
    """The cleaned page and the prose sentences of each of its sections, by section id."""
    soup = BeautifulSoup(path.read_text(encoding="utf-8", errors="replace"), "html.parser")
    body = soup.find("div", class_="body")
    if not isinstance(body, Tag):
        raise ValueError(f"{path}: no div.body")
    for link in body.find_all("a", class_="headerlink"):
        link.decompose()
    sections = {
        str(section.get("id")): prose_sentences(_own_prose(section)) for section in body.find_all("section")
    }
    title = soup.title.get_text(" ", strip=True) if soup.title else path.stem
    html = (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title></head>\n'
        f"<body>\n{body}\n</body></html>\n"
    )
    return html, sections


def build_pallets(out: Path) -> None:
    for package in PACKAGES.values():
        ensure_package(package, _html_root(package))
    pages: dict[str, str] = {}
    prose: dict[str, list[str]] = {}  # "flask/quickstart.html#cookies" -> sentences
    for project, package in PACKAGES.items():
        root = _html_root(package)
        for path in sorted(root.rglob("*.html")):
            relative = path.relative_to(root).as_posix()
            if relative in _SKIPPED:
                continue
            document = f"{project}/{relative}"
            pages[document], sections = _page(path)
            prose.update({f"{document}#{anchor}": sentences for anchor, sentences in sections.items()})
    texts = {name: normalize(BeautifulSoup(p, "html.parser").get_text(" ")) for name, p in pages.items()}
    queries: list[Section] = []
    for entry in QUESTIONS:
        missing = [anchor for anchor in entry.sections if anchor not in prose]
        if missing:
            raise ValueError(f"{entry.question!r}: no such section {missing}")
        sentences = list(dict.fromkeys(s for anchor in entry.sections for s in prose[anchor]))
        document = entry.sections[0].split("#", 1)[0]
        queries += [Section(entry.question, sentences, document, "faq")]
        queries += [Section(entry.chat, sentences, document, "chat")]
    write_dataset("pallets", out, pages, texts, queries, PACKAGES["flask"], tuple(PACKAGES), "HTML")
    root = out / "pallets"
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    manifest["package"] = ", ".join(PACKAGES.values())
    manifest["package_version"] = ", ".join(f"{p} {_version(p)}" for p in PACKAGES.values())
    manifest["entries"] = len(QUESTIONS)
    manifest["queries_chat"] = sum(1 for line in (root / "queries.jsonl").open() if '"kind": "chat"' in line)
    manifest["off_topic"] = {group: len(messages) for group, messages in OFF_TOPIC.items()}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    with (root / "offtopic.jsonl").open("w", encoding="utf-8") as lines:
        for group, messages in OFF_TOPIC.items():
            for message in messages:
                lines.write(json.dumps({"group": group, "message": message}, ensure_ascii=False) + "\n")
    print(json.dumps({"entries": len(QUESTIONS), "queries": manifest["queries"]}))


def load_off_topic(root: Path) -> dict[str, list[str]]:
    """The off-topic messages `build_pallets` wrote next to the set's queries, by group."""
    groups: dict[str, list[str]] = {}
    with (root / "offtopic.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                row = json.loads(line)
                groups.setdefault(row["group"], []).append(row["message"])
    return groups


def _version(package: str) -> str:
    result = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
    return result.stdout.strip() or "unknown"
