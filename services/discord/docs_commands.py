"""`/docs show|use|mode|reset`: see and change, from Discord, which spaces a channel searches and how
the bot answers there (stored in the database, so every replica and shard agrees at once).

`show` is for everyone (so people know what the bot answers from here); changing is for the same
people who may `/reindex` (`SlashCommands.refusal`). A command in a thread applies to its channel,
whose settings the thread follows. Every reply is ephemeral.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import discord
from discord import app_commands

from services.discord.places import place_of
from services.sources.sources_file import Mode
from services.spaces.directory import SpaceError, Spaces
from services.spaces.policy import Place, Policy

__all__ = ["DocsCommands"]

Refusal = Callable[[discord.Interaction, str], str | None]  # (interaction, what they want to do) -> why not
CHANGING = "change this channel's docs settings"


class DocsCommands:
    """The `/docs` group's handlers over `Spaces`."""

    def __init__(self, spaces: Spaces, refusal: Refusal) -> None:
        self.spaces = spaces
        self.refusal = refusal

    def register(self, tree: app_commands.CommandTree[Any]) -> None:
        docs = app_commands.Group(
            name="docs", description="Which docs the bot answers from in this channel", guild_only=True
        )

        @docs.command(name="show", description="Show this channel's spaces, answer mode and limits")
        async def show(interaction: discord.Interaction) -> None:
            await self.show(interaction)

        @docs.command(name="use", description="Answer from these spaces in this channel (admins)")
        @app_commands.describe(spaces="space names from the sources file, separated by spaces or commas")
        async def use(interaction: discord.Interaction, spaces: str) -> None:
            names = spaces.replace(",", " ").split()
            await self.change(interaction, lambda place, by: self.spaces.use(place, names, by=by))

        @docs.command(name="mode", description="When the bot answers in this channel (admins)")
        @app_commands.describe(
            mode="mention: when mentioned; auto: every question; thread-only: only inside threads"
        )
        async def mode(interaction: discord.Interaction, mode: Mode) -> None:
            await self.change(interaction, lambda place, by: self.spaces.set_mode(place, mode, by=by))

        @docs.command(name="reset", description="Forget what was set here; the sources file applies (admins)")
        async def reset(interaction: discord.Interaction) -> None:
            await self.change(interaction, lambda place, by: self.spaces.reset(place))

        tree.add_command(docs)

    async def show(self, interaction: discord.Interaction) -> None:
        policy = await self.spaces.policy(_place(interaction))
        names = ", ".join(await self.spaces.names())
        text = f"{_describe(policy)}\nSpaces you can `/docs use`: {names}"
        await interaction.response.send_message(text, ephemeral=True)

    async def change(
        self, interaction: discord.Interaction, apply: Callable[[Place, str], Awaitable[Policy]]
    ) -> None:
        """Run one change for an admin; anyone else, or a mistake, gets told why (ephemeral)."""
        if (refusal := self.refusal(interaction, CHANGING)) is not None:
            await interaction.response.send_message(f"⛔ {refusal}", ephemeral=True)
            return
        user = interaction.user
        try:
            policy = await apply(_place(interaction), f"{user.name} ({user.id})")
        except SpaceError as exc:
            await interaction.response.send_message(f"⛔ {exc}", ephemeral=True)
            return
        await interaction.response.send_message(f"✅ Saved.\n{_describe(policy)}", ephemeral=True)


def _place(interaction: discord.Interaction) -> Place:
    return place_of(interaction.guild_id, interaction.channel)


def _describe(policy: Policy) -> str:
    channel = f"<#{policy.place.channel}>" if policy.place.channel else "this channel"
    return "\n".join([f"**Docs in {channel}**", *(f"• {line}" for line in policy.describe())])
