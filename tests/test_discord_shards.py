"""Discord sharding: bot clients holding different shards of one bot, against one local Discord
(`tests/fake_discord.py`) that delivers each guild's events only to the connections holding shard
`(guild_id >> 22) % count`, as Discord does. Each client is a separate `DiscordBot`, as a separate
process would run it (its own settings, client, HTTP session and gateway connections); they share
only the event loop. discord.py's gateway and REST code run unmodified over real sockets.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import discord.http
import pytest
import yarl
from discord.gateway import DiscordWebSocket
from fake_discord import FakeDiscord, shard_of
from scripted_ask import ScriptedAsk

from configs.config import ConfigError, Settings, load_settings
from services.discord.bot import DiscordBot

MakeSettings = Callable[..., Settings]


class UnusedIndexer:
    """These tests never reindex; any use fails loudly."""

    running = False
    progress = None

    def start_background(self, **_: object) -> None:
        raise AssertionError("the shard tests must not start an index run")


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    """A local Discord with two guilds, one on each shard of two."""
    fake = FakeDiscord()
    fake.add_guild(fake.guild_id + (1 << 22), fake.channel_id + 1)  # the next shard of two
    await fake.start()
    monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
    monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url))
    yield fake
    assert fake.unrouted == []
    await fake.stop()


def guilds_by_shard(fake: FakeDiscord) -> tuple[int, int]:
    """(the guild on shard 0, the guild on shard 1) of two shards."""
    on_0, on_1 = sorted(fake.channels, key=lambda guild: shard_of(guild, 2))
    assert (shard_of(on_0, 2), shard_of(on_1, 2)) == (0, 1)
    return on_0, on_1


async def until(condition: Callable[[], bool], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running_bots(
    make_plain_settings: MakeSettings, *shards: dict[str, Any]
) -> AsyncIterator[list[tuple[DiscordBot, ScriptedAsk]]]:
    """One connected `DiscordBot` per settings override in `shards`, each with its own `ScriptedAsk`."""
    bots = []
    for overrides in shards:
        settings = make_plain_settings(discord_token="shard-test-token", **overrides)
        chat = ScriptedAsk()
        bots.append((DiscordBot(settings, chat, UnusedIndexer()), chat))  # type: ignore[arg-type]
    tasks = [asyncio.create_task(bot.start()) for bot, _ in bots]
    try:
        await until(lambda: all(bot.state == "connected" for bot, _ in bots))
        yield bots
    finally:
        for bot, _ in bots:
            await bot.close()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)


async def ask_in(fake: FakeDiscord, guild_id: int, question: str) -> dict[str, Any]:
    """Mention the bot in `guild_id`'s channel; the message, once its answer is final."""
    message = fake.mention_payload(guild_id, question)
    await fake.dispatch("MESSAGE_CREATE", message)
    # A thread opened from a message takes the message's id; the answer's last edit lands there.
    await fake.wait_for_request("PATCH", f"/channels/{message['id']}/messages/", prefix=True)
    return message


def threads_opened(fake: FakeDiscord, message: dict[str, Any]) -> int:
    path = f"/channels/{message['channel_id']}/messages/{message['id']}/threads"
    return sum(1 for request in fake.requests if request.method == "POST" and request.path == path)


def asked_keys(chat: ScriptedAsk) -> list[str]:
    return [ask.conversation_key for ask in chat.asks]


async def test_each_guild_is_answered_once_by_the_process_holding_its_shard(
    fake: FakeDiscord, make_plain_settings: MakeSettings
) -> None:
    on_0, on_1 = guilds_by_shard(fake)
    holds_0 = {"discord_shard_count": 2, "discord_shard_ids": "0"}
    holds_1 = {"discord_shard_count": 2, "discord_shard_ids": "1"}
    async with running_bots(make_plain_settings, holds_0, holds_1) as [(bot_0, chat_0), (bot_1, chat_1)]:
        assert sorted(identify["shard"] for identify in fake.identifies) == [[0, 2], [1, 2]]
        health_0, health_1 = bot_0.health(), bot_1.health()
        assert health_0.healthy and health_0.state == "connected"
        assert health_0.facts == {"shard_count": 2, "shards": [0], "shards_connected": [0]}
        assert health_1.facts == {"shard_count": 2, "shards": [1], "shards_connected": [1]}
        assert {guild.id for guild in bot_0.client.guilds} == {on_0}
        assert {guild.id for guild in bot_1.client.guilds} == {on_1}

        question_0 = await ask_in(fake, on_0, "how do I install it?")
        question_1 = await ask_in(fake, on_1, "how do I roll back?")
        await asyncio.sleep(0.5)  # room for a second answer, if one were coming

        assert asked_keys(chat_0) == [f"discord:{on_0}:{question_0['id']}"]
        assert asked_keys(chat_1) == [f"discord:{on_1}:{question_1['id']}"]
        assert threads_opened(fake, question_0) == threads_opened(fake, question_1) == 1
        # One sync serves every shard: only the process holding shard 0 registers the commands.
        syncs = [r for r in fake.requests if r.method == "PUT" and r.path.endswith("/commands")]
        assert len(syncs) == 1


async def test_a_shard_held_by_two_processes_answers_twice(
    fake: FakeDiscord, make_plain_settings: MakeSettings
) -> None:
    """Why docs/deployment.md says a shard may be held by one process only: Discord does not stop
    a second connection on the same shard, it sends both every event."""
    _, on_1 = guilds_by_shard(fake)
    holds_1 = {"discord_shard_count": 2, "discord_shard_ids": "1"}
    async with running_bots(make_plain_settings, holds_1, holds_1) as [(_, chat_a), (_, chat_b)]:
        question = await ask_in(fake, on_1, "how do I roll back?")
        await until(lambda: threads_opened(fake, question) == 2)
    assert asked_keys(chat_a) == asked_keys(chat_b) == [f"discord:{on_1}:{question['id']}"]


async def test_without_a_count_the_bot_holds_every_shard_discord_recommends(
    fake: FakeDiscord, make_plain_settings: MakeSettings
) -> None:
    on_0, on_1 = guilds_by_shard(fake)
    fake.recommended_shards = 2
    # discord.py waits 5 s between two IDENTIFYs of one process (Discord's identify rate limit).
    async with running_bots(make_plain_settings, {}) as [(bot, chat)]:
        assert any(r.method == "GET" and r.path == "/gateway/bot" for r in fake.requests)
        assert [identify["shard"] for identify in fake.identifies] == [[0, 2], [1, 2]]
        assert bot.health().facts == {"shard_count": 2, "shards": [0, 1], "shards_connected": [0, 1]}
        question_0 = await ask_in(fake, on_0, "how do I install it?")
        question_1 = await ask_in(fake, on_1, "how do I roll back?")
    assert asked_keys(chat) == [f"discord:{on_0}:{question_0['id']}", f"discord:{on_1}:{question_1['id']}"]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)  # no .env


@pytest.mark.parametrize(
    ("count", "ids", "problem"),
    [
        (None, "0", "DISCORD_SHARD_IDS: Value error, needs DISCORD_SHARD_COUNT"),
        (
            2,
            "0,2",
            "DISCORD_SHARD_IDS: Value error, must be between 0 and DISCORD_SHARD_COUNT - 1 (1); got [2]",
        ),
        (2, "1,1", "DISCORD_SHARD_IDS: Value error, lists a shard twice"),
        (0, "", "DISCORD_SHARD_COUNT: Input should be greater than or equal to 1"),
    ],
)
def test_shard_settings_are_checked(
    clean_env: None, monkeypatch: pytest.MonkeyPatch, count: int | None, ids: str, problem: str
) -> None:
    if count is not None:
        monkeypatch.setenv("DISCORD_SHARD_COUNT", str(count))
    monkeypatch.setenv("DISCORD_SHARD_IDS", ids)
    with pytest.raises(ConfigError, match=re.escape(problem)):
        load_settings()


def test_shard_ids_are_read_as_a_comma_list(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_SHARD_COUNT", "4")
    monkeypatch.setenv("DISCORD_SHARD_IDS", "3, 1")
    settings = load_settings()
    assert (settings.discord_shard_count, settings.discord_shard_ids) == (4, [1, 3])
    monkeypatch.setenv("DISCORD_SHARD_IDS", "")
    monkeypatch.delenv("DISCORD_SHARD_COUNT")
    assert (load_settings().discord_shard_count, load_settings().discord_shard_ids) == (None, [])
