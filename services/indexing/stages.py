"""The stages of an index run: read the sources → parse → embed → write, joined by bounded queues.

Back-pressure keeps memory flat: the scanner waits while the parse workers are busy, parse
workers run the source's parser and the chunker in threads and stream each document's chunks in
slices (no document's, let alone the corpus's, chunks are ever all in memory), the embedder stage
batches chunks across documents, and the writer stage upserts batches and records a document's
state (and its source's memo) only once all its chunks are written. Before each write the run
confirms it may still write (`RunGuard`), so one paused past its lease and replaced stops instead.

Sources are read one after another; one that fails (its host down, its repository gone) is
reported and the next one is read: its documents stay as they are.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from configs.config import Settings
from data.embeddings import Embedder
from data.records import Chunk, DocumentState
from data.vector_store import IndexWriter
from services.indexing.chunking import chunk_count_problem, chunk_slices
from services.indexing.contract import SourceOutcome
from services.indexing.ledger import RunLedger
from services.indexing.loader import LoadFailure
from services.sources.contract import (
    Change,
    Failed,
    Fetched,
    Gone,
    KnownDocument,
    Memo,
    Source,
    SourceDocument,
    SourceScan,
    Unchanged,
)
from services.sources.state import SourceStateFile

EMBED_BATCH = 64  # chunks per embedder call (across documents)
PARSE_WORKERS = 2  # documents parsed concurrently (threads)
PARSE_QUEUE = 4  # fetched documents waiting for a parse worker
SLICE_QUEUE = 8  # slices of a document's chunks (one embedder call's worth), or its end, for the embedder
BATCH_QUEUE = 2  # embedded batches waiting for the writer


@dataclass(frozen=True, slots=True)
class _ToParse:
    source: Source
    outcome: SourceOutcome
    change: Fetched
    is_update: bool


@dataclass(frozen=True, slots=True)
class _Work:
    """A document whose chunks are on their way to the store."""

    state: DocumentState
    is_update: bool
    source: Source
    outcome: SourceOutcome
    memo: Memo


@dataclass(frozen=True, slots=True)
class _Batch:
    """Embedded chunks, plus the documents whose last chunk is in (or before) this batch."""

    chunks: list[Chunk]
    vectors: list[list[float]]
    completed: list[_Work]


# A document's chunks travel in slices made as the queue takes them, then its `_Work`; None ends it.
_Queued = list[Chunk] | _Work | None


class StageError(Exception):
    """A stage failed; `stage` names it for the user ("while embedding chunks: …")."""

    def __init__(self, stage: str, cause: Exception) -> None:
        super().__init__(stage)
        self.stage = stage
        self.cause = cause


def _prepare(change: Fetched, settings: Settings) -> SourceDocument | LoadFailure:
    """Blocking (run in a thread): parse, and count the chunks (without keeping them) to skip a
    document over MAX_CHUNKS_PER_DOCUMENT whole, before any of it is embedded."""
    parsed = change.parse()
    if isinstance(parsed, LoadFailure):
        return parsed
    try:
        problem = chunk_count_problem(parsed.document, settings)
    except Exception as exc:  # one odd document must not stop the others
        return LoadFailure(change.source, f"could not split into chunks ({type(exc).__name__}: {exc})")
    return parsed if problem is None else LoadFailure(change.source, problem)


@dataclass(frozen=True, slots=True)
class SourceRead:
    """A source as this run read it: its scan (cursor, completeness) and the documents it knew."""

    source: Source
    scan: SourceScan
    known: dict[str, KnownDocument]
    failed: bool  # the scan raised: nothing of it may be taken as final


class Stages:
    """One run's stages over `sources`; `run()` returns the documents the sources say are gone."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        writer: IndexWriter,
        ledger: RunLedger,
        state: SourceStateFile,
        confirm: Callable[[], Awaitable[None]],
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.writer = writer
        self.ledger = ledger
        self.state = state
        self.confirm = confirm
        self.batch_size = max(EMBED_BATCH, settings.embedding_batch_size)
        self.gone: dict[str, tuple[Source, str]] = {}
        self.reads: list[SourceRead] = []

    async def run(self, sources: Sequence[Source], states: dict[str, DocumentState]) -> None:
        todo: asyncio.Queue[_ToParse | None] = asyncio.Queue(PARSE_QUEUE)
        docs: asyncio.Queue[_Queued] = asyncio.Queue(SLICE_QUEUE)
        batches: asyncio.Queue[_Batch | None] = asyncio.Queue(BATCH_QUEUE)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._stage("reading the sources", self._scan(sources, states, todo)))
                group.create_task(self._stage("parsing documents", self._parse(todo, docs)))
                group.create_task(self._stage("embedding chunks", self._embed(docs, batches)))
                group.create_task(self._stage("writing to the vector store", self._write(batches)))
        except BaseExceptionGroup as group_error:
            raise group_error.exceptions[0] from None

    @staticmethod
    async def _stage(name: str, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception as exc:
            while isinstance(exc, ExceptionGroup):
                exc = exc.exceptions[0]
            raise StageError(name, exc) from exc

    # -- reading the sources ----------------------------------------------------------------------
    async def _scan(
        self, sources: Sequence[Source], states: dict[str, DocumentState], out: asyncio.Queue[_ToParse | None]
    ) -> None:
        for source in sources:
            outcome = self.ledger.source(source.name, getattr(source, "location", source.name))
            full = self.ledger.full
            known = {} if full else self.state.known(source, states)
            scan = source.scan(known, {} if full else self.state.cursor(source))
            failed = False
            try:
                async for change in scan:
                    await self._take(source, outcome, known, states, change, out)
            except Exception as exc:  # a failing source must not stop the others
                failed = True
                outcome.error = f"{type(exc).__name__}: {exc}"
                reason = f"could not be read ({outcome.error}); its documents were kept"
                self.ledger.fail(outcome, source.name, reason, counted=False)
            finally:
                await scan.aclose()
            outcome.complete = scan.complete and not failed
            named = (f"{source.name}: ", f"{getattr(source, 'location', source.name)}: ")
            self.ledger.notes.extend(
                note if note.startswith(named) else f"{source.name}: {note}" for note in scan.notes
            )
            self.reads.append(SourceRead(source, scan, known, failed))
        for _ in range(PARSE_WORKERS):
            await out.put(None)

    async def _take(
        self,
        source: Source,
        outcome: SourceOutcome,
        known: dict[str, KnownDocument],
        states: dict[str, DocumentState],
        change: Change,
        out: asyncio.Queue[_ToParse | None],
    ) -> None:
        ledger = self.ledger
        if isinstance(change, Gone):
            if change.document_id in states:
                self.gone[change.document_id] = (source, change.reason)
            return
        if isinstance(change, Failed):
            retry = " (retried next run; nothing was removed)" if change.temporary else ""
            if change.document_id is not None:
                ledger.saw(outcome)
            ledger.fail(outcome, change.target, change.reason + retry, counted=change.document_id is not None)
            return
        ledger.saw(outcome)
        previous = known.get(change.document_id)
        if isinstance(change, Unchanged) or (previous and previous.content_hash == change.content_hash):
            if previous is not None:
                self.state.record(source, change.document_id, previous.content_hash, change.memo)
            ledger.done(outcome, "unchanged")
            return
        await out.put(_ToParse(source, outcome, change, is_update=change.document_id in states))

    # -- parsing ----------------------------------------------------------------------------------
    async def _parse(self, todo: asyncio.Queue[_ToParse | None], out: asyncio.Queue[_Queued]) -> None:
        streaming = asyncio.Lock()  # one document's slices at a time: `_embed` relies on their order

        async def worker() -> None:
            while (item := await todo.get()) is not None:
                parsed = await asyncio.to_thread(_prepare, item.change, self.settings)
                if isinstance(parsed, LoadFailure):
                    self.ledger.fail(item.outcome, parsed.path, parsed.reason)
                    continue
                async with streaming:
                    await self._stream(item, parsed, out)

        async with asyncio.TaskGroup() as group:
            for _ in range(PARSE_WORKERS):
                group.create_task(worker())
        await out.put(None)

    async def _stream(self, item: _ToParse, parsed: SourceDocument, out: asyncio.Queue[_Queued]) -> None:
        """Put the document's chunks in slices, chunking as the queue takes them, then its `_Work`."""
        document = parsed.document
        count = 0
        name = item.source.name
        async for part in chunk_slices(document, self.settings, self.batch_size):
            # Each chunk names its source (spaces search by it) and, for a page with heading ids,
            # cites the page at its nearest heading's #fragment.
            part = [
                dataclasses.replace(c, source_name=name, source=parsed.citation(c.heading_path)) for c in part
            ]
            count += len(part)
            await out.put(part)
        self.ledger.notes.extend(f"{document.source}: {note}" for note in document.notes)
        memo = item.change.memo
        await out.put(_Work(document.state(count), item.is_update, item.source, item.outcome, memo))

    # -- embedding --------------------------------------------------------------------------------
    async def _embed(self, docs: asyncio.Queue[_Queued], out: asyncio.Queue[_Batch | None]) -> None:
        """Batch chunks across documents; embed as soon as a batch is full or nothing else waits."""
        pending: list[Chunk] = []
        waiting: deque[tuple[int, _Work]] = deque()  # (stream offset of the doc's end, doc)
        queued = emitted = 0
        done = False
        while not done:
            item = await docs.get()
            if item is None:
                done = True
            elif isinstance(item, _Work):  # the document's last chunk is queued
                waiting.append((queued, item))
            else:
                pending.extend(item)
                queued += len(item)
            # Not waiting for a full batch when the queue is empty keeps the embedder busy.
            while pending and (len(pending) >= self.batch_size or done or docs.empty()):
                part, pending = pending[: self.batch_size], pending[self.batch_size :]
                vectors = await self.embedder.embed_documents([chunk.embed_text for chunk in part])
                if len(vectors) != len(part):
                    raise RuntimeError(f"the embedder returned {len(vectors)} vectors for {len(part)} texts")
                self.ledger.embedded += len(part)
                emitted += len(part)
                await out.put(_Batch(part, vectors, self._completed(waiting, emitted)))
            if waiting and waiting[0][0] <= emitted:  # documents without chunks left to embed
                await out.put(_Batch([], [], self._completed(waiting, emitted)))
        await out.put(None)

    @staticmethod
    def _completed(waiting: deque[tuple[int, _Work]], emitted: int) -> list[_Work]:
        completed = []
        while waiting and waiting[0][0] <= emitted:
            completed.append(waiting.popleft()[1])
        return completed

    # -- writing ----------------------------------------------------------------------------------
    async def _write(self, batches: asyncio.Queue[_Batch | None]) -> None:
        ledger = self.ledger
        while (batch := await batches.get()) is not None:
            await self.confirm()
            if batch.chunks:
                await self.writer.write_chunks(batch.chunks, batch.vectors)
                ledger.set(chunks_written=ledger.progress.chunks_written + len(batch.chunks))
            if batch.completed:
                await self.writer.finish_documents([work.state for work in batch.completed])
                for work in batch.completed:
                    self.state.record(work.source, work.state.document_id, work.state.content_hash, work.memo)
                    ledger.done(work.outcome, "updated" if work.is_update else "added")
