"""Helpers shared by the simcord-driven Discord tests."""

from __future__ import annotations

from typing import Any

import discord


def general_channel(simcord_env: Any) -> tuple[Any, Any, Any]:
    """A guild with a #general channel and a member alice: (guild, channel, alice)."""
    guild = simcord_env.create_guild()
    return guild, guild.create_text_channel("general"), guild.add_member(simcord_env.create_user("alice"))


def bot_messages(channel: Any) -> list[discord.Message]:
    """What the bot said (not Discord's system messages such as "started a thread")."""
    said = (discord.MessageType.default, discord.MessageType.reply)
    return [m for m in channel.history() if m.author.bot and m.type in said]
