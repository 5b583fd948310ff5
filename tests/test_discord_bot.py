"""The Discord adapter's behaviour, driven through simcord (offline Discord, real discord.py parsers).

The conversation engine is `ScriptedAsk`, a scripted implementation of our own `AskService`
contract; `test_discord_e2e.py` runs the real `ChatService`.
"""

from __future__ import annotations

import discord
import pytest
from scripted_ask import ScriptedAsk, answer_with_sources
from simcord_support import bot_messages, general_channel

from services.chat.contract import Answer, AskEvent, AskFailed, TextDelta
from services.discord.bot import DiscordBot
from services.discord.messages import DISCORD_LIMIT


class UnusedIndexer:
    """Message tests never reindex; any use fails loudly."""

    running = False
    progress = None

    def start_background(self, **_: object) -> None:
        raise AssertionError("the message tests must not start an index run")


@pytest.fixture
def chat() -> ScriptedAsk:
    return ScriptedAsk()


@pytest.fixture
def simcord_bot(make_plain_settings, chat: ScriptedAsk) -> discord.Client:
    settings = make_plain_settings(discord_token="simcord-token", discord_shard_count=1)
    return DiscordBot(settings, chat, UnusedIndexer()).client  # type: ignore[arg-type]


async def test_mention_opens_a_thread_with_the_answer_and_sources(simcord_env, chat: ScriptedAsk) -> None:
    guild, channel, alice = general_channel(simcord_env)

    question = await alice.send(channel, f"{simcord_env.bot.user.mention} how do I install it?")

    [thread] = channel.threads
    assert thread.id == question.id  # opened from the question itself
    assert thread.name == "how do I install it?"
    [answer] = bot_messages(thread)
    assert answer.content.startswith("Answer to: how do I install it? [1][2]")
    assert "**Sources**" in answer.content
    assert "\\[1\\] [Install guide](<https://docs.example.com/install>)" in answer.content
    assert "\\[2\\] Configuration · Settings › Tokens (`docs/config.md`)" in answer.content
    assert [(a.conversation_key, a.text, a.user_id) for a in chat.asks] == [
        (f"discord:{guild.id}:{thread.id}", "how do I install it?", str(alice.id))
    ]
    assert bot_messages(channel) == []  # nothing posted in the channel itself
    typing = [r for r in simcord_env.http_requests if r.method == "POST" and r.path.endswith("/typing")]
    assert typing and typing[0].path == f"/channels/{thread.id}/typing"


async def test_a_mention_without_a_question_gets_a_hint(simcord_env, chat: ScriptedAsk) -> None:
    _, channel, alice = general_channel(simcord_env)

    await alice.send(channel, simcord_env.bot.user.mention)

    assert chat.asks == []
    assert bot_messages(channel)[0].content.startswith("Ask me a question about the docs")


async def test_follow_up_in_the_thread_needs_no_mention(simcord_env, chat: ScriptedAsk) -> None:
    guild, channel, alice = general_channel(simcord_env)
    await alice.send(channel, f"{simcord_env.bot.user.mention} how do I install it?")
    [thread] = channel.threads

    await alice.send(thread, "and on Windows?")

    assert [a.text for a in chat.asks] == ["how do I install it?", "and on Windows?"]
    assert {a.conversation_key for a in chat.asks} == {f"discord:{guild.id}:{thread.id}"}
    assert bot_messages(thread)[-1].content.startswith("Answer to: and on Windows?")


async def test_ignores_unaddressed_messages_itself_and_other_bots(simcord_env, chat: ScriptedAsk) -> None:
    guild, channel, alice = general_channel(simcord_env)
    robot = guild.add_member(simcord_env.create_user("robot", bot=True))

    await alice.send(channel, "just chatting, no mention")
    await robot.send(channel, f"{simcord_env.bot.user.mention} answer me, fellow bot")
    human_thread = channel.threads
    assert human_thread == []

    assert chat.asks == []
    assert bot_messages(channel) == [m for m in channel.history() if m.author.id == robot.id]


async def test_dm_is_its_own_conversation(simcord_env, chat: ScriptedAsk) -> None:
    guild = simcord_env.create_guild()
    alice = guild.add_member(simcord_env.create_user("alice"))

    await alice.send_dm("what is the backup policy?")

    dm = alice.user.dm_channel
    [answer] = bot_messages(dm)
    assert answer.content.startswith("Answer to: what is the backup policy?")
    assert "[Install guide](<https://docs.example.com/install>)" in answer.content
    assert chat.asks[0].conversation_key == f"discord:dm:{dm.id}"


async def test_without_thread_permission_it_replies_and_answers_replies_to_itself(
    simcord_env, chat: ScriptedAsk
) -> None:
    guild = simcord_env.create_guild()
    no_threads = discord.PermissionOverwrite(create_public_threads=False)
    channel = guild.create_text_channel("announcements", overwrites={simcord_env.bot.user: no_threads})
    alice = guild.add_member(simcord_env.create_user("alice"))

    question = await alice.send(channel, f"{simcord_env.bot.user.mention} where are the logs?")

    assert channel.threads == []
    [answer] = bot_messages(channel)
    assert answer.reference is not None and answer.reference.message_id == question.id
    assert answer.content.startswith("Answer to: where are the logs?")

    await alice.send(channel, "and how long are they kept?", reply_to=answer)  # no mention

    assert [a.text for a in chat.asks] == ["where are the logs?", "and how long are they kept?"]
    assert {a.conversation_key for a in chat.asks} == {f"discord:{guild.id}:{channel.id}"}
    assert bot_messages(channel)[-1].content.startswith("Answer to: and how long are they kept?")


def long_answer(conversation_key: str, text: str) -> list[AskEvent]:
    prose = " ".join(f"word{i}" for i in range(450))  # ~3,700 characters
    code = "\n".join(f"print('line {i}')" for i in range(120))  # ~2,000 characters
    reply = f"{prose}\n\n```python\n{code}\n```\n\nSee [the guide](https://docs.example.com/a-long-link) [1]."
    deltas = [TextDelta(reply[i : i + 500]) for i in range(0, len(reply), 500)]
    return [*deltas, Answer(reply, answer_with_sources("", "")[-1].sources)]  # type: ignore[union-attr]


async def test_long_answer_is_split_without_breaking_code_blocks(simcord_env, chat: ScriptedAsk) -> None:
    chat.script = long_answer
    _, channel, alice = general_channel(simcord_env)

    await alice.send(channel, f"{simcord_env.bot.user.mention} show me everything")

    [thread] = channel.threads
    parts = [message.content for message in bot_messages(thread)]
    assert len(parts) >= 3
    assert all(0 < len(part) <= DISCORD_LIMIT for part in parts)
    assert all(part.count("```") % 2 == 0 for part in parts)  # every chunk renders its own code block
    joined = "\n".join(parts)
    for i in range(120):
        assert f"print('line {i}')" in joined
    assert "[the guide](https://docs.example.com/a-long-link)" in joined
    assert "**Sources**" in parts[-1]


def three_parts(conversation_key: str, text: str) -> list[AskEvent]:
    return [TextDelta("One. "), TextDelta("Two. "), TextDelta("Three."), Answer("One. Two. Three.")]


async def test_streams_by_editing_its_message_at_most_once_a_second(simcord_env, chat: ScriptedAsk) -> None:
    chat.script, chat.delay = three_parts, 10.0  # a slow model: 10 s (virtual time) between events
    _, channel, alice = general_channel(simcord_env)

    await alice.send(channel, f"{simcord_env.bot.user.mention} count to three")
    [thread] = channel.threads
    shown = []
    for _ in range(4):
        await simcord_env.advance_time(10)
        shown.append(bot_messages(thread)[0].content.strip() if bot_messages(thread) else "")

    assert shown == ["One.", "One. Two.", "One. Two. Three.", "One. Two. Three."]
    assert len(bot_messages(thread)) == 1  # one message, edited as the answer grew
    edits = [r for r in simcord_env.http_requests if r.method == "PATCH" and r.path.startswith("/channels/")]
    assert len(edits) == 2  # "Two" and "Three" arrived 10 s apart; the final text was already shown


def failing(conversation_key: str, text: str) -> list[AskEvent]:
    return [TextDelta("Partial"), AskFailed("The document store is unavailable.")]


async def test_a_failed_ask_ends_in_an_error_message(simcord_env, chat: ScriptedAsk) -> None:
    chat.script = failing
    _, channel, alice = general_channel(simcord_env)

    await alice.send(channel, f"{simcord_env.bot.user.mention} hello?")

    [thread] = channel.threads
    assert bot_messages(thread)[-1].content == "Partial\n\n⚠️ The document store is unavailable."


def crashing(conversation_key: str, text: str) -> list[AskEvent]:
    raise RuntimeError("engine exploded")


async def test_an_engine_crash_ends_in_an_error_message(simcord_env, chat: ScriptedAsk) -> None:
    chat.script = crashing
    _, channel, alice = general_channel(simcord_env)

    await alice.send(channel, f"{simcord_env.bot.user.mention} hello?")

    [thread] = channel.threads
    assert "engine exploded" in bot_messages(thread)[-1].content
    assert bot_messages(thread)[-1].content.startswith("⚠️ Sorry, the answer failed")


async def test_discord_http_errors_do_not_crash_the_bot(simcord_env, chat: ScriptedAsk) -> None:
    _, channel, alice = general_channel(simcord_env)
    simcord_env.inject_error("POST", "/channels/*/messages/*/threads", status=500)

    await alice.send(channel, f"{simcord_env.bot.user.mention} still there?")

    # The thread could not be opened: the bot falls back to a reply in the channel.
    [answer] = bot_messages(channel)
    assert answer.content.startswith("Answer to: still there?")


async def test_slash_ask_answers_in_the_channel(simcord_env, chat: ScriptedAsk) -> None:
    guild, channel, alice = general_channel(simcord_env)

    result = await alice.slash(channel, "ask", question="how do I configure tokens?")

    [callback] = [r for r in simcord_env.http_requests if r.path.endswith("/callback")]
    assert callback.json["type"] == 5  # deferred ("thinking…") first: an answer takes longer than 3 s
    assert result.acknowledged and not result.ephemeral
    assert result.response is not None
    assert result.response.content.startswith("Answer to: how do I configure tokens? [1][2]")
    assert "[Install guide](<https://docs.example.com/install>)" in result.response.content
    assert chat.asks[0].conversation_key == f"discord:{guild.id}:{channel.id}"


async def test_commands_sync_to_the_configured_guilds_at_start_up(
    simcord_env, make_plain_settings, chat: ScriptedAsk
) -> None:
    guild = simcord_env.create_guild(id=1300000000000000001)
    channel = guild.create_text_channel("general")
    alice = guild.add_member(simcord_env.create_user("alice"))
    not_joined = 1300000000000000002  # the bot is not in this one: its sync fails, the rest works
    settings = make_plain_settings(
        discord_token="simcord-token", discord_shard_count=1, discord_guild_ids=[not_joined, guild.id]
    )
    await simcord_env.restart_bot(DiscordBot(settings, chat, UnusedIndexer()).client)  # type: ignore[arg-type]

    syncs = [r.path for r in simcord_env.http_requests if r.method == "PUT" and r.path.endswith("/commands")]
    app_id = simcord_env.bot.application_id
    assert syncs[-1] == f"/applications/{app_id}/guilds/{guild.id}/commands"
    assert f"/applications/{app_id}/guilds/{not_joined}/commands" in syncs
    assert {"ask", "reindex"} <= {c.name for c in await simcord_env.bot.tree.fetch_commands(guild=guild)}
    result = await alice.slash(channel, "ask", question="is the guild command live?")
    assert result.response is not None
    assert result.response.content.startswith("Answer to: is the guild command live?")


FEEDBACK_UP = "docsbot:feedback:up:a-1"
FEEDBACK_DOWN = "docsbot:feedback:down:a-1"


def button_ids(message: discord.Message) -> list[str | None]:
    return [
        child.custom_id
        for row in message.components
        if isinstance(row, discord.ActionRow)
        for child in row.children
        if isinstance(child, discord.Button)
    ]


async def test_the_answer_carries_feedback_buttons_and_a_click_is_stored(
    simcord_env, chat: ScriptedAsk
) -> None:
    guild, channel, alice = general_channel(simcord_env)
    bob = guild.add_member(simcord_env.create_user("bob"))
    await alice.send(channel, f"{simcord_env.bot.user.mention} how do I install it?")
    [thread] = channel.threads
    [answer] = bot_messages(thread)
    assert button_ids(answer) == [FEEDBACK_UP, FEEDBACK_DOWN]
    labels = [child.label for row in answer.components for child in row.children]  # type: ignore[union-attr]
    assert labels == ["Helpful", "Not helpful"]

    up = await alice.click(answer, custom_id=FEEDBACK_UP)
    down = await bob.click(answer, custom_id=FEEDBACK_DOWN)

    assert chat.feedback == [("a-1", True, str(alice.id)), ("a-1", False, str(bob.id))]
    assert up.acknowledged and up.ephemeral
    assert up.response is not None and up.response.content == "Thanks for the feedback!"
    assert down.ephemeral and down.response is not None
    assert down.response.content == "Thanks, noted: that answer was not helpful."
    assert [m.content for m in bot_messages(thread)] == [answer.content]  # nothing posted for everyone


async def test_a_failing_feedback_store_is_reported_to_the_clicker(simcord_env, chat: ScriptedAsk) -> None:
    _, channel, alice = general_channel(simcord_env)
    await alice.send(channel, f"{simcord_env.bot.user.mention} how do I install it?")
    [thread] = channel.threads
    chat.feedback_error = RuntimeError("database is locked")

    result = await alice.click(bot_messages(thread)[-1], custom_id=FEEDBACK_UP)

    assert chat.feedback == []
    assert result.acknowledged and result.ephemeral
    assert result.response is not None
    assert result.response.content.startswith("Sorry, I could not store your feedback")
    assert "RuntimeError: database is locked" in result.response.content


async def test_feedback_buttons_still_work_after_a_restart(
    simcord_env, make_plain_settings, chat: ScriptedAsk
) -> None:
    _, channel, alice = general_channel(simcord_env)
    await alice.send(channel, f"{simcord_env.bot.user.mention} how do I install it?")
    [thread] = channel.threads
    after_restart = ScriptedAsk()
    settings = make_plain_settings(discord_token="simcord-token", discord_shard_count=1)
    await simcord_env.restart_bot(DiscordBot(settings, after_restart, UnusedIndexer()).client)  # type: ignore[arg-type]

    result = await alice.click(bot_messages(thread)[-1], custom_id=FEEDBACK_UP)

    assert after_restart.feedback == [("a-1", True, str(alice.id))]
    assert chat.feedback == []
    assert result.response is not None and result.response.content == "Thanks for the feedback!"


def long_answer_with_id(conversation_key: str, text: str) -> list[AskEvent]:
    *deltas, answer = long_answer(conversation_key, text)
    return [*deltas, Answer(answer.text, answer.sources, "a-long")]  # type: ignore[union-attr]


async def test_only_the_last_part_of_a_split_answer_has_buttons(simcord_env, chat: ScriptedAsk) -> None:
    chat.script = long_answer_with_id
    _, channel, alice = general_channel(simcord_env)

    await alice.send(channel, f"{simcord_env.bot.user.mention} show me everything")

    [thread] = channel.threads
    *first, last = bot_messages(thread)
    assert first and all(button_ids(message) == [] for message in first)
    assert button_ids(last) == ["docsbot:feedback:up:a-long", "docsbot:feedback:down:a-long"]
    assert "**Sources**" in last.content


async def test_an_answer_without_an_id_gets_no_buttons(simcord_env, chat: ScriptedAsk) -> None:
    chat.script = three_parts  # its Answer has no answer_id
    _, channel, alice = general_channel(simcord_env)

    await alice.send(channel, f"{simcord_env.bot.user.mention} count to three")

    [thread] = channel.threads
    [answer] = bot_messages(thread)
    assert answer.content == "One. Two. Three."
    assert answer.components == []


async def test_slash_ask_answer_has_feedback_buttons(simcord_env, chat: ScriptedAsk) -> None:
    _, channel, alice = general_channel(simcord_env)

    result = await alice.slash(channel, "ask", question="how do I configure tokens?")

    assert result.response is not None
    answer = result.response.message
    assert button_ids(answer) == [FEEDBACK_UP, FEEDBACK_DOWN]
    clicked = await alice.click(answer, custom_id=FEEDBACK_DOWN)
    assert chat.feedback == [("a-1", False, str(alice.id))]
    assert clicked.ephemeral
