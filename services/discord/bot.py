"""The Discord adapter: Discord events in, `AskService.ask` calls, Discord messages out.

It answers mentions (in a thread it opens, or a reply where threads are not allowed), messages
in threads it opened, replies to its own messages and DMs; `/ask` and `/reindex` are in `commands`,
the rendering of one ask in `answer`. One thread, channel or DM is one conversation:
`discord:{guild_id or 'dm'}:{channel_id}`. No retrieval or agent logic lives here.

The client is an `AutoShardedClient`: one gateway connection per shard this process holds
(DISCORD_SHARD_IDS of DISCORD_SHARD_COUNT, or every shard Discord recommends), so a large bot is
split across processes by giving each its own shard ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from typing import Literal

import aiohttp
import discord
from discord import app_commands

from configs.config import ConfigError, Settings
from services.chat.contract import AskService
from services.chat.replies import describe_error
from services.discord.answer import CRASH_MESSAGE, conversation_key, stream_answer
from services.discord.commands import SlashCommands
from services.discord.feedback import FeedbackButton
from services.discord.messages import MessageStream
from services.indexing.contract import Reindexer
from services.runtime import ComponentHealth

log = logging.getLogger(__name__)

TYPING_REFRESH_SECONDS = 8.0  # Discord shows "typing" for ~10 s per request
THREAD_NAME_LIMIT = 100
EMPTY_QUESTION = "Ask me a question about the docs, e.g. `@{name} how do I install it?`"
AdapterState = Literal["starting", "connected", "reconnecting", "failed", "stopped"]
MAX_RECONNECT_DELAY = 60.0
# Failures that a later attempt can get past: the network, Discord's servers, a dropped gateway.
RETRYABLE = (
    OSError,
    TimeoutError,
    aiohttp.ClientError,
    discord.GatewayNotFound,
    discord.DiscordServerError,
    discord.ConnectionClosed,
)
# Gateway close codes that no reconnect fixes (https://discord.com/developers/docs/topics/opcodes-and-status-codes).
FATAL_CLOSE_CODES = {
    4004: "Discord rejected DISCORD_TOKEN; copy the bot token again (docs/discord.md)",
    4010: "Discord refused the shard; check DISCORD_SHARD_IDS and DISCORD_SHARD_COUNT",
    4011: "Discord requires more shards for this bot; raise DISCORD_SHARD_COUNT or leave it empty",
    4012: "Discord refused the gateway API version; upgrade discord.py",
    4013: "Discord refused the gateway intents",
}


class _Client(discord.AutoShardedClient):
    """A sharded discord.py client with a command tree; events are forwarded to `DiscordBot`.

    With no shard count discord.py asks Discord (GET /gateway/bot) how many shards to run, and
    holds them all: one shard for a small bot, so the unsharded case needs no setting.
    """

    def __init__(self, bot: DiscordBot, settings: Settings) -> None:
        intents = discord.Intents.default()
        intents.message_content = True  # privileged: must also be enabled in the Developer Portal
        # Answers quote documents: never let them ping @everyone, roles or users.
        mentions = discord.AllowedMentions.none()
        shard_count = settings.discord_shard_count
        if settings.discord_shard_ids:
            super().__init__(
                intents=intents,
                allowed_mentions=mentions,
                shard_count=shard_count,
                shard_ids=settings.discord_shard_ids,
            )
        else:  # no shard_ids: every shard of the count
            super().__init__(intents=intents, allowed_mentions=mentions, shard_count=shard_count)
        self.bot = bot
        self.chat = bot.chat  # feedback buttons reach the service through the client
        self.tree = app_commands.CommandTree(self)
        self.add_dynamic_items(FeedbackButton)  # clicks work on answers sent before a restart

    async def on_ready(self) -> None:
        await self.bot.on_ready()

    async def on_shard_ready(self, shard_id: int) -> None:
        self.bot.shard_connected(shard_id)

    async def on_shard_resumed(self, shard_id: int) -> None:
        self.bot.shard_connected(shard_id)

    async def on_shard_disconnect(self, shard_id: int) -> None:
        self.bot.shard_disconnected(shard_id)

    async def on_message(self, message: discord.Message) -> None:
        await self.bot.on_message(message)


class DiscordBot:
    """Runs the Discord side of the knowledge bot on a `discord.Client`."""

    def __init__(
        self, settings: Settings, chat: AskService, reindexer: Reindexer, *, edit_interval: float = 1.0
    ) -> None:
        self._settings = settings
        self.chat = chat
        self._edit_interval = edit_interval
        self._synced = False
        self.commands = SlashCommands(settings, chat, reindexer, edit_interval=edit_interval)
        self._shards_up: set[int] = set()
        self.client = self._new_client()
        self.state: AdapterState = "starting"
        self.problem: str | None = None  # what is wrong while not connected, for /healthz
        self._closed = asyncio.Event()
        self._retry_delay = 0.0

    def _new_client(self) -> _Client:
        client = _Client(self, self._settings)
        self.commands.register(client.tree)
        self._shards_up = set()
        return client

    @property
    def shards_held(self) -> list[int]:
        """The shards this process connects: DISCORD_SHARD_IDS, else all of them once the count is
        known (empty before Discord has said how many)."""
        if self.client.shard_ids is not None:
            return sorted(self.client.shard_ids)
        return list(range(self.client.shard_count or 0))

    def health(self) -> ComponentHealth:
        """For `/healthz`: connected only while every held shard is; names the shards, so two
        processes holding one shard can be spotted."""
        facts = {
            "shard_count": self.client.shard_count,
            "shards": self.shards_held,
            "shards_connected": sorted(self._shards_up),
        }
        return ComponentHealth(self.state == "connected", self.state, self.problem, facts)

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Log in and stay connected until `close()`.

        Network failures are retried with backoff, at login too (Discord or the network may be
        down when the bot starts). A rejected token or a refused intent is final: `state` becomes
        "failed", `problem` says what to fix, and `ConfigError` is raised.
        """
        if self._settings.discord_token is None:
            raise self._failed("DISCORD_TOKEN is not set; see docs/discord.md")
        token = self._settings.discord_token.get_secret_value()
        while not self._closed.is_set():
            try:
                await self.client.start(token)
                break  # closed
            except discord.LoginFailure:
                raise self._failed(FATAL_CLOSE_CODES[4004]) from None
            except discord.PrivilegedIntentsRequired:
                raise self._failed(
                    "Discord refused the Message Content intent; enable it under Bot → Privileged Gateway "
                    "Intents in the Developer Portal (docs/discord.md)"
                ) from None
            except RETRYABLE as exc:
                if isinstance(exc, discord.ConnectionClosed) and exc.code in FATAL_CLOSE_CODES:
                    raise self._failed(
                        f"{FATAL_CLOSE_CODES[exc.code]} (gateway close code {exc.code}, shard {exc.shard_id})"
                    ) from None
                if self._closed.is_set():
                    break
                self._retry_delay = min(max(self._retry_delay * 2, 1.0), MAX_RECONNECT_DELAY)
                self._retrying(exc, self._retry_delay)
            except Exception as exc:
                self._failed(f"the Discord client stopped: {type(exc).__name__}: {exc}")
                raise
            # A fresh client for the next attempt: a failed login leaves its HTTP session behind.
            await self.client.close()
            self.client = self._new_client()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), self._retry_delay)
        self.state = "stopped"

    def _retrying(self, exc: BaseException, delay: float) -> None:
        self.state = "reconnecting"
        self.problem = f"cannot reach Discord ({type(exc).__name__}: {exc}); retrying in {delay:.0f}s"
        log.warning("Discord: %s", self.problem)

    def _failed(self, problem: str) -> ConfigError:
        self.state, self.problem = "failed", problem
        log.error("Discord: %s", problem)
        return ConfigError(problem)

    def shard_connected(self, shard_id: int) -> None:
        """A shard is ready (or resumed); the bot is connected once every shard it holds is."""
        self._shards_up.add(shard_id)
        if self._shards_up.issuperset(self.shards_held):
            self.state, self.problem = "connected", None
            self._retry_delay = 0.0  # the next outage backs off from the start again

    def shard_disconnected(self, shard_id: int) -> None:
        """A shard's gateway connection dropped; discord.py reconnects it by itself (or `start` does)."""
        self._shards_up.discard(shard_id)
        if self.state in ("starting", "connected"):
            self.state = "reconnecting"
            self.problem = f"the Discord gateway connection of shard {shard_id} dropped; reconnecting"

    async def close(self) -> None:
        self._closed.set()
        await self.client.close()

    async def on_ready(self) -> None:
        """Every held shard is ready. The process holding shard 0 syncs app commands, once: to
        DISCORD_GUILD_IDS (instant) or globally (can take an hour); one sync serves every shard."""
        log.info(
            "Discord: logged in as %s, shards %s of %s",
            self.client.user,
            self.shards_held,
            self.client.shard_count,
        )
        if not self._synced and 0 in self.shards_held:
            self._synced = True
            await self.commands.sync(self.client.tree)

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
                await channel.send(CRASH_MESSAGE.format(error=describe_error(exc)))

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
            await stream_answer(self.chat, key, question, str(message.author.id), stream)

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
