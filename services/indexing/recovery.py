"""What a run clears first, once it holds its leases: what interrupted runs left behind.

A rebuild that was killed leaves a generation nothing serves; it is dropped by the next run of any
kind (else it would wait for the next rebuild, taking disk and memory). An incremental run killed
in the middle of a document leaves chunks that no recorded state accounts for, searchable and
invisible to `status`; they are removed, and their documents indexed afresh by the run. Only safe
under the leases, and only for the run's own sources: another run's unfinished work would look
the same (runs of other sources may be writing; no rebuild can be).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from data.records import DocumentState
from data.vector_store import IndexWriter, VectorStore

SHOWN = 5  # document names in a note


async def drop_unfinished_rebuilds(store: VectorStore) -> str | None:
    """Drop generations that do not serve; the note saying so, or None."""
    dropped = await store.drop_orphan_generations()
    return f"dropped what an unfinished rebuild left: {', '.join(dropped)}" if dropped else None


async def remove_unfinished_documents(
    writer: IndexWriter,
    states: dict[str, DocumentState],
    owned: dict[str, DocumentState] | None = None,
    sources: Sequence[str] | None = None,
) -> str | None:
    """Remove chunks of documents no run finished, and forget those documents' states (`states` is
    changed: the run indexes them afresh); the note saying so, or None.

    With `sources`, only those sources' chunks and documents (`owned`) are looked at: runs of other
    sources may be in the middle of their documents, which are not leftovers.
    """
    removed = await writer.remove_uncommitted(owned if owned is not None else states, sources)
    if not removed:
        return None
    for document_id in removed:
        states.pop(document_id, None)
    names = ", ".join(Path(document_id).name for document_id in list(removed)[:SHOWN])
    more = f" and {len(removed) - SHOWN} more" if len(removed) > SHOWN else ""
    return (
        f"removed {sum(removed.values())} chunks of {len(removed)} documents an interrupted run left "
        f"unfinished ({names}{more}); those still present are indexed again"
    )
