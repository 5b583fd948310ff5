"""The Discord adapter: Discord events in, `AskService.ask` calls, Discord messages out.

It answers mentions (in a thread it opens, or a reply where threads are not allowed), messages
in threads it opened, replies to its own messages and DMs; and offers `/ask` and `/reindex`.
One thread, channel or DM is one conversation: `discord:{guild_id or 'dm'}:{channel_id}`.
No retrieval or agent logic lives here (see `services.chatkit_service`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands

from configs.config import ConfigError, Settings
from services.chat.contract import Answer, AskFailed, AskService, TextDelta
from services.discord.feedback import FeedbackButton, feedback_view
from services.discord.messages import MessageStream, render_answer, split_message
from services.indexing.contract import IndexAlreadyRunning, IndexProgress, IndexResult

if TYPE_CHECKING:
    from services.indexer import Indexer

log = logging.getLogger(__name__)

TYPING_REFRESH_SECONDS = 8.0  # Discord shows "typing" for ~10 s per request
THREAD_NAME_LIMIT = 100
EMPTY_QUESTION = "Ask me a question about the docs, e.g. `@{name} how do I install it?`"
CRASH_MESSAGE = "⚠️ Something went wrong while answering ({error}). Please try again."
ReindexMode = Literal["incremental", "full", "status"]


def conversation_key(guild_id: int | None, channel_id: int) -> str:
    """The chatkit conversation of a Discord thread, channel or DM."""
    return f"discord:{guild_id if guild_id is not None else 'dm'}:{channel_id}"


class _Client(discord.Client):
    """discord.Client with a command tree; events are forwarded to `DiscordBot`."""

    def __init__(self, bot: DiscordBot) -> None:
        intents = discord.Intents.default()
        intents.message_content = True  # privileged: must also be enabled in the Developer Portal
        # Answers quote documents: never let them ping @everyone, roles or users.
        super().__init__(intents=intents, allowed_mentions=discord.AllowedMentions.none())
        self.bot = bot
        self.chat = bot.chat  # feedback buttons reach the service through the client
        self.tree = app_commands.CommandTree(self)
        self.add_dynamic_items(FeedbackButton)  # clicks work on answers sent before a restart
        self.tree.error(bot.on_command_error)

    async def on_ready(self) -> None:
        await self.bot.on_ready()

    async def on_message(self, message: discord.Message) -> None:
        await self.bot.on_message(message)


class DiscordBot:
    """Runs the Discord side of the knowledge bot on a `discord.Client`."""

    def __init__(
        self, settings: Settings, chat: AskService, indexer: Indexer, *, edit_interval: float = 1.0
    ) -> None:
        self._settings = settings
        self.chat = chat
        self._indexer = indexer
        self._edit_interval = edit_interval
        self._synced = False
        self.client = _Client(self)
        self._add_commands(self.client.tree)

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Log in and stay connected until `close()`; bad credentials raise `ConfigError`."""
        if self._settings.discord_token is None:
            raise ConfigError("DISCORD_TOKEN is not set; see docs/discord.md")
        try:
            await self.client.start(self._settings.discord_token.get_secret_value())
        except discord.LoginFailure:
            raise ConfigError(
                "Discord rejected DISCORD_TOKEN; copy the bot token again (docs/discord.md)"
            ) from None
        except discord.PrivilegedIntentsRequired:
            raise ConfigError(
                "Discord refused the Message Content intent; enable it under Bot → Privileged Gateway "
                "Intents in the Developer Portal (docs/discord.md)"
            ) from None

    async def close(self) -> None:
        await self.client.close()

    async def on_ready(self) -> None:
        """Sync app commands once: to DISCORD_GUILD_IDS (instant) or globally (can take an hour)."""
        log.info("Discord: logged in as %s", self.client.user)
        if not self._synced:
            self._synced = True
            await self.sync_commands()

    async def sync_commands(self) -> None:
        tree = self.client.tree
        if not self._settings.discord_guild_ids:
            try:
                synced = await tree.sync()
                log.info("Discord: synced %d global commands", len(synced))
            except discord.HTTPException as exc:
                log.error("Discord: could not sync the slash commands: %s", exc)
            return
        for guild_id in self._settings.discord_guild_ids:
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

    # --- messages --------------------------------------------------------------------------
    async def on_message(self, message: discord.Message) -> None:
        """Answer the messages meant for the bot; every failure ends in a message."""
        me = self.client.user
        if me is None or message.author.bot or message.author.id == me.id:
            return
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return
        mentioned = _mentions(message, me.id)
        replying_to_me = self._replies_to(message, me.id)
        channel = message.channel
        if isinstance(channel, discord.DMChannel):
            pass
        elif isinstance(channel, discord.Thread):
            if not (mentioned or replying_to_me or channel.owner_id == me.id):
                return
        elif not (mentioned or replying_to_me):
            return
        question = _without_mentions_of(message, me.id)
        try:
            if not question:
                await message.reply(EMPTY_QUESTION.format(name=me.display_name), mention_author=False)
                return
            await self._answer_message(message, question, open_thread=mentioned and not replying_to_me)
        except Exception as exc:
            log.exception("Discord: failed to answer message %s", message.id)
            with contextlib.suppress(discord.HTTPException):
                await channel.send(CRASH_MESSAGE.format(error=_describe(exc)))

    @staticmethod
    def _replies_to(message: discord.Message, user_id: int) -> bool:
        ref = message.reference
        resolved = ref.resolved if ref is not None else None
        return isinstance(resolved, discord.Message) and resolved.author.id == user_id

    async def _answer_message(self, message: discord.Message, question: str, *, open_thread: bool) -> None:
        channel = message.channel
        guild_id = message.guild.id if message.guild is not None else None
        destination: discord.abc.Messageable = channel
        reply_to: discord.Message | None = None
        if open_thread and isinstance(channel, discord.TextChannel):
            thread = await self._open_thread(message, question)
            if thread is not None:
                destination = thread
        if destination is channel and not isinstance(channel, discord.DMChannel | discord.Thread):
            reply_to = message  # no thread: keep the answer visibly attached to the question
        key = conversation_key(guild_id, getattr(destination, "id", channel.id))

        async def send(text: str) -> discord.Message:
            nonlocal reply_to
            if reply_to is not None:
                first, reply_to = reply_to, None
                # Still answer when the question was deleted meanwhile.
                reference = first.to_reference(fail_if_not_exists=False)
                return await channel.send(text, reference=reference, mention_author=False)
            return await destination.send(text)

        async def edit(sent: discord.Message, text: str) -> object:
            return await sent.edit(content=text)

        stream: MessageStream[discord.Message] = MessageStream(send, edit, interval=self._edit_interval)
        async with _typing(destination):
            await self._stream_answer(key, question, str(message.author.id), stream)

    async def _open_thread(self, message: discord.Message, question: str) -> discord.Thread | None:
        """A thread from the message, or None where threads are not allowed (then we reply)."""
        channel = message.channel
        guild = message.guild
        if guild is None or not isinstance(channel, discord.TextChannel):
            return None
        if not channel.permissions_for(guild.me).create_public_threads:
            return None
        name = " ".join(question.split())[:THREAD_NAME_LIMIT] or "Question"
        try:
            return await message.create_thread(name=name)
        except discord.HTTPException as exc:
            log.info("Discord: could not open a thread in #%s (%s); replying instead", channel, exc)
            return None

    async def _stream_answer(
        self, key: str, question: str, user_id: str, stream: MessageStream[discord.Message]
    ) -> None:
        """Run one ask and render its events; always leaves an answer or an error message."""
        text = ""
        try:
            async for event in self.chat.ask(key, question, user_id=user_id):
                if isinstance(event, TextDelta):
                    text += event.text
                    await stream.update(text)
                elif isinstance(event, Answer):
                    last = await stream.finish(render_answer(event))
                    view = feedback_view(event.answer_id)
                    if view is not None:
                        await _add_view(last, view)
                    return
                elif isinstance(event, AskFailed):
                    await stream.finish(_with_error(text, event.message))
                    return
            failure = "the answer ended unexpectedly"
        except discord.HTTPException:
            raise  # Discord itself failed: the caller reports it in a fresh message
        except Exception as exc:
            log.exception("Discord: the ask for %s failed", key)
            failure = f"the answer failed: {_describe(exc)}"
        await stream.finish(_with_error(text, f"Sorry, {failure}. Please try again."))

    # --- app commands ----------------------------------------------------------------------
    def _add_commands(self, tree: app_commands.CommandTree[_Client]) -> None:
        @tree.command(name="ask", description="Ask a question about the docs")
        @app_commands.describe(question="Your question")
        async def ask(interaction: discord.Interaction, question: str) -> None:
            await self.ask_command(interaction, question)

        @tree.command(name="reindex", description="Re-index the docs (server managers only)")
        @app_commands.describe(mode="incremental (changed files, default), full (rebuild) or status")
        @app_commands.default_permissions(manage_guild=True)
        @app_commands.guild_only()
        async def reindex(interaction: discord.Interaction, mode: ReindexMode = "incremental") -> None:
            await self.reindex_command(interaction, mode)

    async def ask_command(self, interaction: discord.Interaction, question: str) -> None:
        """`/ask`: the answer is posted in the channel, streamed into the deferred response."""
        await interaction.response.defer(thinking=True)
        first = True

        async def send(text: str) -> discord.Message:
            nonlocal first
            if first:
                first = False
                return await interaction.edit_original_response(content=text)
            return await interaction.followup.send(text, wait=True)

        async def edit(sent: discord.Message, text: str) -> object:
            return await sent.edit(content=text)

        channel_id = interaction.channel_id or interaction.user.id
        key = conversation_key(interaction.guild_id, channel_id)
        stream: MessageStream[discord.Message] = MessageStream(send, edit, interval=self._edit_interval)
        await self._stream_answer(key, question, str(interaction.user.id), stream)

    def _may_reindex(self, interaction: discord.Interaction) -> bool:
        """Server-side check: Discord's default permissions can be overridden by server admins."""
        user = interaction.user
        if interaction.guild is None or not isinstance(user, discord.Member):
            return False
        admin_roles = set(self._settings.discord_admin_role_ids)
        if admin_roles:
            return any(role.id in admin_roles for role in user.roles)
        return user.guild_permissions.manage_guild

    async def reindex_command(self, interaction: discord.Interaction, mode: ReindexMode) -> None:
        """`/reindex`: check, defer ephemerally, then follow up with progress and the report."""
        if not self._may_reindex(interaction):
            who = "members with an admin role" if self._settings.discord_admin_role_ids else "server managers"
            await interaction.response.send_message(f"⛔ Only {who} can reindex the docs.", ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        if mode == "status":
            progress = self._indexer.progress
            text = f"⏳ Indexing: {progress.describe()}" if progress else "No indexing is running."
            await interaction.followup.send(text, ephemeral=True)
            return
        starting = f"⏳ Starting the reindex ({mode})…"
        status = await interaction.followup.send(starting, ephemeral=True, wait=True)

        async def on_progress(progress: IndexProgress) -> None:
            with contextlib.suppress(discord.HTTPException):
                await status.edit(content=f"⏳ Indexing: {progress.describe()}")

        try:
            task = self._indexer.start_background(
                full=mode == "full", on_progress=on_progress, progress_interval=3.0
            )
        except IndexAlreadyRunning as exc:
            await status.edit(content=f"⏳ Indexing is already running: {exc.progress.describe()}")
            return
        try:
            result: IndexResult | BaseException = await asyncio.shield(task)
        except Exception as exc:
            result = exc
        await self._report_index(interaction, result)

    async def _report_index(
        self, interaction: discord.Interaction, result: IndexResult | BaseException
    ) -> None:
        if isinstance(result, IndexResult):
            icon = "⚠️" if result.failed else "✅"
            text = f"{icon} Reindex finished. {result.summary()}"
        else:
            text = f"❌ Reindex failed: {_describe(result)}"
        try:
            await interaction.followup.send(text, ephemeral=True)
        except discord.HTTPException:
            # The interaction token lasts 15 minutes; a longer run reports in the channel instead.
            channel = interaction.channel
            if isinstance(channel, discord.abc.Messageable):
                with contextlib.suppress(discord.HTTPException):
                    await channel.send(f"{interaction.user.mention} {text}")

    async def on_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        """Any command failure ends in a message to the user who ran it."""
        cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        log.error("Discord: /%s failed", getattr(interaction.command, "name", "?"), exc_info=cause)
        text = CRASH_MESSAGE.format(error=_describe(cause))
        with contextlib.suppress(discord.HTTPException):
            if interaction.response.is_done():
                await interaction.followup.send(text, ephemeral=True)
            else:
                await interaction.response.send_message(text, ephemeral=True)


@contextlib.asynccontextmanager
async def _typing(channel: discord.abc.Messageable) -> AsyncIterator[None]:
    """Keep the typing indicator on while the block runs; a failing indicator is not an error."""

    async def show_typing() -> None:
        with contextlib.suppress(discord.HTTPException):
            await channel.typing()

    async def keep_typing() -> None:
        while True:
            await asyncio.sleep(TYPING_REFRESH_SECONDS)
            await show_typing()

    await show_typing()
    task = asyncio.create_task(keep_typing())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _add_view(message: discord.Message, view: discord.ui.View) -> None:
    """Put the feedback buttons on the answer's last message; the answer stands without them."""
    try:
        await message.edit(view=view)
    except discord.HTTPException as exc:
        log.warning("Discord: could not add the feedback buttons to message %s (%s)", message.id, exc)


def _with_error(partial: str, message: str) -> str:
    return f"{partial.rstrip()}\n\n⚠️ {message}" if partial.strip() else f"⚠️ {message}"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


__all__ = ["DiscordBot", "conversation_key", "split_message"]


def _own_role_id(message: discord.Message) -> int | None:
    """The role Discord made for the bot in this guild: autocomplete offers it next to the bot, so
    people pick it when they mean the bot."""
    role = message.guild.self_role if message.guild is not None else None
    return role.id if role is not None else None


def _mentions(message: discord.Message, bot_id: int) -> bool:
    """Whether the message mentions the bot, or the bot's own role."""
    if any(user.id == bot_id for user in message.mentions):
        return True
    role_id = _own_role_id(message)
    return role_id is not None and any(role.id == role_id for role in message.role_mentions)


def _without_mentions_of(message: discord.Message, bot_id: int) -> str:
    """The message text without mentions of the bot or of its role."""
    text = re.sub(rf"<@!?{bot_id}>", "", message.content)
    if (role_id := _own_role_id(message)) is not None:
        text = text.replace(f"<@&{role_id}>", "")
    return text.strip()
