"""One index run: open the index, read every source through the stages, delete, commit, remember.

The stages (`stages.py`) read the sources and stream their new and changed documents through
parsing, embedding and writing. This module decides what the run may change: only documents a
source says are gone leave the index (never by omission, so a scan cut short deletes nothing);
a rebuild that found nothing to index is abandoned, so the previous index keeps serving; and what
sources remember for the next run (validators, blob ids, the indexed commit) is saved only after
the run committed. What a run that stops part-way leaves, the next one clears (`recovery`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from configs.config import Settings
from data.embeddings import Embedder
from data.errors import IndexModelMismatch, IndexSchemaOutdated
from data.leases import LeaseLost
from data.records import DocumentState
from data.vector_store import IndexWriter, VectorStore
from services.indexing.contract import IndexResult, IndexRunFailed, RunGuard
from services.indexing.ledger import RunLedger
from services.indexing.recovery import drop_unfinished_rebuilds, remove_unfinished_documents
from services.indexing.stages import StageError, Stages
from services.sources.contract import Source
from services.sources.state import SourceStateFile

log = logging.getLogger(__name__)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


class IndexRun:
    """State of a single run; `execute()` returns the result or raises `IndexRunFailed`."""

    def __init__(
        self,
        settings: Settings,
        store: VectorStore,
        embedder: Embedder,
        ledger: RunLedger,
        sources: Sequence[Source],
        state: SourceStateFile,
        guard: RunGuard | None = None,
        partial: bool = False,
    ) -> None:
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.ledger = ledger
        self.sources = list(sources)
        self.state = state
        self.guard = guard
        self.partial = partial  # only some of the configured sources (a rebuild then holds only them)

    @property
    def full(self) -> bool:
        return self.ledger.full

    # -- orchestration ------------------------------------------------------------------------------
    async def execute(self) -> IndexResult:
        writer: IndexWriter | None = None
        stage = "opening the index"
        try:
            writer = await self._open_writer()
            stage = "reading the index's document list"
            states = await writer.document_states()
            if not self.full:
                stage = "removing what an interrupted run left"
                await self._confirm()
                owned = {
                    document_id: states[document_id]
                    for source in self.sources
                    for document_id in self.state.known(source, states)
                }
                names = [source.name for source in self.sources]
                self.ledger.note(await remove_unfinished_documents(writer, states, owned, names))
            self.ledger.set(phase="indexing")
            stages = Stages(self.settings, self.embedder, writer, self.ledger, self.state, self._confirm)
            await stages.run(self.sources, states)
            if self.ledger.seen == 0 or (self.full and self.ledger.added + self.ledger.updated == 0):
                return await self._nothing_indexed(writer)
            stage = "deleting removed documents"
            gone = sorted(stages.gone)
            if gone:
                self.ledger.set(phase="deleting")
                await self._confirm()
                await writer.delete_documents(gone)
                self.ledger.deleted = len(gone)
                for source, _reason in stages.gone.values():
                    self.ledger.source(source.name, source.name).deleted += 1
                self.state.forget(gone)
            stage = "committing the index"
            self.ledger.set(phase="committing")
            await self._confirm(fresh=True)  # the step that makes a rebuild serve: ask the database
            await writer.commit()
        except StageError as exc:
            raise await self._failed(writer, exc.stage, exc.cause) from exc.cause
        except Exception as exc:
            raise await self._failed(writer, stage, exc) from exc
        except BaseException:  # cancelled: a half-built generation must not linger
            await self._abort(writer)
            raise
        await self._remember(stages, states)
        self.ledger.set(phase="done")
        return self.ledger.result()

    async def _remember(self, stages: Stages, states: dict[str, DocumentState]) -> None:
        """Count each source's documents; save cursors of sources read to the end, and the memos."""
        for read in stages.reads:
            outcome = self.ledger.source(read.source.name, read.source.name)
            before = 0 if self.full else len(read.known)
            outcome.documents = before + outcome.added - outcome.deleted
            if outcome.complete:
                self.state.set_cursor(read.source, read.scan.cursor)
        try:
            await self.state.save()
        except OSError:  # only an optimisation: the next run reads (not embeds) a little more
            log.warning("Could not save the sources' state to %s", self.state.path, exc_info=True)

    async def _confirm(self, *, fresh: bool = False) -> None:
        """Raise unless this run may still write (see `RunGuard`); free without a guard."""
        if self.guard is not None:
            await self.guard.confirm(fresh=fresh)

    async def _open_writer(self) -> IndexWriter:
        await self.embedder.warm_up()  # loads the model / learns the dimension before a generation exists
        await self._confirm()
        self.ledger.note(await drop_unfinished_rebuilds(self.store))
        model_id, dimension = self.embedder.model_id, self.embedder.dimension
        if not self.full:
            try:
                writer = await self.store.open_writer(rebuild=False, model_id=model_id, dimension=dimension)
            except IndexSchemaOutdated as exc:
                self.ledger.notes.append(f"index format changed: rebuilt fully ({exc})")
                self.ledger.full = True
                self.ledger.set(full=True)
            except IndexModelMismatch as exc:
                self.ledger.notes.append(f"embedding model changed: rebuilt fully with {model_id} ({exc})")
                self.ledger.full = True
                self.ledger.set(full=True)
            else:
                self.ledger.collection = writer.collection
                return writer
        writer = await self.store.open_writer(rebuild=True, model_id=model_id, dimension=dimension)
        self.ledger.collection = writer.collection
        if self.partial:
            where = ", ".join(source.name for source in self.sources)
            self.ledger.notes.append(f"the rebuilt index holds only documents of {where}")
        return writer

    async def _nothing_indexed(self, writer: IndexWriter) -> IndexResult:
        """No document found (or, rebuilding, none indexed): change nothing. An emptied folder, an
        unreachable site or a run where every file failed must not wipe the index."""
        ledger = self.ledger
        ledger.empty_source = ledger.seen == 0
        if ledger.empty_source and not any("no supported documents" in note for note in ledger.notes):
            where = ", ".join(source.name for source in self.sources) or "(no sources given)"
            ledger.notes.append(f"no supported documents in {where}")
        if self.full:
            await writer.abort()
            ledger.notes.append("the rebuild was abandoned; the previous index keeps serving")
        else:
            ledger.notes.append("the index was left unchanged")
        ledger.set(phase="done")
        return ledger.result()

    async def _failed(self, writer: IndexWriter | None, stage: str, exc: BaseException) -> IndexRunFailed:
        """Clean up after a failure and describe what still serves."""
        cause = f"{type(exc).__name__}: {exc}"
        if writer is None:
            aftermath = "nothing was changed"
        elif self.full:
            aftermath = await self._abort(writer)
        elif isinstance(exc, LeaseLost):
            aftermath = "it wrote nothing after that; the run holding the lease now keeps the index in step"
        else:
            finished = self.ledger.added + self.ledger.updated
            left = max(0, self.ledger.seen - self.ledger.progress.documents_done)
            aftermath = (
                f"{finished} documents finished before the failure are indexed; "
                f"the other {left} will be indexed by the next run"
            )
        error = f"indexing stopped while {stage}: {cause}"
        return IndexRunFailed(f"{_sentence(error)} {_sentence(aftermath)}", self.ledger.result(error=error))

    async def _abort(self, writer: IndexWriter | None) -> str:
        if writer is None or not self.full:
            return "nothing was changed"
        try:
            await writer.abort()
        except Exception as exc:
            log.exception("Could not drop the unfinished index generation %s", writer.collection)
            return (
                f"the previous index keeps serving (the unfinished collection {writer.collection} could "
                f"not be dropped: {exc}; the next rebuild drops it)"
            )
        return "the rebuild was abandoned and the previous index keeps serving"
