"""Transport smoke test: the unmodified bot against a local Discord over real HTTP and websockets.

Only `Route.BASE` and `DiscordWebSocket.DEFAULT_GATEWAY` are pointed at `tests/fake_discord.py`;
everything else (login, IDENTIFY, READY, GUILD_CREATE parsing, REST) is discord.py's real code.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import discord.http
import pytest
import yarl
from discord.gateway import DiscordWebSocket
from fake_discord import FakeDiscord
from scripted_ask import ScriptedAsk

from configs.config import Settings
from data.vector_store import WeaviateVectorStore
from services.discord.bot import DiscordBot
from services.indexer import Indexer

MESSAGE_CONTENT_INTENT = 1 << 15
EPHEMERAL = 1 << 6


async def wait_for_components(fake: FakeDiscord, path: str) -> list[dict[str, Any]]:
    """The components of the first PATCH of `path` that sets some (the feedback row)."""
    async with asyncio.timeout(10):
        while True:
            for request in fake.requests:
                if (
                    request.method == "PATCH"
                    and request.path == path
                    and (request.body or {}).get("components")
                ):
                    return list(request.body["components"])
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def connected_bot(
    make_plain_settings: Any, embedder: Any, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[FakeDiscord, ScriptedAsk]]:
    """The unmodified bot logged in to a fresh FakeDiscord, past READY and the command sync."""
    fake = FakeDiscord()
    await fake.start()
    monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
    monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url))
    settings: Settings = make_plain_settings(discord_token="smoke-test-token")
    chat = ScriptedAsk()
    bot = DiscordBot(settings, chat, Indexer(settings, WeaviateVectorStore(settings), embedder))
    running = asyncio.create_task(bot.start())
    try:
        # Start-up: login (GET /users/@me), IDENTIFY with message content, READY, GUILD_CREATE, sync.
        await fake.wait_for_request("PUT", f"/applications/{fake.application_id}/commands", within=15)
        yield fake, chat
        assert fake.unrouted == []
    finally:
        await bot.close()
        await asyncio.wait_for(running, timeout=10)
        await fake.stop()


async def test_mention_over_the_wire_gets_an_answer_in_a_thread(
    make_plain_settings, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with connected_bot(make_plain_settings, embedder, monkeypatch) as (fake, chat):
        assert fake.identify is not None
        assert fake.identify["token"] == "smoke-test-token"
        assert fake.identify["intents"] & MESSAGE_CONTENT_INTENT
        assert fake.gateway_events[:2] == ["READY", "GUILD_CREATE"]

        human = fake.member(fake.human_id, "alice")
        question = fake.message_payload(
            fake.channel_id,
            human.pop("user"),
            f"<@{fake.bot_id}> how do I install it?",
            guild_id=str(fake.guild_id),
            member=human,
            mentions=[fake.user(fake.bot_id, "docsbot", bot=True)],
        )
        sent_at = time.perf_counter()
        await fake.dispatch("MESSAGE_CREATE", question)

        thread_id = question["id"]  # a thread opened from a message takes the message's id
        threads_route = f"/channels/{fake.channel_id}/messages/{thread_id}/threads"
        opened = await fake.wait_for_request("POST", threads_route)
        assert opened.body["name"] == "how do I install it?"
        reply = await fake.wait_for_request("POST", f"/channels/{thread_id}/messages")
        latency_ms = (reply.at - sent_at) * 1000
        print(f"\nMESSAGE_CREATE → first answer text: {latency_ms:.1f} ms")

        assert reply.body["content"] and "Answer to: how do I install it?".startswith(reply.body["content"])
        assert reply.body["allowed_mentions"]["parse"] == []
        final = await fake.wait_for_request("PATCH", f"/channels/{thread_id}/messages/", prefix=True)
        assert final.body["content"].startswith("Answer to: how do I install it? [1][2]")
        assert "[Install guide](<https://docs.example.com/install>)" in final.body["content"]
        assert chat.asks[0].conversation_key == f"discord:{fake.guild_id}:{thread_id}"

        # The answer gets its 👍/👎 row; a click arrives as INTERACTION_CREATE (type 3, component).
        buttons = await wait_for_components(fake, final.path)
        custom_ids = [button["custom_id"] for row in buttons for button in row["components"]]
        assert custom_ids == ["docsbot:feedback:up:a-1", "docsbot:feedback:down:a-1"]
        answer = fake.message_payload(
            thread_id, fake.user(fake.bot_id, "docsbot", bot=True), final.body["content"], components=buttons
        )
        answer["id"] = final.path.rsplit("/", 1)[-1]
        click = fake.component_click_payload(
            answer, "docsbot:feedback:up:a-1", user_id=fake.human_id, name="alice"
        )
        await fake.dispatch("INTERACTION_CREATE", click)
        callback = await fake.wait_for_request(
            "POST", f"/interactions/{click['id']}/{click['token']}/callback"
        )
        assert callback.body["type"] == 4  # a message in reply to the click
        assert callback.body["data"]["content"] == "Thanks for the feedback!"
        assert callback.body["data"]["flags"] & EPHEMERAL
        assert chat.feedback == [("a-1", True, str(fake.human_id))]
        assert latency_ms < 2000


async def test_mentioning_the_bots_role_is_a_mention(
    make_plain_settings, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Discord's autocomplete offers the bot's managed role next to the bot; both must work."""
    async with connected_bot(make_plain_settings, embedder, monkeypatch) as (fake, chat):
        human = fake.member(fake.human_id, "alice")
        author = human.pop("user")
        other_role = fake.message_payload(
            fake.channel_id, author, "<@&42> ping another role", guild_id=str(fake.guild_id), member=human
        )
        other_role["mention_roles"] = ["42"]
        await fake.dispatch("MESSAGE_CREATE", other_role)
        question = fake.message_payload(
            fake.channel_id,
            author,
            f"<@&{fake.bot_role_id}> how do I roll back?",
            guild_id=str(fake.guild_id),
            member=human,
            mention_roles=[str(fake.bot_role_id)],
        )
        await fake.dispatch("MESSAGE_CREATE", question)
        thread_id = question["id"]
        opened = await fake.wait_for_request(
            "POST", f"/channels/{fake.channel_id}/messages/{thread_id}/threads"
        )
        assert opened.body["name"] == "how do I roll back?"
        await fake.wait_for_request("PATCH", f"/channels/{thread_id}/messages/", prefix=True)
        assert [ask.text for ask in chat.asks] == ["how do I roll back?"]  # not the other role's
