"""Discord's app commands: `/ask`, `/reindex` (the shared flow in Discord's words) and `/docs`
(`docs_commands`), synced per guild.

`/ask` follows the channel's space: its sources, who may ask, the rate limit, and ephemeral
answers when the space wants them. `/reindex` is for server managers: Discord hides it from
others (`default_permissions`), and the bot checks again because server admins can override
command permissions; without source names it refreshes the channel's spaces' sources. Every
reindex reply is ephemeral; progress edits the command's status message, and the report is a
followup (or, once the 15-minute interaction token has expired, a mention in the channel).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Literal, assert_never

import discord
from discord import app_commands

from configs.config import Settings
from services.chat.contract import AskService
from services.chat.replies import describe_error
from services.discord.answer import CRASH_MESSAGE, stream_answer
from services.discord.docs_commands import DocsCommands
from services.discord.messages import MessageStream
from services.discord.places import PlaceRules, conversation_key, place_of
from services.indexing.contract import Reindexer
from services.indexing.reindex_flow import (
    AlreadyRunning,
    Help,
    Progress,
    ProgressPacing,
    Refused,
    ReindexFlow,
    ReindexReply,
    ReindexReport,
    RunUpdate,
    Started,
    Status,
    UnknownMode,
    UnknownSource,
)

log = logging.getLogger(__name__)

ReindexChoice = Literal["incremental", "full", "status"]  # Discord offers these as the option's choices
PROGRESS_INTERVAL = 3.0  # seconds between edits of the status message
REPORT_ICONS = {"ok": "✅", "warning": "⚠️", "failed": "❌"}


class SlashCommands:
    """The command tree's handlers: platform interactions in, the chat service and the reindex flow out."""

    def __init__(
        self,
        settings: Settings,
        chat: AskService,
        reindexer: Reindexer,
        rules: PlaceRules,
        *,
        edit_interval: float,
    ) -> None:
        self.settings = settings
        self.chat = chat
        self.rules = rules
        self.edit_interval = edit_interval
        # The whole command, status included, is for managers: Discord hides it from everyone else.
        self.reindex_flow = ReindexFlow(reindexer, ProgressPacing(PROGRESS_INTERVAL), public_status=False)

    def register(self, tree: app_commands.CommandTree[Any]) -> None:
        @tree.command(name="ask", description="Ask a question about the docs")
        @app_commands.describe(question="Your question")
        async def ask(interaction: discord.Interaction, question: str) -> None:
            await self.ask(interaction, question)

        @tree.command(name="reindex", description="Re-index the docs (server managers only)")
        @app_commands.describe(
            mode="incremental (changed files, default), full (rebuild) or status",
            sources="only these sources (names from the sources file, separated by spaces)",
        )
        @app_commands.default_permissions(manage_guild=True)
        @app_commands.guild_only()
        async def reindex(
            interaction: discord.Interaction, mode: ReindexChoice = "incremental", sources: str = ""
        ) -> None:
            await self.reindex(interaction, f"{mode} {sources}")

        if self.rules.spaces is not None:  # changing a channel needs the database the spaces are in
            DocsCommands(self.rules.spaces, self.refusal).register(tree)
        tree.error(self.on_error)

    async def sync(self, tree: app_commands.CommandTree[Any]) -> None:
        """To DISCORD_GUILD_IDS (instant) or globally (can take an hour); a refusal is logged."""
        if not self.settings.discord_guild_ids:
            try:
                synced = await tree.sync()
                log.info("Discord: synced %d global commands", len(synced))
            except discord.HTTPException as exc:
                log.error("Discord: could not sync the slash commands: %s", exc)
            return
        for guild_id in self.settings.discord_guild_ids:
            guild = discord.Object(id=guild_id)
            tree.copy_global_to(guild=guild)
            try:
                synced = await tree.sync(guild=guild)
                log.info("Discord: synced %d commands to guild %s", len(synced), guild_id)
            except discord.HTTPException as exc:
                log.error(
                    "Discord: could not sync the slash commands to guild %s (is the bot invited there "
                    "with the applications.commands scope?): %s",
                    guild_id,
                    exc,
                )

    async def ask(self, interaction: discord.Interaction, question: str) -> None:
        """`/ask`: the answer is posted in the channel (only to the asker when the space's answers
        are ephemeral), streamed into the deferred response; a refusal is for the asker alone."""
        policy = await self.rules.policy(place_of(interaction.guild_id, interaction.channel))
        if (refusal := await self.rules.refusal(policy, interaction.user)) is not None:
            await interaction.response.send_message(refusal, ephemeral=True)
            return
        ephemeral = policy.ephemeral
        await interaction.response.defer(thinking=True, ephemeral=ephemeral)
        first = True

        async def send(text: str) -> discord.Message:
            nonlocal first
            if first:
                first = False
                return await interaction.edit_original_response(content=text)
            return await interaction.followup.send(text, wait=True, ephemeral=ephemeral)

        async def edit(sent: discord.Message, text: str) -> object:
            return await sent.edit(content=text)

        channel_id = interaction.channel_id or interaction.user.id
        key = conversation_key(interaction.guild_id, channel_id)
        stream: MessageStream[discord.Message] = MessageStream(send, edit, interval=self.edit_interval)
        await stream_answer(
            self.chat,
            key,
            question,
            str(interaction.user.id),
            stream,
            policy=policy,
        )

    async def reindex(self, interaction: discord.Interaction, command: str) -> None:
        """`/reindex` ("full handbook"): the shared flow, with this interaction as its output;
        without names it refreshes the sources of this channel's spaces."""

        async def check_admin() -> str | None:
            return self.refusal(interaction)

        policy = await self.rules.policy(place_of(interaction.guild_id, interaction.channel))
        output = _InteractionOutput(interaction)
        await self.reindex_flow.handle(command, check_admin=check_admin, output=output, scope=policy.sources)

    def refusal(self, interaction: discord.Interaction, doing: str = "reindex the docs") -> str | None:
        """None when the user may do admin things, here `doing` (an admin role, if set, else
        Manage Server), else why not."""
        user = interaction.user
        admin_roles = set(self.settings.discord_admin_role_ids)
        who = "members with an admin role" if admin_roles else "server managers"
        refusal = f"Only {who} can {doing}."
        if interaction.guild is None or not isinstance(user, discord.Member):
            return refusal
        if admin_roles:
            return None if any(role.id in admin_roles for role in user.roles) else refusal
        return None if user.guild_permissions.manage_guild else refusal

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        """Any command failure ends in a message to the user who ran it."""
        cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        log.error("Discord: /%s failed", getattr(interaction.command, "name", "?"), exc_info=cause)
        text = CRASH_MESSAGE.format(error=describe_error(cause))
        with contextlib.suppress(discord.HTTPException):
            if interaction.response.is_done():
                await interaction.followup.send(text, ephemeral=True)
            else:
                await interaction.response.send_message(text, ephemeral=True)


def reply_text(message: ReindexReply) -> str:
    """The flow's reply to `/reindex` in Discord's words."""
    match message:
        case Refused(reason=reason):
            return f"⛔ {reason}"
        case Status(progress=progress, sources=sources):
            text = f"⏳ Indexing: {progress.describe()}" if progress else "No indexing is running."
            return text + "".join(f"\n• {line}" for line in sources)
        case UnknownSource(names=names, known=known):
            return f"No source is called {', '.join(names)}. Sources: {', '.join(known) or 'none'}."
        case AlreadyRunning(progress=progress):
            return f"⏳ Indexing is already running: {progress.describe()}"
        case Started(full=full, sources=sources):
            which = f" of {', '.join(sources)}" if sources else ""
            return f"⏳ Starting the reindex{which} ({'full' if full else 'incremental'})…"
        case Help() | UnknownMode():  # the command's choices exclude both; said for completeness
            return "Use `/reindex` with mode incremental, full or status."
        case _:
            assert_never(message)


def update_text(message: RunUpdate) -> str:
    """A progress edit or the final report in Discord's words."""
    if isinstance(message, Progress):
        return f"⏳ Indexing: {message.progress.describe()}"
    icon = REPORT_ICONS[message.level]
    if message.level != "failed":
        return f"{icon} Reindex finished. {message.summary}"
    return f"{icon} {message.error}" + (f"\n{message.summary}" if message.summary else "")


class _InteractionOutput:
    """One `/reindex` interaction: a refusal as its response, anything else as an ephemeral followup
    that progress then edits; the report as a further followup."""

    def __init__(self, interaction: discord.Interaction) -> None:
        self.interaction = interaction
        self.status: discord.WebhookMessage | None = None

    async def reply(self, message: ReindexReply) -> None:
        text = reply_text(message)
        if isinstance(message, Refused):
            await self.interaction.response.send_message(text, ephemeral=True)
            return
        await self.interaction.response.defer(ephemeral=True, thinking=True)
        self.status = await self.interaction.followup.send(text, ephemeral=True, wait=True)

    async def update(self, message: RunUpdate) -> None:
        if isinstance(message, Progress):
            if self.status is not None:
                with contextlib.suppress(discord.HTTPException):  # progress is cosmetic: the report matters
                    await self.status.edit(content=update_text(message))
            return
        await self._report(message)

    async def _report(self, report: ReindexReport) -> None:
        text = update_text(report)
        try:
            await self.interaction.followup.send(text, ephemeral=True)
        except discord.HTTPException:
            # The interaction token lasts 15 minutes; a longer run reports in the channel instead.
            channel = self.interaction.channel
            if isinstance(channel, discord.abc.Messageable):
                with contextlib.suppress(discord.HTTPException):
                    await channel.send(f"{self.interaction.user.mention} {text}")
