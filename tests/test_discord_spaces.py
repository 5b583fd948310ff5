"""Spaces on Discord, through simcord with the real `ChatService` (Weaviate search filtered by source,
local embedder, offline model), `Spaces` on SQLite and a sources file: two channels mapped to two
spaces, who may ask, the rate limit, answer modes, `/docs` and "Ask a human"."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord
import pytest
from simcord_support import bot_messages

from configs.config import Settings
from data.database import Database
from data.vector_store import WeaviateVectorStore
from services.chatkit_service import ChatService, create_chat_service
from services.discord.bot import DiscordBot
from services.indexer import Indexer
from services.rag import Retriever
from services.spaces.directory import Spaces
from services.spaces.policy import Place
from simple_agents.offline_model import NOT_COVERED

pytestmark = pytest.mark.simcord(settle_timeout=60)

DOCUMENTS = {
    "payments": "# Refunds\n\nRefunds above 500 euros need the approval of the payments lead.\n",
    "handbook": "# Holidays\n\nEvery employee has 30 days of paid holiday a year.\n",
}
SOURCES = '[sources.payments-docs]\nlocation = "payments"\n[sources.handbook]\nlocation = "handbook"\n'
SPACES = """
[spaces.payments]
sources = ["payments-docs"]
allowed_roles = ["{team}"]
rate_limit_per_minute = 2
ephemeral = true
[spaces.handbook]
sources = ["handbook"]
experts = ["role:{experts}"]
[places]
"discord:{payments}" = {{ spaces = ["payments"] }}
"discord:{handbook}" = {{ spaces = ["handbook"], mode = "auto" }}
"""
REFUNDS = "Who approves refunds above 500 euros?"
HOLIDAYS = "How many days of paid holiday do we get?"


@dataclass
class World:
    settings: Settings
    database: Database
    chat: ChatService
    indexer: Indexer
    bot: DiscordBot


@pytest.fixture
async def world(make_settings, embedder, tmp_path: Path) -> AsyncIterator[World]:
    """Both sources indexed; the sources file names only the sources until `server` maps the
    channels (their ids exist once simcord made them), which `Spaces` reads on the next message."""
    for folder, text in DOCUMENTS.items():
        (tmp_path / folder).mkdir()
        (tmp_path / folder / f"{folder}.md").write_text(text)
    (tmp_path / "sources.toml").write_text(SOURCES)
    settings = make_settings(
        sources_file=tmp_path / "sources.toml",
        data_dir=tmp_path / "data",
        discord_token="simcord-token",
        discord_shard_count=1,
    )
    store = WeaviateVectorStore(settings)
    await store.connect()
    database = Database(settings.database_dsn)
    await database.create()
    try:
        indexer = Indexer(settings, store, embedder)
        assert (await indexer.index()).added == 2
        chat = await create_chat_service(settings, Retriever(settings, store, embedder), database)
        bot = DiscordBot(settings, chat, indexer, Spaces(settings, database.spaces))
        yield World(settings, database, chat, indexer, bot)
    finally:
        await store.close()
        await database.dispose()


@pytest.fixture
def simcord_bot(world: World) -> discord.Client:
    return world.bot.client


@dataclass
class Server:
    guild: Any
    payments: Any  # #payments: the payments space, mention mode, payments team only, 2 a minute, ephemeral
    handbook: Any  # #handbook: the handbook space, auto mode, experts role
    alice: Any  # payments team
    bob: Any  # no roles
    expert: Any  # the experts role
    admin: Any  # Manage Server
    experts_role: Any


def server(env: Any, world: World) -> Server:
    guild = env.create_guild()
    payments, handbook = guild.create_text_channel("payments"), guild.create_text_channel("handbook")
    team, experts = guild.create_role("Payments team"), guild.create_role("Docs experts")
    managers = guild.create_role("Managers", permissions=discord.Permissions(manage_guild=True))
    mapping = SPACES.format(team=team.id, experts=experts.id, payments=payments.id, handbook=handbook.id)
    assert world.settings.sources_file is not None
    world.settings.sources_file.write_text(SOURCES + mapping)
    member = guild.add_member
    return Server(
        guild,
        payments,
        handbook,
        alice=member(env.create_user("alice"), roles=[team]),
        bob=member(env.create_user("bob")),
        expert=member(env.create_user("erin"), roles=[experts]),
        admin=member(env.create_user("admin"), roles=[managers, team]),
        experts_role=experts,
    )


def button_labels(message: discord.Message) -> list[str | None]:
    return [
        child.label
        for row in message.components
        if isinstance(row, discord.ActionRow)
        for child in row.children
        if isinstance(child, discord.Button)
    ]


def human_button(message: discord.Message) -> str:
    [custom_id] = [
        child.custom_id
        for row in message.components
        if isinstance(row, discord.ActionRow)
        for child in row.children
        if isinstance(child, discord.Button) and child.label == "Ask a human"
    ]
    assert custom_id is not None
    return custom_id


async def test_each_channel_answers_from_its_space_and_auto_mode_takes_questions(
    simcord_env, world: World
) -> None:
    s = server(simcord_env, world)
    me = simcord_env.bot.user.mention

    await s.alice.send(s.payments, f"{me} {REFUNDS}")
    await s.alice.send(s.handbook, REFUNDS)  # auto mode: no mention needed
    await s.alice.send(s.handbook, HOLIDAYS)
    await s.alice.send(s.handbook, "lunch was great today")  # not a question: ignored
    await s.alice.send(s.payments, HOLIDAYS)  # mention mode: not for the bot

    [refunds] = s.payments.threads
    [answer] = bot_messages(refunds)
    assert "payments lead" in answer.content and "payments.md" in answer.content
    assert "Ask a human" not in button_labels(answer)
    not_covered, holidays = s.handbook.threads
    [other_space] = bot_messages(not_covered)
    assert NOT_COVERED in other_space.content and "payments lead" not in other_space.content
    assert button_labels(other_space)[-1] == "Ask a human"  # the handbook space has experts
    [holiday_answer] = bot_messages(holidays)
    assert "30 days" in holiday_answer.content and "handbook.md" in holiday_answer.content
    assert bot_messages(s.payments) == [] and bot_messages(s.handbook) == []


async def test_outsiders_are_refused_and_the_rate_limit_is_told(simcord_env, world: World) -> None:
    s = server(simcord_env, world)
    me = simcord_env.bot.user.mention

    await s.bob.send(s.payments, f"{me} {REFUNDS}")
    [refusal] = bot_messages(s.payments)
    assert refusal.content.startswith(f"{s.bob.mention} Sorry, questions here (space payments)")
    assert [user.id for user in refusal.mentions] == [s.bob.id]  # pinged: a reply they will see
    assert s.payments.threads == []

    for _ in range(3):  # the space allows 2 questions a minute
        await s.alice.send(s.payments, f"{me} {REFUNDS}")
    answered = [bot_messages(thread) for thread in s.payments.threads]
    assert len(answered) == 2 and all("payments lead" in m[0].content for m in answered)
    limited = bot_messages(s.payments)[-1]
    assert "You have asked 2 questions in the last minute" in limited.content

    result = await s.bob.slash(s.payments, "ask", question=REFUNDS)  # /ask: refused to bob alone
    assert result.ephemeral and result.response is not None
    assert result.response.content.startswith("Sorry, questions here (space payments)")


async def test_docs_commands_change_the_mapping_for_every_replica(
    simcord_env, world: World, embedder
) -> None:
    s = server(simcord_env, world)
    me = simcord_env.bot.user.mention

    shown = await s.bob.slash(s.payments, "docs show")
    assert shown.ephemeral and shown.response is not None
    assert "• Spaces: payments (sources file, places.discord:" in shown.response.content
    assert "Spaces you can `/docs use`: payments, handbook, default" in shown.response.content
    refused = await s.bob.slash(s.payments, "docs use", spaces="handbook")
    assert refused.response is not None
    assert refused.response.content == "⛔ Only server managers can change this channel's docs settings."
    unknown = await s.admin.slash(s.payments, "docs use", spaces="nowhere")
    assert unknown.response is not None and "No space called nowhere" in unknown.response.content

    used = await s.admin.slash(s.payments, "docs use", spaces="handbook")
    assert used.ephemeral and used.response is not None
    assert "• Spaces: handbook (set in the chat by admin" in used.response.content

    # Another replica: its own `Spaces` and bot on the same database.
    replica_spaces = Spaces(world.settings, world.database.spaces)
    replica = DiscordBot(world.settings, world.chat, world.indexer, replica_spaces)
    await simcord_env.restart_bot(replica.client)
    policy = await replica_spaces.policy(Place("discord", str(s.guild.id), str(s.payments.id)))
    assert policy.spaces == ("handbook",) and policy.sources == ("handbook",)
    await s.bob.send(s.payments, f"{me} {HOLIDAYS}")  # bob may ask: the handbook space is open
    [thread] = s.payments.threads
    assert "30 days" in bot_messages(thread)[0].content

    await s.admin.slash(s.payments, "docs mode", mode="auto")
    await s.bob.send(s.payments, HOLIDAYS)
    assert len(s.payments.threads) == 2  # answered without a mention

    await s.admin.slash(s.payments, "docs mode", mode="thread-only")
    await s.bob.send(s.payments, f"{me} {HOLIDAYS}")
    assert bot_messages(s.payments)[-1].content.startswith("In this channel I answer inside threads")
    simcord_env.backend.create_thread(s.payments.id, "holidays", s.bob.id)  # bob opens a thread
    [own] = [thread for thread in s.payments.threads if thread.name == "holidays"]
    await s.bob.send(own, HOLIDAYS)  # no mention yet: not for the bot
    await s.bob.send(own, f"{me} {HOLIDAYS}")
    await s.bob.send(own, "and are they paid?")  # a follow-up in a thread the bot answered
    assert len(bot_messages(own)) == 2 and "30 days" in bot_messages(own)[0].content
    reset = await s.admin.slash(s.payments, "docs reset")
    assert reset.response is not None
    assert "• Spaces: payments (sources file" in reset.response.content
    assert "• Answer mode: mention (default)" in reset.response.content


async def test_ask_a_human_mentions_the_experts_and_stores_their_reply(simcord_env, world: World) -> None:
    s = server(simcord_env, world)
    await s.alice.send(s.handbook, REFUNDS)  # not covered in the handbook space
    [thread] = s.handbook.threads
    [answer] = bot_messages(thread)

    clicked = await s.alice.click(answer, custom_id=human_button(answer))

    assert clicked.ephemeral and clicked.response is not None
    assert clicked.response.content.startswith("Done: the experts were mentioned")
    call = bot_messages(thread)[-1]
    assert call.content.startswith(f"🙋 <@&{s.experts_role.id}>: {s.alice.mention} would like a person")
    assert REFUNDS in call.content
    assert call.raw_role_mentions == [s.experts_role.id]  # the role is pinged, nobody else
    again = await s.alice.click(answer, custom_id=human_button(answer))
    assert again.response is not None and again.response.content.startswith("A person has already been asked")

    await s.expert.send(thread, "The payments lead approves them; see the payments space.")

    assert bot_messages(thread)[-1].content == "Thanks! Saved as a suggested answer for the docs."
    [pair] = await world.database.spaces.human_answers()
    assert (pair.space, pair.question, pair.expert) == ("handbook", REFUNDS, str(s.expert.id))
    assert pair.reply == "The payments lead approves them; see the payments space."
    assert NOT_COVERED in pair.bot_answer
    await s.expert.send(thread, HOLIDAYS)  # nothing open now: an ordinary follow-up
    assert "30 days" in bot_messages(thread)[-1].content


async def test_a_thumbs_down_offers_a_human_too(simcord_env, world: World) -> None:
    s = server(simcord_env, world)
    await s.alice.send(s.handbook, HOLIDAYS)
    [thread] = s.handbook.threads
    [answer] = bot_messages(thread)
    assert "Ask a human" not in button_labels(answer)  # covered: only the votes
    [down] = [
        child.custom_id
        for row in answer.components
        if isinstance(row, discord.ActionRow)
        for child in row.children
        if isinstance(child, discord.Button) and child.label == "Not helpful"
    ]

    voted = await s.bob.click(answer, custom_id=down)

    assert voted.ephemeral and voted.response is not None
    assert voted.response.content.endswith("If a person should answer this, ask one:")
    offered = voted.response.message
    await s.bob.click(offered, custom_id=human_button(offered))
    call = bot_messages(thread)[-1]
    assert call.content.startswith(f"🙋 <@&{s.experts_role.id}>: {s.bob.mention}")
    assert HOLIDAYS in call.content
    [pair] = await world.database.spaces.human_answers()
    assert pair.question == HOLIDAYS and "30 days" in pair.bot_answer and pair.reply is None


async def test_slash_commands_follow_the_channels_space(simcord_env, world: World) -> None:
    s = server(simcord_env, world)

    asked = await s.alice.slash(s.payments, "ask", question=REFUNDS)
    reindex = await s.admin.slash(s.handbook, "reindex")  # no names: the sources of the channel's space

    assert asked.ephemeral and asked.response is not None  # the payments space answers privately
    assert asked.response.ephemeral and "payments lead" in asked.response.content
    webhooks = [r for r in simcord_env.http_requests if r.path.startswith("/webhooks/")]
    started = [(r.json or {}).get("content") for r in webhooks]
    assert "⏳ Starting the reindex of handbook (incremental)…" in started
    report = reindex.followups[-1].content
    assert report.startswith("✅ Reindex finished.") and "1 documents seen" in report, report
