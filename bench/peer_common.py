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

from bench.vector_cache import VectorCache
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
    synchronous), counting every text it embeds. With `cache` (quality runs only, never timed)
    vectors come from the shared `VectorCache` when it has them."""

    def __init__(self, cache: str | None = None, threads: int | None = None) -> None:
        self.inner = LocalOnnxEmbedder(intra_op_threads=threads)
        self.inner.load()
        self._loop = asyncio.new_event_loop()
        self.cache = VectorCache(self.inner.model_id, Path(cache)) if cache else None
        self.texts = 0
        self.seconds = 0.0  # time spent embedding documents

    def _compute(self, texts: list[str]) -> list[list[float]]:
        self.texts += len(texts)
        started = time.perf_counter()
        try:
            return self._loop.run_until_complete(self.inner.embed_documents(texts))
        finally:
            self.seconds += time.perf_counter() - started

    def documents(self, texts: Sequence[str]) -> list[list[float]]:
        if self.cache is not None:
            return self.cache.lookup(list(texts), self._compute)
        return self._compute(list(texts))

    def query(self, text: str) -> list[float]:
        return self._loop.run_until_complete(self.inner.embed_query(text))


KEY_VARIABLE = "BENCH_WEAVIATE_API_KEY"  # passed in the environment, never on the command line


def connect(args: dict[str, Any]) -> Any:
    """A sync client for the bench's Weaviate (API key from the environment)."""
    import os

    import weaviate
    from weaviate.classes.init import Auth

    return weaviate.connect_to_local(
        host="127.0.0.1",
        port=args["http_port"],
        grpc_port=args["grpc_port"],
        auth_credentials=Auth.api_key(os.environ[KEY_VARIABLE]),
    )


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
