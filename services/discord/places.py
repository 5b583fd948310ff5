"""Which place a Discord message or command is in, and what its space allows (services/spaces).

A thread is its parent channel's place, so a thread searches what its channel searches and a
`/docs use` in a thread sets the channel. Discord roles are what allowed roles and "role:ID"
experts name. Without `Spaces` (an adapter built without a database, as in the adapter tests)
every place is the default space: all sources, anyone may ask, no limit, no experts.
"""

from __future__ import annotations

import discord

from services.spaces.directory import Spaces
from services.spaces.policy import Place, Policy, resolve

__all__ = [
    "PlaceRules",
    "conversation_key",
    "expert_mentions",
    "is_expert",
    "place_of",
    "role_ids",
]

ROLE_EXPERT = "role:"


def conversation_key(guild_id: int | None, channel_id: int) -> str:
    """One thread, channel or DM is one chatkit conversation: `discord:{guild_id or 'dm'}:{channel_id}`."""
    return f"discord:{guild_id if guild_id is not None else 'dm'}:{channel_id}"


def place_of(guild_id: int | None, channel: object) -> Place:
    """The place of a channel (a thread's parent channel); a DM when there is no guild."""
    channel_id = getattr(channel, "id", None)
    if isinstance(channel, discord.Thread) and channel.parent_id is not None:
        channel_id = channel.parent_id
    return Place(
        platform="discord",
        workspace=str(guild_id) if guild_id is not None else None,
        channel=str(channel_id) if channel_id is not None else None,
        is_dm=guild_id is None,
    )


def role_ids(user: discord.abc.User) -> list[str]:
    """The member's role ids (none for a user outside a guild, e.g. in a DM)."""
    return [str(role.id) for role in user.roles] if isinstance(user, discord.Member) else []


def is_expert(policy: Policy, user: discord.abc.User) -> bool:
    """Named among the space's experts: by user id, or by one of the member's roles ("role:ID")."""
    return str(user.id) in policy.experts or any(
        f"{ROLE_EXPERT}{role}" in policy.experts for role in role_ids(user)
    )


def expert_mentions(policy: Policy) -> tuple[str, discord.AllowedMentions]:
    """The experts as mentions, and the allowed mentions that make exactly them ping."""
    roles = [int(e.removeprefix(ROLE_EXPERT)) for e in policy.experts if e.startswith(ROLE_EXPERT)]
    users = [int(e) for e in policy.experts if not e.startswith(ROLE_EXPERT) and e.isdigit()]
    text = " ".join([*(f"<@&{role}>" for role in roles), *(f"<@{user}>" for user in users)])
    allowed = discord.AllowedMentions(
        everyone=False,
        roles=[discord.Object(id=role) for role in roles],
        users=[discord.Object(id=user) for user in users],
        replied_user=False,
    )
    return text, allowed


class PlaceRules:
    """The spaces as the Discord adapter asks them: a place's policy, and whether someone may ask."""

    def __init__(self, spaces: Spaces | None) -> None:
        self.spaces = spaces

    async def policy(self, place: Place) -> Policy:
        if self.spaces is None:
            return resolve(None, place, None)
        return await self.spaces.policy(place)

    async def refusal(self, policy: Policy, user: discord.abc.User) -> str | None:
        """None when `user` may ask now (the question is counted), else what to tell them: not
        allowed here, or over the rate limit."""
        if not policy.may_ask(str(user.id), roles=role_ids(user)):
            return policy.refusal()
        if self.spaces is None:
            return None
        return await self.spaces.allow_question(policy, str(user.id))

    async def record_reply(self, thread: str, expert: str, reply: str) -> bool:
        """Store an expert's reply with the thread's open "Ask a human" request; False when none is open."""
        return self.spaces is not None and await self.spaces.record_reply(thread, expert, reply)
