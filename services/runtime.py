"""Builds the running parts from `Settings` in one place: store, embedder, database, indexer, chat."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from configs.config import Settings
from data.database import Database
from data.embeddings import Embedder, make_embedder
from data.vector_store import VectorStore, WeaviateVectorStore
from services.chatkit_service import ChatService, create_chat_service
from services.indexer import Indexer
from services.rag import Retriever

log = logging.getLogger(__name__)


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

    async def health(self) -> dict[str, bool]:
        """Checks for `/healthz`."""
        return {"vector_store": await self.store.is_healthy(), "database": await self.database.is_healthy()}


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
