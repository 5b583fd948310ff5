"""Questions the documents don't cover: the similarity floor (SEARCH_MIN_SIMILARITY) from data.

On-topic: each set's questions against its own index (default chunking and search); a question
is answerable when its top 10 passages hold a relevant one. Off-topic: the questions of the Debian
FAQ (Debian package `debian-faq`), which neither corpus answers, against every index. For each
question: the best cosine similarity among the chunks the retriever fetches (and the share of its
content words one chunk holds). The floor chosen: see `MARGIN`. Small talk (`SMALL_TALK`) is a
second off-topic set.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bs4 import BeautifulSoup

from bench.build_dataset import ensure_package
from bench.dataset import Dataset, judge
from bench.engine import Engine, SearchConfig
from bench.quality import BASE_INDEX
from configs.config import Settings
from services.rag import Retriever
from services.relevance import KEYWORD_SHARE, best_keyword_share

DEBIAN_FAQ_PACKAGE = "debian-faq"
DEBIAN_FAQ = Path("/usr/share/doc/debian/FAQ")
# The floor: the highest that lets every answerable question through, less MARGIN: a short
# question about one detail of a long chunk is much less similar to it than these FAQ questions are
# to their sections (in the tests, "Which Ubuntu version is no longer supported?" scores 0.20
# against the release notes that answer it, "What is the default region?" 0.17).
MARGIN = 0.10
# Small talk a bot in a team channel gets; written for this benchmark (no package ships such a set).
SMALL_TALK = (
    "Hi, how are you today?",
    "Good morning everyone!",
    "Thanks, that helped a lot!",
    "What's the weather like tomorrow?",
    "Tell me a joke.",
    "Who won the football match last night?",
    "What should I cook for dinner tonight?",
    "Can you recommend a good movie?",
    "What time is it in Tokyo?",
    "How tall is Mount Everest?",
    "What is the airspeed velocity of an unladen swallow?",
    "Who painted the Mona Lisa?",
    "Are you a robot?",
    "Happy birthday!",
    "Where is the best place to get coffee around here?",
    "What is the capital of Australia?",
    "lol",
    "ok thanks",
    "Can we move the meeting to 3pm?",
    "Is anyone going to lunch?",
)
GRID = [round(0.05 + 0.01 * step, 2) for step in range(46)]  # floors tried: 0.05 … 0.50
DEFAULT_SEARCH = SearchConfig(
    alpha=Settings.model_fields["search_alpha"].default, fusion=Settings.model_fields["search_fusion"].default
)
_NUMBERING = re.compile(r"^\d+(?:\.\d+)*\.\s*")


def off_topic_questions() -> list[str]:
    """The question headings of the Debian FAQ's chapters (installed with apt-get when missing)."""
    ensure_package(DEBIAN_FAQ_PACKAGE, DEBIAN_FAQ)
    questions: list[str] = []
    for page in sorted(DEBIAN_FAQ.glob("*.en.html")):
        soup = BeautifulSoup(page.read_text(encoding="utf-8", errors="replace"), "html.parser")
        for heading in soup.find_all(["h2", "h3"], class_="title"):
            text = _NUMBERING.sub("", " ".join(heading.get_text(" ", strip=True).split()))
            if text.endswith("?") and text not in questions:
                questions.append(text)
    return questions


async def best_matches(engine: Engine, dataset: str, questions: Sequence[str]) -> list[tuple[float, float]]:
    """Per question: the best cosine similarity among the chunks a search fetches, and the largest
    share of the question's content words one of them holds (what `services.relevance.covered` uses)."""
    settings = engine.settings(dataset, BASE_INDEX, DEFAULT_SEARCH)
    retriever = Retriever(settings, await engine.store(BASE_INDEX.collection(dataset)), engine.embedder)
    best: list[tuple[float, float]] = []
    for question in questions:
        hits = await retriever.fetch(question, settings.search_top_k, similarity=True)
        similarity = max((h.similarity for h in hits if h.similarity is not None), default=0.0)
        best.append((similarity, best_keyword_share(question, hits)))
    return best


async def answerable(engine: Engine, dataset: Dataset) -> list[bool]:
    """Whether each question's top 10 (without a floor) holds a relevant passage."""
    queries = dataset.queries
    results = await engine.search(dataset.name, BASE_INDEX, DEFAULT_SEARCH, [q.query for q in queries])
    return [any(judge([p.text for p in found], q.answer)) for q, found in zip(queries, results, strict=True)]


def choose(
    on_topic: Sequence[tuple[float, float]], off_topic: Mapping[str, Sequence[tuple[float, float]]]
) -> dict[str, Any]:
    """Rates at each floor of `GRID` (similarity alone, and with the content-word rescue), and the
    floor: the highest letting every answerable question through by similarity alone, less MARGIN."""

    def kept(matches: Sequence[tuple[float, float]], floor: float, rescue: bool) -> float:
        return sum(s >= floor or (rescue and k >= KEYWORD_SHARE) for s, k in matches) / len(matches)

    rows: list[dict[str, Any]] = [
        {
            "floor": floor,
            "kept": kept(on_topic, floor, rescue=False),
            "kept_with_words": kept(on_topic, floor, rescue=True),
            "rejected": {name: 1 - kept(m, floor, rescue=False) for name, m in off_topic.items()},
            "rejected_with_words": {name: 1 - kept(m, floor, rescue=True) for name, m in off_topic.items()},
        }
        for floor in GRID
    ]
    all_kept: float = max((r["floor"] for r in rows if r["kept"] >= 1.0), default=GRID[0])
    floor = round(max(GRID[0], all_kept - MARGIN), 2)
    return {"rows": rows, "all_kept_up_to": all_kept, "chosen": next(r for r in rows if r["floor"] == floor)}


async def measure(engine: Engine, datasets: Sequence[Dataset]) -> dict[str, Any]:
    off_topic = {"debian_faq": off_topic_questions(), "small_talk": list(SMALL_TALK)}
    per_set: dict[str, Any] = {}
    for dataset in datasets:
        await engine.ensure_index(dataset, BASE_INDEX)
        per_set[dataset.name] = {
            "on_topic": await best_matches(engine, dataset.name, [q.query for q in dataset.queries]),
            "answerable": await answerable(engine, dataset),
            **{name: await best_matches(engine, dataset.name, qs) for name, qs in off_topic.items()},
        }
        print(f"  relevance: {dataset.name}", flush=True)
    answerable_matches = [
        m
        for data in per_set.values()
        for m, ok in zip(data["on_topic"], data["answerable"], strict=True)
        if ok
    ]
    off = {name: [m for data in per_set.values() for m in data[name]] for name in off_topic}
    return {
        "off_topic_questions": off_topic,
        "sets": per_set,
        "margin": MARGIN,
        "keyword_share": KEYWORD_SHARE,
        **choose(answerable_matches, off),
        "answerable_count": len(answerable_matches),
        "off_topic_counts": {name: len(m) for name, m in off.items()},
    }
