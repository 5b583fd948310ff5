""" "Ask a human" in Slack: hand a question the docs could not answer to the space's experts in its
thread, and keep what an expert replies there as a suggested answer (`main.py report` lists them, so
the docs can be fixed).

A request is stored before the experts are mentioned, so the reply is matched wherever it arrives:
every replica reads the open requests from the database.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from services.chat.replies import describe_error
from services.slack.blocks import HumanRequest, escape_mrkdwn, parse_human_request
from services.slack.spaces import SlackGroups, conversation_key, slack_experts
from services.spaces.directory import Spaces
from services.spaces.policy import Place, Policy

log = logging.getLogger(__name__)

OUT_OF_DATE = "This button is out of date; ask your question again and use the button of the new answer."
NO_EXPERTS = "No experts are set up for this channel's docs, so there is nobody to ask (see docs/spaces.md)."
ALREADY_ASKED = "The experts were already asked in this thread; their reply will appear there."
HANDED_OVER = "I asked the experts in the thread. Their reply will be kept, so the docs can be fixed."
EXPERT_THANKS = "Thanks! I saved your reply as a suggested answer for the docs (it goes into the report)."
QUOTE_LIMIT = 500  # characters of the question quoted in the thread


def mention_of(expert: str) -> str:
    """`<!subteam^S…>` for a user group, `<@U…>` for a user: Slack notifies both."""
    return f"<!subteam^{expert}>" if expert.startswith("S") else f"<@{expert}>"


def handover_text(experts: tuple[str, ...], asked_by: str | None, question: str) -> str:
    who = f"<@{asked_by}>" if asked_by else "Someone"
    quoted = "\n".join(f">{escape_mrkdwn(line)}" for line in question[:QUOTE_LIMIT].splitlines())
    return (
        f"{' '.join(mention_of(e) for e in experts)}: {who} would like a person to answer this; "
        f"the docs did not help.\n{quoted}\nYour reply in this thread is kept as a suggested answer."
    )


class HumanHandoff:
    """The "Ask a human" button and the experts' replies."""

    def __init__(self, spaces: Spaces, groups: SlackGroups, client: AsyncWebClient) -> None:
        self.spaces = spaces
        self.groups = groups
        self.client = client

    async def on_click(
        self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        """Bolt listener for the button; the clicker is told what happened (only they see it)."""
        await ack()
        request = parse_human_request(str(action.get("value") or ""))
        team = str((body.get("team") or {}).get("id") or body.get("team_id") or "")
        channel = str((body.get("channel") or {}).get("id") or "")
        user = (body.get("user") or {}).get("id")
        if request is None or not channel:
            text = OUT_OF_DATE
        else:
            try:
                text = await self.hand_over(team, channel, user, request)
            except Exception as exc:
                log.exception("Could not hand a question over to the experts in %s", channel)
                text = f"Sorry, I could not ask the experts ({describe_error(exc)}). Please try again."
        await respond(text=escape_mrkdwn(text), response_type="ephemeral", replace_original=False)

    async def hand_over(self, team: str, channel: str, user: str | None, request: HumanRequest) -> str:
        """Store the request, then mention the experts in its thread; returns what to tell the clicker."""
        place = Place("slack", team or None, channel, is_dm=channel.startswith("D"))
        policy = await self.spaces.policy(place)
        experts = slack_experts(policy)
        if not experts:
            return NO_EXPERTS
        key = conversation_key(team, channel, request.thread_ts)
        if await self.spaces.open_request(key):
            return ALREADY_ASKED
        await self.spaces.ask_human(policy, key, request.question, request.answer, user)
        await self.client.chat_postMessage(
            channel=channel,
            thread_ts=request.thread_ts,
            text=handover_text(experts, user, request.question),
        )
        return HANDED_OVER

    async def take_expert_reply(self, policy: Policy, key: str, event: dict[str, Any]) -> bool:
        """Store `event` as the reply to the thread's open request when an expert wrote it; True
        then, and the expert is thanked (only they see it) instead of the message being answered as
        a follow-up question."""
        if not slack_experts(policy) or not await self.spaces.open_request(key):
            return False
        user = event.get("user")
        if user is None or not await self.groups.is_expert(policy, user):
            return False
        if not await self.spaces.record_reply(key, user, str(event.get("text") or "")):
            return False  # another replica stored a reply a moment ago: this one is a follow-up
        try:
            await self.client.chat_postEphemeral(
                channel=event["channel"], user=user, thread_ts=event.get("thread_ts"), text=EXPERT_THANKS
            )
        except SlackClientError as exc:
            log.warning("Could not thank the expert %s: %s", user, exc)
        return True
