"""What sources remember between runs: each document's memo and owner, and each source's cursor.

One JSON file in DATA_DIR, written atomically. It is a companion of the index's document
registry, never a replacement: `known()` offers a memo only for a document the index holds with
the same content hash the memo was saved with, so a lost, stale or copied state file can cost
extra requests but never skip a document the index does not have.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from data.records import DocumentState
from services.sources.contract import KnownDocument, Memo, Source

__all__ = ["SourceStateFile"]

VERSION = 1


class SourceStateFile:
    """Load once per run, update as documents are written, `save()` after the run committed."""

    def __init__(self, path: Path, data: Mapping[str, Any] | None = None) -> None:
        self.path = path
        data = data or {}
        self._documents: dict[str, dict[str, Any]] = dict(data.get("documents", {}))
        self._cursors: dict[str, dict[str, str]] = dict(data.get("cursors", {}))

    @classmethod
    async def load(cls, path: Path) -> SourceStateFile:
        """The saved state; an unreadable or foreign file counts as empty (it is only an optimisation)."""

        def read() -> dict[str, Any]:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return {}
            return data if isinstance(data, dict) and data.get("version") == VERSION else {}

        return cls(path, await asyncio.to_thread(read))

    def known(self, source: Source, states: Mapping[str, DocumentState]) -> dict[str, KnownDocument]:
        """The index's documents that belong to `source`, with the memos still valid for them."""
        known = {}
        for document_id, state in states.items():
            entry = self._documents.get(document_id)
            owner = entry.get("source") if entry else None
            if owner == source.name or (owner is None and source.owns(document_id)):
                valid = entry is not None and entry.get("content_hash") == state.content_hash
                memo = dict(entry["memo"]) if valid and entry is not None else {}
                known[document_id] = KnownDocument(document_id, state.content_hash, memo)
        return known

    def cursor(self, source: Source) -> dict[str, str]:
        return dict(self._cursors.get(source.name, {}))

    def record(self, source: Source, document_id: str, content_hash: str, memo: Memo) -> None:
        """After a document's chunks were written (Fetched) or it was found unchanged (Unchanged)."""
        self._documents[document_id] = {
            "source": source.name,
            "content_hash": content_hash,
            "memo": dict(memo),
        }

    def forget(self, document_ids: Iterable[str]) -> None:
        for document_id in document_ids:
            self._documents.pop(document_id, None)

    def set_cursor(self, source: Source, cursor: Mapping[str, str]) -> None:
        self._cursors[source.name] = dict(cursor)

    async def save(self) -> None:
        data = {"version": VERSION, "documents": self._documents, "cursors": self._cursors}

        def write() -> None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
            os.replace(temporary, self.path)

        await asyncio.to_thread(write)
