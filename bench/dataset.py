"""The benchmark's query sets: records, text normalisation and the relevance judgement.

A result is relevant to a query when it contains, after normalisation, a whole sentence of the
query's answer. The answer sentences are chosen by the builders (`bench.build_dataset`) to be
long enough (>= `MIN_WORDS` words) and unique in the corpus, so the judgement holds whatever the
chunking, and works for any system that returns text (ours and the peers').
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

WORK_DIR = Path(__file__).resolve().parent / ".work"
DATASETS_DIR = WORK_DIR / "datasets"
MIN_WORDS = 6  # shorter sentences ("Yes.", "See below.") would match unrelated passages
_WORD = re.compile(r"[a-z0-9]+")
# A sentence ends at . ! ? (optionally followed by a closing quote or bracket) before a space.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")


def normalize(text: str) -> str:
    """Lower-case words of letters and digits joined by single spaces (markup, quotes, and
    punctuation differences between renderers disappear)."""
    return " ".join(_WORD.findall(text.lower().replace("’", "'")))


def split_sentences(text: str) -> list[str]:
    """Sentences of one paragraph of prose (whitespace collapsed)."""
    flat = " ".join(text.split())
    return [s.strip() for s in _SENTENCE_END.split(flat) if s.strip()]


@dataclass(frozen=True)
class Query:
    """One question and the normalised sentences of its answer."""

    id: str
    query: str
    answer: list[str]  # normalised answer sentences (unique in the corpus)
    document: str  # the corpus file the answer is in (relative to the corpus root)
    kind: str  # "faq" (a FAQ page) or "heading" (a question-shaped heading elsewhere)


@dataclass(frozen=True)
class Dataset:
    """A corpus folder plus its queries."""

    name: str
    root: Path  # the dataset folder: corpus/ and queries.jsonl
    queries: list[Query]
    manifest: dict[str, object]

    @property
    def corpus(self) -> Path:
        return self.root / "corpus"


def save_dataset(root: Path, queries: Sequence[Query], manifest: dict[str, object]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    with (root / "queries.jsonl").open("w", encoding="utf-8") as out:
        for query in queries:
            out.write(json.dumps(asdict(query), ensure_ascii=False) + "\n")
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")


def load_dataset(name: str, base: Path = DATASETS_DIR) -> Dataset:
    """Load a built dataset; a clear error names the command that builds it."""
    root = base / name
    if not (root / "queries.jsonl").is_file():
        raise FileNotFoundError(f"Dataset {name!r} is not built: run `python -m bench.build_dataset`")
    with (root / "queries.jsonl").open(encoding="utf-8") as lines:
        queries = [Query(**json.loads(line)) for line in lines if line.strip()]
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    return Dataset(name, root, queries, manifest)


def judge(results: Iterable[str], answer: Sequence[str]) -> list[frozenset[int]]:
    """For each result text, the indexes of the answer sentences it contains."""
    out = []
    for text in results:
        flat = f" {normalize(text)} "
        out.append(frozenset(i for i, sentence in enumerate(answer) if f" {sentence} " in flat))
    return out
