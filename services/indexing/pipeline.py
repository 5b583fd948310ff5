"""One index run: scan, then parse → embed → write as overlapping stages, then delete and commit.

Stages are tasks joined by bounded queues (back-pressure keeps memory flat): parse workers run
the loader and chunker in threads and stream each document's chunks in slices (no document's, let
alone the corpus's, chunks are ever all in memory), the embedder stage batches chunks across
documents, and the writer stage upserts batches and records a document's state only once all its
chunks are written. A run that stops part-way thus leaves every recorded document complete (what
else it left, the next run clears: `recovery`). Before each write the run confirms it may still
write (`RunGuard`), so one paused past its lease and replaced meanwhile stops instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from configs.config import Settings
from data.embeddings import Embedder
from data.errors import IndexModelMismatch
from data.leases import LeaseLost
from data.records import Chunk, DocumentState
from data.vector_store import IndexWriter, VectorStore
from services.indexing import loader
from services.indexing.chunking import chunk_count_problem, chunk_slices
from services.indexing.contract import IndexFailure, IndexProgress, IndexResult, IndexRunFailed, RunGuard
from services.indexing.loader import LoadFailure, ParsedDocument, discover, hash_file, parse_document
from services.indexing.recovery import drop_unfinished_rebuilds, remove_unfinished_documents

log = logging.getLogger(__name__)

EMBED_BATCH = 64  # chunks per embedder call (across documents)
PARSE_WORKERS = 2  # documents parsed concurrently (threads)
SLICE_QUEUE = 8  # slices of a document's chunks (one embedder call's worth), or its end, for the embedder
BATCH_QUEUE = 2  # embedded batches waiting for the writer


@dataclass(frozen=True, slots=True)
class _Work:
    """A document whose chunks are on their way to the store."""

    state: DocumentState
    is_update: bool


@dataclass(frozen=True, slots=True)
class _Batch:
    """Embedded chunks, plus the documents whose last chunk is in (or before) this batch."""

    chunks: list[Chunk]
    vectors: list[list[float]]
    completed: list[_Work]


# A document's chunks travel in slices made as the queue takes them (memory holds a queue's worth
# of chunks however large the document), then its `_Work`; None ends the stream.
_Queued = list[Chunk] | _Work | None


class _StageError(Exception):
    def __init__(self, stage: str, cause: Exception) -> None:
        super().__init__(stage)
        self.stage = stage
        self.cause = cause


_Prepared = ParsedDocument | LoadFailure | None  # None: unchanged


def _prepare(path: Path, known: DocumentState | None, settings: Settings) -> _Prepared:
    """Blocking (run in a thread): skip unchanged files by hash (no parsing), else parse, and count
    the chunks (without keeping them) to skip a document over MAX_CHUNKS_PER_DOCUMENT whole."""
    data: bytes | None = None
    with contextlib.suppress(OSError):  # unreadable: parse_document says why
        if (oversized := loader.oversize_reason(path.stat().st_size, settings.max_file_bytes)) is not None:
            return LoadFailure(str(path), oversized)  # before hashing it: that reads it all
        if known is not None and hash_file(path) == known.content_hash:
            return None
        data = path.read_bytes()
    parsed = parse_document(path, data)
    if isinstance(parsed, LoadFailure):
        return parsed
    try:
        problem = chunk_count_problem(parsed, settings)
    except Exception as exc:  # one odd document must not stop the others
        return LoadFailure(str(path), f"could not split into chunks ({type(exc).__name__}: {exc})")
    return parsed if problem is None else LoadFailure(str(path), problem)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _is_under(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


class IndexRun:
    """State and stages of a single run; `execute()` returns the result or raises `IndexRunFailed`."""

    def __init__(
        self,
        settings: Settings,
        store: VectorStore,
        embedder: Embedder,
        progress: IndexProgress,
        roots: Sequence[Path],
        full: bool,
        notify: Callable[[], None],
        guard: RunGuard | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.progress = progress
        self.roots = list(roots)
        self.full = full
        self.notify = notify
        self.guard = guard
        self.batch_size = max(EMBED_BATCH, settings.embedding_batch_size)
        self.collection = settings.weaviate_collection
        self.seen = self.added = self.updated = self.unchanged = self.deleted = 0
        self.embedded = 0
        self.failures: list[IndexFailure] = []
        self.notes: list[str] = []
        self.empty_source = False
        self._started = time.perf_counter()

    # -- orchestration ------------------------------------------------------------------------------
    async def execute(self) -> IndexResult:
        writer: IndexWriter | None = None
        stage = "opening the index"
        try:
            writer = await self._open_writer()
            stage = "scanning the documents"
            discovery = await discover(self.roots)
            self.failures.extend(IndexFailure(f.path, f.reason) for f in discovery.failures)
            self.seen = len(discovery.files)
            self._set(documents_total=self.seen)
            if not discovery.files:
                return await self._empty_source(writer, discovery.unsupported)
            stage = "reading the index's document list"
            states = await writer.document_states()
            if not self.full:
                stage = "removing what an interrupted run left"
                await self._confirm()
                self._note(await remove_unfinished_documents(writer, states))
            self._set(phase="indexing")
            await self._pipeline(writer, discovery.files, states)
            stage = "deleting removed documents"
            broken = [Path(f.path) for f in discovery.failures]
            gone = await asyncio.to_thread(self._vanished, states, discovery.files, broken)
            if gone:
                self._set(phase="deleting")
                await self._confirm()
                await writer.delete_documents(gone)
                self.deleted = len(gone)
            stage = "committing the index"
            self._set(phase="committing")
            await self._confirm(fresh=True)  # the step that makes a rebuild serve: ask the database
            await writer.commit()
        except _StageError as exc:
            raise await self._failed(writer, exc.stage, exc.cause) from exc.cause
        except Exception as exc:
            raise await self._failed(writer, stage, exc) from exc
        except BaseException:  # cancelled: a half-built generation must not linger
            await self._abort(writer)
            raise
        self._set(phase="done")
        return self.result()

    async def _confirm(self, *, fresh: bool = False) -> None:
        """Raise unless this run may still write (see `RunGuard`); free without a guard."""
        if self.guard is not None:
            await self.guard.confirm(fresh=fresh)

    async def _open_writer(self) -> IndexWriter:
        await self.embedder.warm_up()  # loads the model / learns the dimension before a generation exists
        await self._confirm()
        self._note(await drop_unfinished_rebuilds(self.store))
        model_id, dimension = self.embedder.model_id, self.embedder.dimension
        if not self.full:
            try:
                writer = await self.store.open_writer(rebuild=False, model_id=model_id, dimension=dimension)
            except IndexModelMismatch as exc:
                self.notes.append(f"embedding model changed: rebuilt fully with {model_id} ({exc})")
                self.full = True
                self._set(full=True)
            else:
                self.collection = writer.collection
                return writer
        writer = await self.store.open_writer(rebuild=True, model_id=model_id, dimension=dimension)
        self.collection = writer.collection
        if [str(root) for root in self.roots] != list(self.settings.docs_paths):
            where = ", ".join(str(root) for root in self.roots)
            self.notes.append(f"the rebuilt index holds only documents under {where}")
        return writer

    async def _empty_source(self, writer: IndexWriter, unsupported: int) -> IndexResult:
        """Nothing to index: say so, and change nothing (an emptied folder must not wipe the index)."""
        self.empty_source = True
        where = ", ".join(str(root) for root in self.roots) or "(no paths given)"
        other = f" ({unsupported} files of other types were skipped)" if unsupported else ""
        self.notes.append(f"no supported documents (.md, .rst, .txt, .html, .pdf) under {where}{other}")
        if self.full:
            await writer.abort()
            self.notes.append("the rebuild was abandoned; the previous index keeps serving")
        else:
            self.notes.append("the index was left unchanged")
        self._set(phase="done")
        return self.result()

    def _vanished(self, states: dict[str, DocumentState], files: list[Path], broken: list[Path]) -> list[str]:
        """Recorded documents under the indexed roots that are gone (never those elsewhere, nor
        under a path that could not be read this time). Blocking: resolves paths."""
        roots = [root.expanduser().resolve() for root in self.roots if root.exists()]
        broken = [loader.resolve_path(path) for path in broken]  # never raises, even for a link loop
        present = {str(path) for path in files}
        gone = []
        for document_id in states:
            path = Path(document_id)
            if document_id not in present and _is_under(path, roots) and not _is_under(path, broken):
                gone.append(document_id)
        return sorted(gone)

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
            finished = self.added + self.updated
            left = max(0, self.seen - self.progress.documents_done)
            aftermath = (
                f"{finished} documents finished before the failure are indexed; "
                f"the other {left} will be indexed by the next run"
            )
        error = f"indexing stopped while {stage}: {cause}"
        result = self.result(error=error)
        return IndexRunFailed(f"{_sentence(error)} {_sentence(aftermath)}", result)

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

    def _note(self, note: str | None) -> None:
        if note is not None:
            self.notes.append(note)

    def _set(self, **changes: object) -> None:
        for name, value in changes.items():
            setattr(self.progress, name, value)
        self.notify()

    def result(self, error: str | None = None) -> IndexResult:
        """What the run did so far (all of it once `execute` returned); `error` says why it stopped."""
        return IndexResult(
            seen=self.seen,
            added=self.added,
            updated=self.updated,
            unchanged=self.unchanged,
            deleted=self.deleted,
            failed=len(self.failures),
            failures=list(self.failures),
            chunks_written=self.progress.chunks_written,
            embeddings_computed=self.embedded,
            seconds=time.perf_counter() - self._started,
            full=self.full,
            empty_source=self.empty_source,
            collection=self.collection,
            notes=list(self.notes),
            error=error,
        )

    # -- the pipeline ---------------------------------------------------------------------------------
    async def _pipeline(
        self, writer: IndexWriter, files: list[Path], states: dict[str, DocumentState]
    ) -> None:
        docs: asyncio.Queue[_Queued] = asyncio.Queue(SLICE_QUEUE)
        batches: asyncio.Queue[_Batch | None] = asyncio.Queue(BATCH_QUEUE)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._stage("parsing documents", self._produce(iter(files), states, docs)))
                group.create_task(self._stage("embedding chunks", self._embed(docs, batches)))
                group.create_task(self._stage("writing to the vector store", self._write(writer, batches)))
        except BaseExceptionGroup as group_error:
            first = group_error.exceptions[0]
            raise first from None

    @staticmethod
    async def _stage(name: str, work: Coroutine[Any, Any, None]) -> None:
        """Name the stage in the error, so the user reads "while embedding chunks: …"."""
        try:
            await work
        except Exception as exc:
            while isinstance(exc, ExceptionGroup):
                exc = exc.exceptions[0]
            raise _StageError(name, exc) from exc

    async def _produce(
        self, files: Iterator[Path], states: dict[str, DocumentState], out: asyncio.Queue[_Queued]
    ) -> None:
        streaming = asyncio.Lock()  # one document's slices at a time: `_embed` relies on their order

        async def worker() -> None:
            for path in files:  # a shared iterator: each file goes to exactly one worker
                known = states.get(str(path))
                outcome = await asyncio.to_thread(_prepare, path, known, self.settings)
                if outcome is None:
                    self.unchanged += 1
                    self._set(documents_done=self.progress.documents_done + 1)
                elif isinstance(outcome, LoadFailure):
                    self.failures.append(IndexFailure(outcome.path, outcome.reason))
                    self._set(documents_done=self.progress.documents_done + 1)
                else:
                    async with streaming:
                        await self._stream(outcome, out, is_update=known is not None)

        async with asyncio.TaskGroup() as group:
            for _ in range(PARSE_WORKERS):
                group.create_task(worker())
        await out.put(None)

    async def _stream(self, parsed: ParsedDocument, out: asyncio.Queue[_Queued], *, is_update: bool) -> None:
        """Put the document's chunks in slices, chunking as the queue takes them, then its `_Work`."""
        count = 0
        async for part in chunk_slices(parsed, self.settings, self.batch_size):
            count += len(part)
            await out.put(part)
        self.notes.extend(f"{parsed.source}: {note}" for note in parsed.notes)
        await out.put(_Work(parsed.state(count), is_update))

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
                self.embedded += len(part)
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

    async def _write(self, writer: IndexWriter, batches: asyncio.Queue[_Batch | None]) -> None:
        while (batch := await batches.get()) is not None:
            await self._confirm()
            if batch.chunks:
                await writer.write_chunks(batch.chunks, batch.vectors)
                self._set(chunks_written=self.progress.chunks_written + len(batch.chunks))
            if batch.completed:
                await writer.finish_documents([work.state for work in batch.completed])
                for work in batch.completed:
                    if work.is_update:
                        self.updated += 1
                    else:
                        self.added += 1
                self._set(documents_done=self.progress.documents_done + len(batch.completed))
