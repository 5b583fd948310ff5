"""Spaces in Slack's terms: where a message or command was written, who is in a user group, and the
checks before an answer (who may ask, how often).

The policy itself (which sources, which mode, who may ask) is resolved by `services.spaces`; this
module only supplies the Slack facts it needs: the team and channel of a place, and the members of
the user groups a policy names, which Slack knows and the bot must ask for.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterable
from typing import Any

from slack_sdk.errors import SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from services.slack.blocks import escape_mrkdwn
from services.spaces.directory import Spaces
from services.spaces.policy import Place, Policy

log = logging.getLogger(__name__)

GROUP_MEMBERS_TTL = 60.0  # seconds a user group's members are remembered
GROUP_LOOKUP_TIMEOUT = 2.0  # seconds for usergroups.users.list (a slash command must ack within 3)
GROUPS_UNAVAILABLE = "I could not check your Slack user groups with Slack; please try again in a moment."
_SLACK_ID = re.compile(r"[UWS][A-Z0-9]{2,}")


def conversation_key(team_id: str, channel: str, thread_ts: str) -> str:
    """One Slack thread is one conversation in the chatkit service."""
    return f"slack:{team_id}:{channel}:{thread_ts}"


def event_place(team_id: str, event: dict[str, Any]) -> Place:
    """The place of a message event: its channel, a DM when Slack says `im`."""
    channel = str(event.get("channel") or "")
    return Place("slack", team_id or None, channel, is_dm=event.get("channel_type") == "im")


def command_place(command: dict[str, Any]) -> Place:
    """The place of a slash command; commands carry no channel type, but DM channel ids start with D."""
    channel = str(command.get("channel_id") or "")
    team = str(command.get("team_id") or "") or None
    return Place("slack", team, channel, is_dm=channel.startswith("D"))


def slack_experts(policy: Policy) -> tuple[str, ...]:
    """The policy's experts Slack can mention: member ids (U…, W… in Enterprise Grid) and user groups
    (S…). A space shared with Discord also lists `role:ID`s and Discord user ids, which mean
    nothing here."""
    return tuple(expert for expert in policy.experts if _SLACK_ID.fullmatch(expert))


async def tell(client: AsyncWebClient, event: dict[str, Any], text: str) -> None:
    """A notice only the asker sees, where they wrote (the thread, or the channel); best effort."""
    user = event.get("user")
    if not user:
        return
    try:
        await client.chat_postEphemeral(
            channel=event["channel"], user=user, thread_ts=event.get("thread_ts"), text=escape_mrkdwn(text)
        )
    except SlackClientError as exc:
        log.warning("Could not tell %s in %s: %s", user, event["channel"], exc)


class SlackGroups:
    """Members of Slack user groups (usergroups.users.list), remembered for a minute.

    Every question in a place limited to a group needs its members; asking Slack each time would
    spend the method's rate limit (Tier 2) on a busy channel. A minute's delay for a membership
    change is the price.
    """

    def __init__(self, client: AsyncWebClient, *, ttl: float = GROUP_MEMBERS_TTL) -> None:
        self.client = client
        self.ttl = ttl
        self._members: dict[str, tuple[float, frozenset[str]]] = {}

    async def members(self, group: str) -> frozenset[str]:
        """The user ids in `group`; raises `SlackClientError` (or `TimeoutError`) when Slack can't say."""
        cached = self._members.get(group)
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        async with asyncio.timeout(GROUP_LOOKUP_TIMEOUT):
            response = await self.client.usergroups_users_list(usergroup=group)
        members = frozenset(str(user) for user in response.get("users") or [])
        self._members[group] = (time.monotonic(), members)
        return members

    async def groups_of(self, user: str, groups: Iterable[str]) -> list[str]:
        """Which of `groups` have `user` as a member."""
        found = []
        for group in groups:
            if user in await self.members(group):
                found.append(group)
        return found

    async def is_expert(self, policy: Policy, user: str | None) -> bool:
        """Whether `user` is one of the policy's experts: named (U…), or in a named user group (S…).
        A group Slack can't list counts as not having them (logged), so an expert's reply that
        cannot be matched is answered as a follow-up rather than lost."""
        experts = slack_experts(policy)
        if user is None:
            return False
        if user in experts:
            return True
        try:
            return bool(await self.groups_of(user, [e for e in experts if e.startswith("S")]))
        except (SlackClientError, TimeoutError) as exc:
            log.warning("Could not list the experts' user groups: %s", exc)
            return False


class AskGate:
    """The checks between a question and its answer: may this user ask here, and now?

    Refusals are messages (the caller shows them only to the asker): a user who is ignored thinks
    the bot is broken, a user who is told knows whom to ask.
    """

    def __init__(self, spaces: Spaces, groups: SlackGroups) -> None:
        self.spaces = spaces
        self.groups = groups

    async def refusal(self, policy: Policy, user: str | None) -> str | None:
        """None when `user` may ask now; else what to tell them. A question that passes is counted
        for the rate limit (so call this once per question, after deduplicating the event)."""
        if not policy.may_ask(user):
            named = sorted({group for rule in policy.rules for group in rule.groups})
            if user is None or not named:
                return policy.refusal()
            try:
                groups = await self.groups.groups_of(user, named)
            except (SlackClientError, TimeoutError) as exc:
                log.warning("Could not list user groups for the access check: %s", exc)
                return GROUPS_UNAVAILABLE
            if not policy.may_ask(user, groups=groups):
                return policy.refusal()
        return await self.spaces.allow_question(policy, user)
