"""Whether a Discord message is for the bot, and how to answer it, under the place's answer mode.

`mention` (the default): mentions (answered in a new thread), replies to the bot, DMs and
messages in threads the bot opened. `auto`: also every top-level channel message that looks like
a question, answered in a new thread. `thread-only`: nothing at the top level (a mention there
gets a hint to ask in a thread); in threads, mentions and follow-ups in threads the bot answered.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from enum import Enum

import discord

from services.discord.places import conversation_key
from services.spaces.policy import Policy
from services.spaces.questions import looks_like_question

__all__ = ["Reply", "explicitly_addressed", "mentions", "replies_to", "reply_for", "without_mentions_of"]


class Reply(Enum):
    """What the bot does with a message meant for it."""

    IN_PLACE = "in place"  # in the DM, the thread, or as a reply where it was asked
    IN_THREAD = "in a new thread"  # a thread from the message (a reply where threads are not allowed)
    THREAD_HINT = "hint"  # thread-only mode at the top level: say to ask in a thread


def _own_role_id(message: discord.Message) -> int | None:
    """The role Discord made for the bot in this guild: autocomplete offers it next to the bot, so
    people pick it when they mean the bot."""
    role = message.guild.self_role if message.guild is not None else None
    return role.id if role is not None else None


def mentions(message: discord.Message, bot_id: int) -> bool:
    """Whether the message mentions the bot, or the bot's own role."""
    if any(user.id == bot_id for user in message.mentions):
        return True
    role_id = _own_role_id(message)
    return role_id is not None and any(role.id == role_id for role in message.role_mentions)


def without_mentions_of(message: discord.Message, bot_id: int) -> str:
    """The message text without mentions of the bot or of its role."""
    text = re.sub(rf"<@!?{bot_id}>", "", message.content)
    if (role_id := _own_role_id(message)) is not None:
        text = text.replace(f"<@&{role_id}>", "")
    return text.strip()


def replies_to(message: discord.Message, user_id: int) -> bool:
    ref = message.reference
    resolved = ref.resolved if ref is not None else None
    return isinstance(resolved, discord.Message) and resolved.author.id == user_id


def explicitly_addressed(message: discord.Message, bot_id: int) -> bool:
    """Meant for the bot whatever the mode: a DM, a mention, a reply to it, a message in its thread.
    When the place's policy cannot be read, only these get an error message."""
    channel = message.channel
    if isinstance(channel, discord.DMChannel):
        return True
    in_own_thread = isinstance(channel, discord.Thread) and channel.owner_id == bot_id
    return in_own_thread or mentions(message, bot_id) or replies_to(message, bot_id)


async def reply_for(
    message: discord.Message,
    bot_id: int,
    policy: Policy,
    answered_in: Callable[[str], Awaitable[bool]],
) -> Reply | None:
    """How to answer `message` under `policy.mode`, or None when it is not for the bot.

    `answered_in(conversation_key)` says whether the bot answered in a conversation before; it is
    asked only for threads in thread-only mode (where people open the threads, not the bot).
    """
    channel = message.channel
    mentioned, replying = mentions(message, bot_id), replies_to(message, bot_id)
    if isinstance(channel, discord.DMChannel):
        return Reply.IN_PLACE
    if isinstance(channel, discord.Thread):
        if mentioned or replying or channel.owner_id == bot_id:
            return Reply.IN_PLACE
        guild_id = message.guild.id if message.guild is not None else None
        if policy.mode == "thread-only" and await answered_in(conversation_key(guild_id, channel.id)):
            return Reply.IN_PLACE
        return None
    if policy.mode == "thread-only":
        return Reply.THREAD_HINT if mentioned or replying else None
    if replying:
        return Reply.IN_PLACE
    if mentioned:
        return Reply.IN_THREAD
    if policy.mode == "auto" and looks_like_question(message.content):
        return Reply.IN_THREAD
    return None
