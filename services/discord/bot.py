"""The Discord adapter: Discord events in, `AskService.ask` calls, Discord messages out.

It answers mentions (in a thread it opens, or a reply where threads are not allowed), messages
in threads it opened, replies to its own messages and DMs, and more or less under the channel's
answer mode (`addressing`); each place searches its spaces' sources, with who may ask and the
rate limit from its policy (`places`); an expert's reply to "Ask a human" is stored (`human`).
`/ask`, `/reindex` and `/docs` are in `commands`, the rendering of one ask in `answer`. One
thread, channel or DM is one conversation: `discord:{guild_id or 'dm'}:{channel_id}`. No
retrieval or agent logic lives here.

The client is an `AutoShardedClient`: one gateway connection per shard this process holds
(DISCORD_SHARD_IDS of DISCORD_SHARD_COUNT, or every shard Discord recommends), so a large bot is
split across processes by giving each its own shard ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Literal

import aiohttp
import discord
from discord import app_commands

from configs.config import ConfigError, Settings
from services.chat.contract import AskService
from services.chat.replies import describe_error
from services.discord.addressing import Reply, explicitly_addressed, reply_for, without_mentions_of
from services.discord.answer import CRASH_MESSAGE, stream_answer
from services.discord.commands import SlashCommands
from services.discord.feedback import FeedbackButton
from services.discord.human import HumanButton, take_expert_reply
from services.discord.messages import MessageStream
from services.discord.places import PlaceRules, conversation_key, place_of
from services.indexing.contract import Reindexer
from services.runtime import ComponentHealth
from services.spaces.directory import Spaces
from services.spaces.policy import Policy

log = logging.getLogger(__name__)

TYPING_REFRESH_SECONDS = 8.0  # Discord shows "typing" for ~10 s per request
THREAD_NAME_LIMIT = 100
EMPTY_QUESTION = "Ask me a question about the docs, e.g. `@{name} how do I install it?`"
THREAD_ONLY_HINT = "In this channel I answer inside threads: start a thread and mention me there."
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
        self.rules = bot.rules  # and "Ask a human" the spaces
        self.tree = app_commands.CommandTree(self)
        self.add_dynamic_items(FeedbackButton, HumanButton)  # clicks work on answers sent before a restart

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
        self,
        settings: Settings,
        chat: AskService,
        reindexer: Reindexer,
        spaces: Spaces | None = None,
        *,
        edit_interval: float = 1.0,
    ) -> None:
        """`spaces`: each place's sources, access, mode and experts (docs/spaces.md); None (no
        database) answers everywhere from every source, as the default space does."""
        self._settings = settings
        self.chat = chat
        self.rules = PlaceRules(spaces)
        self._edit_interval = edit_interval
        self._synced = False
        self.commands = SlashCommands(settings, chat, reindexer, self.rules, edit_interval=edit_interval)
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
        """Answer the messages meant for the bot under the place's policy; every failure on a message
        meant for the bot ends in a message."""
        me = self.client.user
        if me is None or message.author.bot or message.author.id == me.id:
            return
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return
        guild_id = message.guild.id if message.guild is not None else None
        try:
            policy = await self.rules.policy(place_of(guild_id, message.channel))
            if await take_expert_reply(message, policy, self.rules):
                return
            reply = await reply_for(message, me.id, policy, self.chat.has_conversation)
            if reply is None:
                return
            question = without_mentions_of(message, me.id)
            if not question:
                await message.reply(EMPTY_QUESTION.format(name=me.display_name), mention_author=False)
            elif reply is Reply.THREAD_HINT:
                await message.reply(THREAD_ONLY_HINT, mention_author=False)
            elif (refusal := await self.rules.refusal(policy, message.author)) is not None:
                await _refuse(message, refusal)
            else:
                await self._answer_message(message, question, policy, open_thread=reply is Reply.IN_THREAD)
        except Exception as exc:
            log.exception("Discord: failed to answer message %s", message.id)
            if explicitly_addressed(message, me.id):  # not every channel message, when the database is down
                with contextlib.suppress(discord.HTTPException):
                    await message.channel.send(CRASH_MESSAGE.format(error=describe_error(exc)))

    async def _answer_message(
        self, message: discord.Message, question: str, policy: Policy, *, open_thread: bool
    ) -> None:
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
            await stream_answer(
                self.chat,
                key,
                question,
                str(message.author.id),
                stream,
                policy=policy,
            )

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


async def _refuse(message: discord.Message, refusal: str) -> None:
    """One polite refusal per message, mentioning the asker (a channel message cannot be ephemeral)."""
    allowed = discord.AllowedMentions(everyone=False, roles=False, users=[message.author])
    await message.reply(f"{message.author.mention} {refusal}", allowed_mentions=allowed)
