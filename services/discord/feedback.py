"""👍/👎 buttons under a Discord answer, stored (and thanked for) by `services.chat.replies.record_vote`;
a 👎 where the space has experts also offers "Ask a human" (services/discord/human.py).

The buttons are `DynamicItem`s: the vote and the answer id travel in the button's custom_id,
so a click is handled by whichever bot process is running, also after a restart, without
keeping a view per message in memory.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Protocol, runtime_checkable

import discord

from services.chat.contract import AskService
from services.chat.replies import record_vote
from services.discord.human import HumanClient, human_view
from services.discord.places import place_of

log = logging.getLogger(__name__)

CUSTOM_ID_PREFIX = "docsbot:feedback"
TEMPLATE = rf"{CUSTOM_ID_PREFIX}:(?P<vote>up|down):(?P<answer_id>[A-Za-z0-9_-]+)"
_ANSWER_ID = re.compile(r"[A-Za-z0-9_-]+")
CUSTOM_ID_LIMIT = 100  # Discord rejects longer custom_ids
UNAVAILABLE = "Sorry, feedback is not available right now."
OFFER_HUMAN = "If a person should answer this, ask one:"


@runtime_checkable
class FeedbackClient(Protocol):
    """A `discord.Client` that knows the service feedback goes to."""

    chat: AskService


class FeedbackButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=TEMPLATE):
    """One vote button; everything it needs is in its custom_id."""

    def __init__(self, vote: str, answer_id: str) -> None:
        up = vote == "up"
        super().__init__(
            discord.ui.Button(
                label="Helpful" if up else "Not helpful",
                emoji="👍" if up else "👎",
                style=discord.ButtonStyle.secondary,
                custom_id=f"{CUSTOM_ID_PREFIX}:{vote}:{answer_id}",
            )
        )
        self.vote = vote
        self.answer_id = answer_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> FeedbackButton:
        return cls(match["vote"], match["answer_id"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Store the vote and tell only the clicking user how it went (never silence)."""
        client = interaction.client
        view: discord.ui.View | None = None
        if not isinstance(client, FeedbackClient):
            log.error("Discord: feedback click on a client without an AskService: %r", client)
            text = UNAVAILABLE
        else:
            user_id = str(interaction.user.id)
            text = await record_vote(client.chat, self.answer_id, positive=self.vote == "up", user_id=user_id)
            if self.vote == "down" and (view := await _human_offer(interaction)) is not None:
                text = f"{text}\n{OFFER_HUMAN}"
        try:
            if view is None:
                await interaction.response.send_message(text, ephemeral=True)
            else:
                await interaction.response.send_message(text, ephemeral=True, view=view)
        except discord.HTTPException as exc:
            log.warning("Discord: could not answer a feedback click (%s)", exc)


async def _human_offer(interaction: discord.Interaction[Any]) -> discord.ui.View | None:
    """Offer "Ask a human" after this 👎 when the space has experts and the answer is a message others
    can see (an ephemeral `/ask` answer cannot be read back; its own button covers it)."""
    client, message = interaction.client, interaction.message
    if not isinstance(client, HumanClient) or message is None or message.flags.ephemeral:
        return None
    try:
        policy = await client.rules.policy(place_of(interaction.guild_id, interaction.channel))
    except Exception:
        log.exception("Discord: could not read the policy for 'Ask a human' after a 👎")
        return None
    return human_view(message.id) if policy.experts else None


def feedback_view(answer_id: str) -> discord.ui.View | None:
    """The 👍/👎 row for an answer, or None when the answer cannot take feedback."""
    if not answer_id:
        return None
    if not _ANSWER_ID.fullmatch(answer_id) or len(f"{CUSTOM_ID_PREFIX}:down:{answer_id}") > CUSTOM_ID_LIMIT:
        log.warning("Discord: answer id %r does not fit a button; no feedback buttons", answer_id)
        return None
    view = discord.ui.View(timeout=None)
    view.add_item(FeedbackButton("up", answer_id))
    view.add_item(FeedbackButton("down", answer_id))
    return view
