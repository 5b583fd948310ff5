"""Builds the running parts from `Settings` in one place: store, embedder, database, indexer, chat."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

from configs.config import Settings
from data.database import Database
from data.embeddings import Embedder, make_embedder
from data.errors import WeaviateServerError
from data.vector_store import VectorStore, WeaviateVectorStore
from data.weaviate_connection import WeaviateConnection
from services.chatkit_service import ChatService, create_chat_service
from services.indexer import Indexer
from services.rag import Retriever
from services.spaces.directory import Spaces

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ComponentHealth:
    """One part of the bot as `/healthz` reports it: whether it works, its state, and why not."""

    healthy: bool
    state: str  # e.g. "running", "restarting", "connected", "reconnecting", "failed"
    detail: str | None = None  # what is wrong, in words for whoever runs the bot
    facts: Mapping[str, object] = field(default_factory=dict)  # e.g. restarts, pid

    def as_json(self) -> dict[str, object]:
        return {"healthy": self.healthy, "state": self.state, "detail": self.detail, **self.facts}


@dataclass
class Runtime:
    """Everything a command or an adapter needs, opened together and closed together."""

    settings: Settings
    store: VectorStore
    embedder: Embedder
    database: Database
    retriever: Retriever
    indexer: Indexer
    chat: ChatService
    spaces: Spaces = field(init=False)  # which sources each chat place searches (docs/spaces.md)

    def __post_init__(self) -> None:
        self.spaces = Spaces(self.settings, self.database.spaces)

    async def health(self) -> dict[str, ComponentHealth]:
        """The vector store (with the embedded server's restarts), the Weaviate nodes and the database,
        for `/healthz`."""
        return {
            "vector_store": await self._vector_store_health(),
            "weaviate_cluster": await self._cluster_health(),
            "database": await self._database_health(),
        }

    async def _cluster_health(self) -> ComponentHealth:
        """Healthy while every shard has enough live copies to search at WEAVIATE_READ_CONSISTENCY: one
        node down of 3 copies is "degraded" but healthy, so /healthz stays 200 and no replica leaves the
        load balancer."""
        cluster = await self.store.cluster_health()
        if cluster.error is not None:
            return ComponentHealth(False, "unreachable", cluster.error)
        factor = self.settings.weaviate_replication_factor
        detail = cluster.describe(factor)[0] if cluster.degraded else None
        state = "degraded" if cluster.degraded else "ok"
        return ComponentHealth(cluster.readable, state, detail, cluster.to_dict())

    async def _vector_store_health(self) -> ComponentHealth:
        answers = await self.store.is_healthy()
        problem: str | None = None
        status = self.store.server_status if isinstance(self.store, WeaviateConnection) else None
        if status is None:  # a remote Weaviate: whether it answers is all we know
            where = self.store.url if isinstance(self.store, WeaviateConnection) else "the vector store"
            if not answers:
                problem = f"Weaviate at {where} does not answer its readiness check."
            return ComponentHealth(answers, "reachable" if answers else "unreachable", problem)
        facts: dict[str, object] = {
            "restarts": status.restarts,
            "pid": status.pid,
            "last_exit": status.last_exit,
        }
        if status.down_seconds is not None:
            facts["down_seconds"] = round(status.down_seconds, 1)
        if not status.healthy:
            problem = status.reason
        elif not answers:
            problem = "The embedded Weaviate server runs but does not answer its readiness check."
        return ComponentHealth(answers and status.healthy, status.state, problem, facts)

    async def _database_health(self) -> ComponentHealth:
        answers = await self.database.is_healthy()
        detail = None if answers else "The conversation database does not answer (check DATABASE_URL)."
        return ComponentHealth(answers, "reachable" if answers else "unreachable", detail)

    async def vector_store_gave_up(self) -> WeaviateServerError:
        """Return once the embedded Weaviate cannot be restarted any more; never for a remote one."""
        if not isinstance(self.store, WeaviateConnection):
            await asyncio.Event().wait()
        assert isinstance(self.store, WeaviateConnection)
        return await self.store.wait_gave_up()


@asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """Connect (or start the embedded Weaviate), open the database, and wire the services."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with AsyncExitStack() as stack:
        store: VectorStore = WeaviateVectorStore(settings)
        await store.connect()
        stack.push_async_callback(store.close)
        database = Database(settings.database_dsn)
        await database.create()
        stack.push_async_callback(database.dispose)
        embedder = make_embedder(settings)
        stack.push_async_callback(embedder.aclose)
        retriever = Retriever(settings, store, embedder)
        indexer = Indexer(settings, store, embedder, run_log=database.index_runs)
        chat = await create_chat_service(settings, retriever, database)
        yield Runtime(settings, store, embedder, database, retriever, indexer, chat)
