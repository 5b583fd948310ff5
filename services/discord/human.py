"""'Ask a human': when the docs fall short, a button that calls the space's experts into the thread,
and the expert's reply stored with the question (`main.py report` lists the pairs to fix the docs).

The button is a `DynamicItem` carrying the answer message's id, so a click works on any replica
and after a restart. The question and the bot's answer are read back from Discord (the answer
message, the asker's message before it, or the message the thread was opened from): nothing is
kept in memory between the answer and the click.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Protocol, runtime_checkable

import discord

from services.discord.places import PlaceRules, conversation_key, expert_mentions, is_expert, place_of
from services.spaces.policy import Policy

__all__ = ["HumanButton", "HumanClient", "human_view", "take_expert_reply"]

log = logging.getLogger(__name__)

CUSTOM_ID_PREFIX = "docsbot:human"
TEMPLATE = rf"{CUSTOM_ID_PREFIX}:(?P<message_id>[0-9]+)"
QUESTION_LOOKBACK = 20  # messages before the answer searched for the question
ASKED = "🙋 {experts}: {user} would like a person to answer this{question}\nThe next message here from an expert is saved as a suggested answer for the docs."  # noqa: E501
ASKED_ALREADY = "A person has already been asked here; an expert's next message answers it."
NO_EXPERTS = "Sorry, no experts are set up for this channel's docs."
DONE = "Done: the experts were mentioned in this conversation."
REPLY_STORED = "Thanks! Saved as a suggested answer for the docs."
_SOURCES = re.compile(r"\n+\*\*Sources\*\*\n.*\Z", re.DOTALL)
_MENTION = re.compile(r"<@[!&]?\d+>")


@runtime_checkable
class HumanClient(Protocol):
    """A `discord.Client` that knows the places' policies and where requests are stored."""

    rules: PlaceRules


def human_view(message_id: int) -> discord.ui.View:
    """A row with the 'Ask a human' button for the answer `message_id`."""
    view = discord.ui.View(timeout=None)
    view.add_item(HumanButton(message_id))
    return view


class HumanButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=TEMPLATE):
    def __init__(self, message_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Ask a human",
                emoji="🙋",
                style=discord.ButtonStyle.primary,
                custom_id=f"{CUSTOM_ID_PREFIX}:{message_id}",
            )
        )
        self.message_id = message_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> HumanButton:
        return cls(int(match["message_id"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Mention the experts where the answer is and open a request; the clicker is told how it went."""
        client = interaction.client
        channel = interaction.channel
        if not isinstance(client, HumanClient) or not isinstance(channel, discord.abc.Messageable):
            log.error("Discord: 'Ask a human' clicked where it cannot work: %r in %r", client, channel)
            await interaction.response.send_message(NO_EXPERTS, ephemeral=True)
            return
        policy = await client.rules.policy(place_of(interaction.guild_id, channel))
        spaces = client.rules.spaces
        if spaces is None or not policy.experts:
            await interaction.response.send_message(NO_EXPERTS, ephemeral=True)
            return
        key = conversation_key(interaction.guild_id, getattr(channel, "id", interaction.user.id))
        if await spaces.open_request(key):
            await interaction.response.send_message(ASKED_ALREADY, ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        answer = await self._answer(interaction, channel)
        question = await _question_before(answer) if answer is not None else ""
        answer_text = _SOURCES.sub("", answer.content).strip() if answer is not None else ""
        await spaces.ask_human(policy, key, question, answer_text, str(interaction.user.id))
        experts, allowed = expert_mentions(policy)
        quoted = f":\n> {' '.join(question.split())[:300]}" if question else "."
        text = ASKED.format(experts=experts, user=interaction.user.mention, question=quoted)
        await channel.send(text, allowed_mentions=allowed)
        await interaction.followup.send(DONE, ephemeral=True)

    async def _answer(
        self, interaction: discord.Interaction[Any], channel: discord.abc.Messageable
    ) -> discord.Message | None:
        """The answer the button belongs to: the clicked message, or (offered after a 👎) fetched."""
        if interaction.message is not None and interaction.message.id == self.message_id:
            return interaction.message
        try:
            return await channel.fetch_message(self.message_id)
        except discord.HTTPException as exc:
            log.info("Discord: the answer %s for 'Ask a human' is gone (%s)", self.message_id, exc)
            return None


async def _question_before(answer: discord.Message) -> str:
    """The question an answer replied to: the asker's last message before it, or the message its
    thread was opened from. Empty for `/ask`: its question is not a message."""
    if answer.interaction_metadata is not None:
        return ""
    said = (discord.MessageType.default, discord.MessageType.reply)
    channel = answer.channel
    try:
        async for earlier in channel.history(before=answer, limit=QUESTION_LOOKBACK):
            if not earlier.author.bot and earlier.type in said:
                return _MENTION.sub("", earlier.content).strip()
        if isinstance(channel, discord.Thread) and isinstance(channel.parent, discord.TextChannel):
            starter = await channel.parent.fetch_message(channel.id)  # a thread opened from a message
            return _MENTION.sub("", starter.content).strip()
    except discord.HTTPException as exc:
        log.info("Discord: could not read the question before answer %s (%s)", answer.id, exc)
    return ""


async def take_expert_reply(message: discord.Message, policy: Policy, rules: PlaceRules) -> bool:
    """An expert's message where a request is open: store it as the answer and say so (True);
    anything else is for the caller (False). Only an expert's message costs a database read."""
    if message.guild is None or not policy.experts or not is_expert(policy, message.author):
        return False
    key = conversation_key(message.guild.id, message.channel.id)
    reply = _MENTION.sub("", message.content).strip()
    if not reply or not await rules.record_reply(key, str(message.author.id), reply):
        return False
    await message.reply(REPLY_STORED, mention_author=False)
    return True
