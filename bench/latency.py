"""`ask` latency through the chatkit service (`ChatService.ask`) with the offline model, at several
numbers of concurrent conversations, split into embedding the query, the Weaviate query, and the
rest (agent, chatkit, conversation store). The split is measured by wrapping the embedder and the
store the retriever uses; a per-ask accumulator travels in a context variable (tasks the service
starts inherit it)."""

from __future__ import annotations

import asyncio
import contextvars
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import event

from bench.dataset import WORK_DIR, Dataset
from bench.engine import bench_settings
from bench.quality import BASE_INDEX
from data.database import Database
from data.embeddings import LocalOnnxEmbedder
from data.records import SearchHit
from data.vector_store import WeaviateVectorStore
from data.weaviate_server import EmbeddedWeaviate
from services.chat.contract import Answer, AskFailed
from services.chatkit_service import create_chat_service
from services.rag import Retriever

LEVELS = (1, 10, 50)
TURNS = {1: 60, 10: 9, 50: 3}  # asks per concurrent user: 60, 90 and 150 asks in all
# A user asks a few questions in one thread, then starts a new one (a Slack thread rarely holds more).
CONVERSATION_TURNS = 3


@dataclass
class Spent:
    embedding: float = 0.0
    weaviate: float = 0.0


_SPENT: contextvars.ContextVar[Spent | None] = contextvars.ContextVar("bench_spent", default=None)


class TimedEmbedder:
    """The embedder, timing `embed_query` into the current ask (waiting for the model included)."""

    def __init__(self, inner: LocalOnnxEmbedder) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dimension = inner.dimension

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return await self.inner.embed_documents(texts)

    async def embed_query(self, text: str) -> list[float]:
        started = time.perf_counter()
        try:
            return await self.inner.embed_query(text)
        finally:
            if (spent := _SPENT.get()) is not None:
                spent.embedding += time.perf_counter() - started

    async def warm_up(self) -> None:
        await self.inner.warm_up()

    async def aclose(self) -> None:
        await self.inner.aclose()


class TimedStore:
    """The vector store, timing `search` into the current ask."""

    def __init__(self, inner: WeaviateVectorStore) -> None:
        self.inner = inner

    async def search(self, *args: Any, **kwargs: Any) -> list[SearchHit]:
        started = time.perf_counter()
        try:
            return await self.inner.search(*args, **kwargs)
        finally:
            if (spent := _SPENT.get()) is not None:
                spent.weaviate += time.perf_counter() - started

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    data = np.asarray(values, dtype=float) * 1000.0
    p50, p95, p99 = np.percentile(data, [50, 95, 99])
    return {"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99), "mean_ms": float(data.mean())}


async def measure(
    server: EmbeddedWeaviate,
    dataset: Dataset,
    levels: Sequence[int] = LEVELS,
    quick: bool = False,
    database_url: str | None = None,
) -> dict[str, Any]:
    """Each level: `level` conversations asking `TURNS[level]` questions each, all at once.
    Conversations go to SQLite in a fresh folder, or to `database_url` (e.g. PostgreSQL)."""
    data_dir = WORK_DIR / "latency"
    if data_dir.exists():
        shutil.rmtree(data_dir)
    settings = bench_settings(
        server,
        BASE_INDEX.collection(dataset.name),
        data_dir=data_dir,
        search_min_similarity=None,
        database_url=database_url,
    )
    data_dir.mkdir(parents=True)
    store = WeaviateVectorStore(settings)
    await store.connect()
    database = Database(settings.database_dsn)
    await database.create()
    inner = LocalOnnxEmbedder(batch_size=settings.embedding_batch_size)
    await inner.warm_up()
    # Questions repeat across levels: every ask embeds its query, as a first-time question does.
    retriever = Retriever(settings, TimedStore(store), TimedEmbedder(inner), remembered_queries=0)
    chat = await create_chat_service(settings, retriever, database)
    questions = [q.query for q in dataset.queries]
    results: dict[str, Any] = {
        "dataset": dataset.name,
        "database": "SQLite" if database.is_sqlite else database.url.get_backend_name(),
        "levels": [],
    }
    try:
        statements: list[str] = []
        event.listen(database.engine.sync_engine, "before_cursor_execute", _counter(statements))
        await _ask(chat, "bench:warm-up", questions[0])
        for level in levels:
            turns = TURNS.get(level, 3) if not quick else max(2, TURNS.get(level, 3) // 3)
            samples: list[tuple[float, Spent, bool]] = []

            async def conversation(
                number: int, level: int = level, turns: int = turns, samples: list[Any] = samples
            ) -> None:
                for turn in range(turns):
                    question = questions[(number * turns + turn) % len(questions)]
                    key = f"bench:{level}:{number}:{turn // CONVERSATION_TURNS}"
                    samples.append(await _ask(chat, key, question))

            statements_before = len(statements)
            started, cpu, loop_cpu = time.perf_counter(), time.process_time(), time.thread_time()
            await asyncio.gather(*(conversation(n) for n in range(level)))
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            loop_cpu = time.thread_time() - loop_cpu
            totals = [t for t, _, _ in samples]
            rest_share = [max(0.0, t - s.embedding - s.weaviate) / t for t, s, _ in samples]
            results["levels"].append(
                {
                    "concurrency": level,
                    "asks": len(samples),
                    "failed": sum(not ok for _, _, ok in samples),
                    "wall_seconds": wall,
                    "asks_per_second": len(samples) / wall,
                    "cpu_ms_per_ask": 1000 * cpu / len(samples),  # this process, all threads
                    "loop_cpu_ms_per_ask": 1000 * loop_cpu / len(samples),  # the event loop's thread
                    "sql_statements_per_ask": (len(statements) - statements_before) / len(samples),
                    "total": _percentiles(totals),
                    "embedding": _percentiles([s.embedding for _, s, _ in samples]),
                    "weaviate": _percentiles([s.weaviate for _, s, _ in samples]),
                    "rest": _percentiles([max(0.0, t - s.embedding - s.weaviate) for t, s, _ in samples]),
                    "rest_share_p50": float(np.median(rest_share)),
                    "rest_share_of_sum": sum(t - s.embedding - s.weaviate for t, s, _ in samples)
                    / sum(totals),
                }
            )
            print(f"  latency c={level}: {results['levels'][-1]['total']}", flush=True)
        results["profile"] = await profile_asks(chat, questions)
        results["sql_statement_loop_cpu_ms"] = await _statement_cost(database)
    finally:
        await database.dispose()
        await store.close()
    return results


def _counter(statements: list[str]) -> Any:
    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    return count


async def _statement_cost(database: Database, repeats: int = 300) -> float:
    """Event-loop CPU of one small SQL round trip (an item's thread: a one-row SELECT), in ms."""
    await database.thread_of_item("bench:none")
    started = time.thread_time()
    for _ in range(repeats):
        await database.thread_of_item("bench:none")
    return 1000 * (time.thread_time() - started) / repeats


async def _ask(chat: Any, key: str, question: str) -> tuple[float, Spent, bool]:
    spent = Spent()
    token = _SPENT.set(spent)
    started = time.perf_counter()
    ok = False
    try:
        async for event in chat.ask(key, question):
            if isinstance(event, Answer):
                ok = True
            if isinstance(event, Answer | AskFailed):
                break
    finally:
        _SPENT.reset(token)
    return time.perf_counter() - started, spent, ok


# Where "the rest" goes: cumulative time of these functions under cProfile, per ask (coroutine
# resumes are summed, so a function's figure is the time spent inside it).
PROFILED = (
    (
        "services/chatkit_service.py",
        "_stream",
        "chatkit turn: store calls and events (the agent runs in its own task, below)",
    ),
    ("sqlalchemy/util/concurrency.py", "greenlet_spawn", "all SQLAlchemy calls (conversation store, SQLite)"),
    ("services/chatkit_service.py", "_history", "conversation store: load the history for the model"),
    ("services/chat/store.py", "add_thread_item", "conversation store: save an item"),
    ("agents/run.py", "run_loop", "openai-agents run loop (offline model and tool included)"),
    (
        "simple_agents/offline_model.py",
        "stream_response",
        "offline model: pick the call / quote the passages",
    ),
    ("simple_agents/aagents.py", "search_docs", "search_docs tool (query embedding + Weaviate + merging)"),
)


async def profile_asks(chat: Any, questions: Sequence[str], asks: int = 20) -> dict[str, Any]:
    """Profile `asks` sequential asks (conversations of `CONVERSATION_TURNS`) and attribute time to
    PROFILED functions."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for number in range(asks):
        key = f"bench:profile:{number // CONVERSATION_TURNS}"
        await _ask(chat, key, questions[number % len(questions)])
    profiler.disable()
    wall = time.perf_counter() - started
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows = []
    for suffix, name, label in PROFILED:
        cumulative = sum(
            v[3] for (path, _, func), v in stats.items() if path.endswith(suffix) and func == name
        )
        rows.append({"label": label, "ms_per_ask": 1000 * cumulative / asks, "share": cumulative / wall})
    return {"asks": asks, "profiled_ms_per_ask": 1000 * wall / asks, "rows": rows}
