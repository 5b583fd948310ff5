"""Shared by the peer scripts, which run inside their own virtualenvs (bench/.venvs/*).

Only the standard library, BeautifulSoup and the project's `data.embeddings` are imported here,
so the peers use exactly the project's embedding model and code.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bs4 import BeautifulSoup

from data.embeddings import LocalOnnxEmbedder


def load_corpus(corpus: Path) -> list[tuple[str, str, str]]:
    """(relative path, title, text) of each file; HTML through BeautifulSoup, reST as it is."""
    documents = []
    for path in sorted(corpus.rglob("*")):
        if not path.is_file():
            continue
        raw = path.read_text(encoding="utf-8")
        relative = path.relative_to(corpus).as_posix()
        if path.suffix in (".html", ".htm"):
            soup = BeautifulSoup(raw, "html.parser")
            title = soup.title.get_text(strip=True) if soup.title else relative
            text = (soup.body or soup).get_text("\n")
        else:
            title = next((line.strip() for line in raw.splitlines() if line.strip()), relative)
            text = raw
        if text.strip():
            documents.append((relative, title, text))
    return documents


class SyncEmbedder:
    """The project's `LocalOnnxEmbedder`, called synchronously (the peers' embedding APIs are
    synchronous), counting every text it embeds."""

    def __init__(self) -> None:
        self.inner = LocalOnnxEmbedder()
        self.inner.load()
        self._loop = asyncio.new_event_loop()
        self.texts = 0

    def documents(self, texts: Sequence[str]) -> list[list[float]]:
        self.texts += len(texts)
        return self._loop.run_until_complete(self.inner.embed_documents(list(texts)))

    def query(self, text: str) -> list[float]:
        return self._loop.run_until_complete(self.inner.embed_query(text))


def timed(function: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - started


def read_args() -> dict[str, Any]:
    return dict(json.loads(sys.argv[1]))


def write_result(args: dict[str, Any], result: dict[str, Any]) -> None:
    Path(args["out"]).write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")


def queries_of(path: str) -> list[str]:
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line)["query"] for line in lines if line.strip()]
