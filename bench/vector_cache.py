"""A persistent text -> vector cache (SQLite), shared by our quality sweep and the peers' quality
runs so each distinct text is embedded once across configurations and reruns. Never used where
speed is measured. Standard library + numpy only (it also runs in the peers' virtualenvs)."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

DEFAULT_PATH = Path(__file__).resolve().parent / ".work" / "embed-cache.sqlite"


class VectorCache:
    def __init__(self, model_id: str, path: Path = DEFAULT_PATH) -> None:
        self.model_id = model_id
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=60)
        self._db.execute("CREATE TABLE IF NOT EXISTS v (k TEXT PRIMARY KEY, m TEXT, b BLOB)")
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, keys: Sequence[str]) -> dict[str, list[float]]:
        found: dict[str, list[float]] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                part = list(keys[start : start + 500])
                marks = ",".join("?" * len(part))
                rows = self._db.execute(
                    f"SELECT k, b FROM v WHERE m = ? AND k IN ({marks})", [self.model_id, *part]
                ).fetchall()
                found.update((k, np.frombuffer(b, dtype=np.float32).tolist()) for k, b in rows)
        return found

    def put(self, texts: Sequence[str], vectors: Sequence[Sequence[float]]) -> None:
        rows = [
            (self.key(t), self.model_id, np.asarray(v, dtype=np.float32).tobytes())
            for t, v in zip(texts, vectors, strict=True)
        ]
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO v VALUES (?, ?, ?)", rows)
            self._db.commit()

    def lookup(
        self, texts: Sequence[str], compute: Callable[[list[str]], list[list[float]]]
    ) -> list[list[float]]:
        """Vectors for `texts`, computing (and storing) only the missing ones (blocking)."""
        keys = [self.key(t) for t in texts]
        found = self.get(keys)
        missing = list({k: t for k, t in zip(keys, texts, strict=True) if k not in found}.items())
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        if missing:
            vectors = compute([t for _, t in missing])
            self.put([t for _, t in missing], vectors)
            found.update((k, v) for (k, _), v in zip(missing, vectors, strict=True))
        return [found[k] for k in keys]
