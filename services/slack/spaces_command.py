"""`/docs-bot` (SLACK_SPACES_COMMAND): see and change the current channel's spaces from Slack.

`show` is for anyone (it says where each setting comes from, so "why does it answer from the wrong
docs?" has an answer in the chat); `use`, `mode` and `reset` are for the admins `/reindex` allows,
checked the same way. The change is stored in the database, so every replica applies it to the next
message. Replies are ephemeral: a channel does not need to watch its settings being changed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.web.async_client import AsyncWebClient

from configs.config import Settings
from configs.errors import UserFacingError
from services.chat.replies import describe_error
from services.slack.blocks import escape_mrkdwn
from services.slack.spaces import command_place
from services.spaces.directory import MODES, Spaces
from services.spaces.policy import Place, Policy

log = logging.getLogger(__name__)

AdminCheck = Callable[[AsyncWebClient, str], Awaitable[str | None]]  # None: may change settings


def help_text(command: str, spaces: list[str]) -> str:
    return (
        f"*{command}* shows and changes which docs this channel answers from, and how.\n"
        f"• `{command} show`: the current settings, and where each comes from\n"
        f"• `{command} use SPACE...`: answer from these spaces ({', '.join(spaces)})\n"
        f"• `{command} mode {'|'.join(MODES)}`: answer when mentioned, every question, or only in threads\n"
        f"• `{command} reset`: back to the sources file's settings\n"
        "Changing a setting is limited to the admins who may run the reindex command."
    )


class SpacesCommand:
    """Handles one slash command name for one workspace's channels."""

    def __init__(self, settings: Settings, spaces: Spaces, is_admin: AdminCheck) -> None:
        self.command = settings.slack_spaces_command
        self.spaces = spaces
        self.is_admin = is_admin

    async def handle(self, ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient) -> None:
        """Bolt listener: one ephemeral acknowledgement is the whole reply (Slack allows 3 seconds)."""
        words = str(command.get("text") or "").split()
        place = command_place(command)
        user = str(command.get("user_id") or "")
        try:
            text = await self.reply(place, user, words, client)
        except UserFacingError as exc:
            text = escape_mrkdwn(str(exc))
        except Exception as exc:
            log.exception("%s failed in %s", self.command, place.key)
            text = f"Sorry, that did not work ({escape_mrkdwn(describe_error(exc))}). Please try again."
        await ack(text=text, response_type="ephemeral")

    async def reply(self, place: Place, user: str, words: list[str], client: AsyncWebClient) -> str:
        """The mrkdwn answer to `words` in `place`; `SpaceError` (a UserFacingError) for a bad name."""
        action = words[0].lower() if words else "show"
        if action == "show":
            return self.describe(await self.spaces.policy(place), "Settings here")
        if action not in ("use", "mode", "reset"):
            unknown = "" if action == "help" else f"I don't know `{escape_mrkdwn(action)}`.\n"
            return unknown + help_text(self.command, await self.spaces.names())
        refusal = await self.is_admin(client, user)
        if refusal is not None:
            return f"Sorry, only admins can change this channel's settings: {refusal}"
        if action == "use":
            policy = await self.spaces.use(place, words[1:], by=user)
        elif action == "mode":
            if len(words) != 2:
                return f"Name one mode: `{self.command} mode {'|'.join(MODES)}`."
            policy = await self.spaces.set_mode(place, words[1].lower(), by=user)
        else:
            policy = await self.spaces.reset(place)
            return self.describe(policy, "Back to the sources file's settings")
        return self.describe(policy, "Done. Settings here now")

    def describe(self, policy: Policy, title: str) -> str:
        where = "direct messages" if policy.place.is_dm else f"<#{policy.place.channel}>"
        lines = [f"*{title}* ({where}):", *(f"• {escape_mrkdwn(line)}" for line in policy.describe())]
        return "\n".join(lines)
