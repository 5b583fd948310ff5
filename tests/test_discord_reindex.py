"""`/reindex` through simcord with the real `Indexer`, Weaviate store and local embedder.

Discord hides the command from members without Manage Server (`default_permissions`); the bot
checks again server-side because server admins can override command permissions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import discord
import pytest
import simcord
from counting_embedder import CountingEmbedder
from scripted_ask import ScriptedAsk
from simcord_support import general_channel

from data.vector_store import WeaviateVectorStore
from services.discord.bot import DiscordBot
from services.indexer import Indexer, IndexProgress

pytestmark = pytest.mark.simcord(settle_timeout=120)


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "install.md").write_text("# Install\n\nRun `pip install docsbot` and set DISCORD_TOKEN.\n")
    (folder / "backups.md").write_text("# Backups\n\nBackups run nightly at 02:00 and are kept 30 days.\n")
    return folder


@pytest.fixture
async def store(make_settings, docs: Path) -> AsyncIterator[WeaviateVectorStore]:
    async with WeaviateVectorStore(make_settings(docs_paths=[str(docs)])) as store:
        yield store


@pytest.fixture
def indexer(store: WeaviateVectorStore, embedder) -> Indexer:
    return Indexer(store.settings, store, embedder)


@pytest.fixture
def make_bot(store: WeaviateVectorStore, indexer: Indexer):
    def make(**overrides: object) -> discord.Client:
        settings = store.settings.model_copy(
            update={"discord_token": "simcord-token", "discord_shard_count": 1, **overrides}
        )
        return DiscordBot(settings, ScriptedAsk(), indexer).client

    return make


@pytest.fixture
def simcord_bot(make_bot) -> discord.Client:
    return make_bot()


def manager_role(guild):
    return guild.create_role("Managers", permissions=discord.Permissions(manage_guild=True))


async def test_members_without_manage_server_cannot_reindex(
    simcord_env, store: WeaviateVectorStore, indexer: Indexer
) -> None:
    guild, channel, alice = general_channel(simcord_env)

    # Discord itself hides the command (default_permissions(manage_guild=True)) ...
    assert "reindex" not in alice.available_commands(channel)
    assert "ask" in alice.available_commands(channel)
    with pytest.raises(simcord.SetupError, match="not visible"):
        await alice.slash(channel, "reindex")

    # ... and when a server admin lets everyone see it, the bot still refuses.
    [command] = [c for c in await simcord_env.bot.tree.fetch_commands() if c.name == "reindex"]
    guild.set_command_permissions(command, {alice: True})
    result = await alice.slash(channel, "reindex", mode="full")

    assert result.ephemeral
    assert result.response is not None
    assert result.response.content == "⛔ Only server managers can reindex the docs."
    assert not indexer.running
    assert await store.stats() is None  # nothing was indexed


async def test_admin_reindex_defers_reports_progress_and_the_result(
    simcord_env, store: WeaviateVectorStore
) -> None:
    guild = simcord_env.create_guild()
    channel = guild.create_text_channel("general")
    admin = guild.add_member(simcord_env.create_user("admin"), roles=[manager_role(guild)])

    result = await admin.slash(channel, "reindex", mode="full")

    [callback] = [r for r in simcord_env.http_requests if r.path.endswith("/callback")]
    assert callback.json == {"type": 5, "data": {"flags": 64}}  # deferred, ephemeral
    assert result.ephemeral
    edits = [r.json or {} for r in simcord_env.http_requests if r.method == "PATCH"]
    progress_edits = [e["content"] for e in edits if "Indexing:" in e.get("content", "")]
    assert progress_edits, "no progress was shown"
    assert "(full rebuild)" in progress_edits[-1]
    report = result.followups[-1]
    assert report.ephemeral
    assert report.content.startswith("✅ Reindex finished.")
    assert "2 documents" in report.content
    stats = await store.stats()
    assert stats is not None and stats.documents == 2


async def test_a_second_reindex_while_one_runs_is_told_so(
    simcord_env, indexer: Indexer, store: WeaviateVectorStore
) -> None:
    guild = simcord_env.create_guild()
    channel = guild.create_text_channel("general")
    admin = guild.add_member(simcord_env.create_user("admin"), roles=[manager_role(guild)])
    release = asyncio.Event()

    async def hold(progress: IndexProgress) -> None:
        await release.wait()  # the run cannot finish before its last progress report

    running = indexer.start_background(on_progress=hold, progress_interval=0.0)
    try:
        busy = await admin.slash(channel, "reindex")
        status = await admin.slash(channel, "reindex", mode="status")
    finally:
        release.set()
    result = await running

    assert busy.response is not None and status.response is not None
    assert busy.response.content.startswith("⏳ Indexing is already running: scanning")
    assert status.response.content.startswith("⏳ Indexing: scanning")
    assert result.failed == 0
    assert not indexer.running


async def test_admin_roles_replace_manage_server_when_set(simcord_env, make_bot) -> None:
    guild = simcord_env.create_guild()
    channel = guild.create_text_channel("general")
    ops = guild.create_role("Docs ops")
    manager = guild.add_member(simcord_env.create_user("manager"), roles=[manager_role(guild)])
    operator = guild.add_member(simcord_env.create_user("operator"), roles=[ops])
    await simcord_env.restart_bot(make_bot(discord_admin_role_ids=[ops.id]))
    [command] = [c for c in await simcord_env.bot.tree.fetch_commands() if c.name == "reindex"]
    guild.set_command_permissions(command, {ops: True})

    refused = await manager.slash(channel, "reindex", mode="status")
    allowed = await operator.slash(channel, "reindex", mode="status")

    assert refused.response is not None
    assert refused.response.content == "⛔ Only members with an admin role can reindex the docs."
    assert allowed.response is not None
    assert allowed.response.content.startswith("No indexing is running.\n• ")
    assert "docs: never indexed; refreshed on demand" in allowed.response.content  # one line per source


async def test_a_failed_run_reports_why_and_what_still_serves(
    simcord_env, store: WeaviateVectorStore, embedder
) -> None:
    failing = Indexer(store.settings, store, CountingEmbedder(embedder, fail_on_call=1))
    settings = store.settings.model_copy(update={"discord_token": "simcord-token", "discord_shard_count": 1})
    await simcord_env.restart_bot(DiscordBot(settings, ScriptedAsk(), failing).client)
    guild = simcord_env.create_guild()
    channel = guild.create_text_channel("general")
    admin = guild.add_member(simcord_env.create_user("admin"), roles=[manager_role(guild)])

    result = await admin.slash(channel, "reindex", mode="full")

    report = result.followups[-1]
    assert report.ephemeral
    assert report.content.startswith("❌ Indexing stopped while")
    assert "EmbedderOutage: embedding provider unavailable" in report.content
    assert "FAILED" in report.content  # the partial counts follow the reason
    assert not failing.running
