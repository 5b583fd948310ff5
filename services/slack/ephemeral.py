"""Which reply a question gets, and the answer only the asker sees (a space's `ephemeral` setting):
`chat.postEphemeral`, in one piece.

Slack cannot stream or update an ephemeral message, so the answer is posted once it is complete,
and there is no working indicator: a 👀 on the question or a status in the thread would tell the
channel what the asker wanted to keep to themselves.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from configs.config import Settings
from services.chat.contract import Answer
from services.slack.blocks import HumanOffer, answer_messages, failure_text, notification_text
from services.slack.reply import ThreadReply
from services.slack.spaces import slack_experts
from services.spaces.policy import Policy

log = logging.getLogger(__name__)


class EphemeralReply(ThreadReply):
    """`ThreadReply`'s lifecycle (timeouts, failures as messages), shown to one user."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        channel: str,
        thread_ts: str,
        in_thread: bool,
        message_ts: str,
        team_id: str | None,
        user_id: str,
        idle_timeout: float,
        human: HumanOffer | None = None,
    ) -> None:
        super().__init__(
            client,
            channel=channel,
            thread_ts=thread_ts,
            message_ts=message_ts,
            team_id=team_id,
            user_id=user_id,
            idle_timeout=idle_timeout,
            human=human,
        )
        self.asker = user_id
        # A question asked at the top of the channel is answered there: a thread made of ephemeral
        # messages only shows no replies, so the asker would not find it.
        self.post_thread_ts = thread_ts if in_thread else None

    async def show_working(self, status: str = "", loading: str | None = None) -> None:
        """Nothing: anything visible would show the channel that the user asked."""

    async def _flush(self) -> None:
        """Nothing until the end: an ephemeral message cannot be updated as the text grows."""

    async def _finish(self, answer: Answer) -> None:
        for blocks in answer_messages(answer, self.human):  # the engine's final text, as in a thread
            await self._post_ephemeral(blocks, notification_text(answer.text))
        self.first_text_at = time.monotonic()

    async def fail(self, message: str) -> None:
        try:
            await self._post_ephemeral(None, failure_text(message))
        except Exception:
            log.exception("Could not post the failure message to %s in %s", self.asker, self.channel)

    async def _post_ephemeral(self, blocks: list[dict[str, Any]] | None, text: str) -> None:
        await self.client.chat_postEphemeral(
            channel=self.channel, user=self.asker, thread_ts=self.post_thread_ts, blocks=blocks, text=text
        )


def reply_for(
    client: AsyncWebClient,
    settings: Settings,
    event: dict[str, Any],
    team: str,
    thread_ts: str,
    policy: Policy | None = None,
    question: str = "",
) -> ThreadReply:
    """A streamed reply in the thread, or one only the asker sees (`ephemeral`, outside DMs: a DM
    is private already). Without a policy (not resolved yet): the thread, with no "Ask a human"."""
    idle_timeout = settings.llm_timeout_seconds + 30
    human, ephemeral = None, False
    if policy is not None and not policy.place.is_dm:
        human = HumanOffer(question, thread_ts) if slack_experts(policy) else None
        ephemeral = policy.ephemeral
    user = event.get("user")
    if ephemeral and user:
        return EphemeralReply(
            client,
            channel=event["channel"],
            thread_ts=thread_ts,
            in_thread="thread_ts" in event,
            message_ts=event["ts"],
            team_id=team,
            user_id=user,
            idle_timeout=idle_timeout,
            human=human,
        )
    return ThreadReply(
        client,
        channel=event["channel"],
        thread_ts=thread_ts,
        message_ts=event["ts"],
        team_id=team,
        user_id=user,
        idle_timeout=idle_timeout,
        human=human,
    )
