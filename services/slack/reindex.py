"""`/reindex` in Slack: the shared flow (services.indexing.reindex_flow) in Slack's words and channels.

Slack wants the command acknowledged within 3 seconds, so the flow's reply is the acknowledgement
and the run reports later through the command's `response_url`. A `response_url` accepts only five
messages in 30 minutes, so the flow spaces progress further apart each time and one use stays for
the report; when the URL no longer works the report goes to the user as a direct message instead.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, assert_never

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from configs.config import Settings
from services.chat.replies import describe_error
from services.indexing.contract import Reindexer
from services.indexing.reindex_flow import (
    AlreadyRunning,
    Help,
    Progress,
    ProgressPacing,
    Refused,
    ReindexFlow,
    ReindexReply,
    ReindexReport,
    RunUpdate,
    Started,
    Status,
    UnknownMode,
    UnknownSource,
)
from services.slack.blocks import escape_mrkdwn
from services.slack.spaces import command_place
from services.spaces.directory import Spaces

log = logging.getLogger(__name__)

ADMIN_CHECK_TIMEOUT = 2.0  # seconds for users.info, within Slack's 3-second acknowledgement window
PROGRESS_MESSAGES = 3  # of the five response_url uses; the report needs one more
REPORT_ICONS = {"ok": ":white_check_mark:", "warning": ":warning:", "failed": ":x:"}


def help_text(command: str) -> str:
    return (
        f"*{command}* re-reads the documents and updates the search index.\n"
        f"• `{command}`: incremental (only new, changed or deleted documents of this channel's spaces)\n"
        f"• `{command} full`: rebuild the whole index (the old one keeps serving until it is done)\n"
        f"• `{command} SOURCE...` (or `{command} full SOURCE...`): only these sources\n"
        f"• `{command} status`: is a reindex running, and how does each source stand?\n"
        f"• `{command} help`: this text\n"
        "Only the admins set in SLACK_ADMIN_USER_IDS (or, when that is empty, workspace admins and owners) "
        "may start a reindex."
    )


class ReindexCommand:
    """Handles one slash command name; anyone may ask for the status, admins start runs."""

    def __init__(
        self, settings: Settings, reindexer: Reindexer, spaces: Spaces, *, progress_interval: float = 5.0
    ) -> None:
        self.settings = settings
        self.spaces = spaces
        self.command = settings.slack_reindex_command
        self.flow = ReindexFlow(reindexer, ProgressPacing(progress_interval, limit=PROGRESS_MESSAGES))

    async def handle(
        self, ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        """Bolt listener: the flow acknowledges exactly once, with its reply in the ack. Without
        source names, an incremental run refreshes the sources of the channel's spaces."""
        user_id = str(command.get("user_id") or "")
        try:
            scope = (await self.spaces.policy(command_place(command))).sources
        except Exception as exc:  # an unreadable sources file, the database: say so, start nothing
            log.exception("Could not resolve the spaces of %s", command.get("channel_id"))
            await ack(text=f"I could not read this channel's spaces ({escape_mrkdwn(describe_error(exc))}).")
            return

        async def check_admin() -> str | None:
            return await self.is_admin(client, user_id)

        output = _SlackOutput(self, ack, respond, client, user_id)
        text = str(command.get("text") or "")
        await self.flow.handle(text, check_admin=check_admin, output=output, scope=scope)

    async def is_admin(self, client: AsyncWebClient, user_id: str) -> str | None:
        """SLACK_ADMIN_USER_IDS when set; otherwise workspace admins and owners per `users.info`.

        None when the user may reindex, else why not.
        """
        if self.settings.slack_admin_user_ids:
            if user_id in self.settings.slack_admin_user_ids:
                return None
            return "you are not in this bot's admin list (SLACK_ADMIN_USER_IDS)."
        try:
            async with asyncio.timeout(ADMIN_CHECK_TIMEOUT):
                response = await client.users_info(user=user_id)
        except (SlackClientError, TimeoutError) as exc:
            log.warning("users.info failed for the reindex admin check: %s", exc)
            return "I could not check your role with Slack (users.info failed); please try again."
        user = response.get("user") or {}
        if user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"):
            return None
        return "it is limited to workspace admins and owners."

    def reply_text(self, message: ReindexReply) -> str:
        """The acknowledgement's mrkdwn for the flow's reply."""
        match message:
            case Help():
                return help_text(self.command)
            case UnknownMode(option=option, known=known):
                return (
                    f"I don't know `{escape_mrkdwn(option)}`.\n" + help_text(self.command) + _sources(known)
                )
            case UnknownSource(names=names, known=known):
                return f"No source is called {_names(names)}." + _sources(known)
            case Status(progress=progress, sources=sources):
                if progress is None:
                    text = f"No reindex is running. Start one with `{self.command}` or `{self.command} full`."
                else:
                    text = f"A reindex is running: {escape_mrkdwn(progress.describe())}"
                return text + "".join(f"\n• {escape_mrkdwn(line)}" for line in sources)
            case AlreadyRunning(progress=progress):
                return f"A reindex is already running: {escape_mrkdwn(progress.describe())}"
            case Refused(reason=reason):
                return f"Sorry, only admins can reindex the documents: {reason}"
            case Started(full=full, sources=sources):
                kind = "Full rebuild" if full else "Incremental reindex"
                then = "I'll post progress here and a report when it is done."
                return f"{kind} started for {_names(sources)}. {then}"
            case _:
                assert_never(message)


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(f"`{escape_mrkdwn(name)}`" for name in names) or "every source"


def _sources(known: tuple[str, ...]) -> str:
    return f"\nSources: {_names(known)}." if known else ""


def update_text(message: RunUpdate) -> str:
    """The mrkdwn of a progress update or of the final report."""
    if isinstance(message, Progress):
        return f"Reindex progress: {escape_mrkdwn(message.progress.describe())}"
    text = f"{REPORT_ICONS[message.level]} {escape_mrkdwn(message.error or message.summary)}"
    if message.error and message.summary:
        text += f"\n{escape_mrkdwn(message.summary)}"
    return text


class _SlackOutput:
    """One command's channels: the ack for the reply, the response_url (or a DM) for updates."""

    def __init__(
        self,
        command: ReindexCommand,
        ack: AsyncAck,
        respond: AsyncRespond,
        client: AsyncWebClient,
        user_id: str,
    ) -> None:
        self.command = command
        self.ack = ack
        self.respond = respond
        self.client = client
        self.user_id = user_id

    async def reply(self, message: ReindexReply) -> None:
        await self.ack(text=self.command.reply_text(message))

    async def update(self, message: RunUpdate) -> None:
        text = update_text(message)
        try:
            response = await self.respond(text=text, response_type="ephemeral", replace_original=False)
            if response.status_code == 200:
                return
            reason = f"HTTP {response.status_code}"
        except Exception as exc:  # the webhook client raises aiohttp/OS errors
            reason = f"{type(exc).__name__}: {exc}"
        log.warning("response_url refused a reindex message (%s)", reason)
        if isinstance(message, ReindexReport):  # the report must arrive: a direct message instead
            try:
                await self.client.chat_postMessage(channel=self.user_id, text=text)
            except SlackClientError:
                log.exception("Could not deliver the reindex report to %s", self.user_id)
