"""The Discord adapter with the real `ChatService` (SQLite conversations, Weaviate retrieval, local
embedder, the offline model), driven through simcord."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import simcord
from simcord_support import bot_messages, general_channel

from configs.config import Settings
from data.database import Database
from data.vector_store import WeaviateVectorStore
from services.chatkit_service import ChatService, create_chat_service
from services.discord.bot import DiscordBot
from services.indexer import Indexer
from services.rag import Retriever


def closed_ports(count: int) -> list[int]:
    """Distinct local ports nothing listens on (bound together by us, then released)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


@pytest.fixture
async def engine(embedder) -> AsyncIterator[Callable[[Settings], ChatService]]:
    """Builds real `ChatService`s (store, database, retriever) and closes them after the test."""
    opened: list[tuple[WeaviateVectorStore, Database]] = []
    services: dict[int, ChatService] = {}

    async def build(settings: Settings) -> ChatService:
        store = WeaviateVectorStore(settings)
        database = Database(settings.database_dsn)
        await database.create()
        opened.append((store, database))
        service = await create_chat_service(settings, Retriever(settings, store, embedder), database)
        services[id(service)] = service
        return service

    yield build  # type: ignore[misc]
    for store, database in opened:
        await store.close()
        await database.dispose()


async def test_store_down_ends_in_an_error_message(make_plain_settings, engine, embedder) -> None:
    port, grpc_port = closed_ports(2)
    settings = make_plain_settings(
        discord_token="simcord-token",
        discord_shard_count=1,
        weaviate_url=f"http://127.0.0.1:{port}",
        weaviate_grpc_url=f"127.0.0.1:{grpc_port}",
    )
    chat = await engine(settings)
    bot = DiscordBot(settings, chat, Indexer(settings, WeaviateVectorStore(settings), embedder))

    async with simcord.run(bot.client, settle_timeout=60) as env:
        _, channel, alice = general_channel(env)

        assert env.bot.user is not None
        await alice.send(channel, f"{env.bot.user.mention} how are backups made?")

        [thread] = channel.threads
        [reply] = bot_messages(thread)
    assert reply.content.startswith("⚠️ The vector store is unavailable")
    assert f"Cannot reach Weaviate at http://127.0.0.1:{port}" in reply.content


async def test_mention_answers_from_the_indexed_docs_with_sources(
    make_settings, engine, embedder, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "backups.md").write_text(
        "# Backups\n\nBackups run nightly at 02:00 UTC and are kept for 30 days in the vault bucket.\n"
    )
    settings = make_settings(discord_token="simcord-token", discord_shard_count=1, docs_paths=[str(docs)])
    async with WeaviateVectorStore(settings) as store:
        indexer = Indexer(settings, store, embedder)
        result = await indexer.index()
        assert result.failed == 0
        chat = await engine(settings)
        bot = DiscordBot(settings, chat, indexer)

        async with simcord.run(bot.client, settle_timeout=60) as env:
            guild, channel, alice = general_channel(env)
            assert env.bot.user is not None
            await alice.send(channel, f"{env.bot.user.mention} when do backups run?")
            [thread] = channel.threads
            await alice.send(thread, "how long are they kept?")
            replies = [m.content for m in bot_messages(thread)]

    assert len(replies) == 2
    assert "02:00" in replies[0]
    assert "**Sources**" in replies[0] and "backups.md" in replies[0]
    assert "30 days" in replies[1]
    assert await chat.has_conversation(f"discord:{guild.id}:{thread.id}")
