"""The `/reindex` slash command: admin check, background run, throttled progress, final report.

Slack wants the command acknowledged within 3 seconds, so the run starts in the background and
reports through the command's `response_url`. A `response_url` accepts only five messages in 30
minutes, so progress messages are spaced further apart each time and one use stays for the report;
when the URL no longer works the report goes to the user as a direct message instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from configs.config import Settings
from services.indexing.contract import IndexAlreadyRunning, IndexProgress, IndexResult, IndexRunFailed
from services.slack.blocks import escape_mrkdwn

if TYPE_CHECKING:
    from services.indexer import Indexer

log = logging.getLogger(__name__)

ADMIN_CHECK_TIMEOUT = 2.0  # seconds for users.info, within Slack's 3-second acknowledgement window
PROGRESS_MESSAGES = 3  # of the five response_url uses; the report needs one more
AdminCheck = Callable[[AsyncWebClient, str], Awaitable[tuple[bool, str]]]


def help_text(command: str) -> str:
    return (
        f"*{command}* re-reads the documents and updates the search index.\n"
        f"• `{command}`: incremental (only new, changed or deleted documents)\n"
        f"• `{command} full`: rebuild the whole index (the old one keeps serving until it is done)\n"
        f"• `{command} status`: is a reindex running, and how far is it?\n"
        f"• `{command} help`: this text\n"
        "Only the admins set in SLACK_ADMIN_USER_IDS (or, when that is empty, workspace admins and owners) "
        "may start a reindex."
    )


class ReindexCommand:
    """Handles one slash command name; one run at a time is enforced by the `Indexer`."""

    def __init__(self, settings: Settings, indexer: Indexer, *, progress_interval: float = 5.0) -> None:
        self.settings = settings
        self.indexer = indexer
        self.progress_interval = progress_interval
        self.command = settings.slack_reindex_command

    async def handle(
        self, ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        """Bolt listener: every branch acknowledges exactly once, with the answer in the ack."""
        option = str(command.get("text") or "").strip().lower()
        user_id = str(command.get("user_id") or "")
        if option in {"help", "?"}:
            await ack(text=help_text(self.command))
            return
        if option not in {"", "full", "status"}:
            await ack(text=f"I don't know `{escape_mrkdwn(option)}`.\n" + help_text(self.command))
            return
        if option == "status":
            await ack(text=self.status_text())
            return
        allowed, reason = await self.is_admin(client, user_id)
        if not allowed:
            await ack(text=f"Sorry, only admins can reindex the documents: {reason}")
            return
        full = option == "full"
        reporter = _Reporter(respond, client, user_id, self.progress_interval)
        try:
            self.indexer.start_background(
                full=full,
                on_progress=reporter.progress,
                progress_interval=self.progress_interval,
                on_done=reporter.done,
            )
        except IndexAlreadyRunning as exc:
            await ack(text=f"A reindex is already running: {escape_mrkdwn(exc.progress.describe())}")
            return
        kind = "Full rebuild" if full else "Incremental reindex"
        roots = ", ".join(f"`{escape_mrkdwn(path)}`" for path in self.settings.docs_paths)
        await ack(text=f"{kind} started for {roots}. I'll post progress here and a report when it is done.")

    def status_text(self) -> str:
        progress = self.indexer.progress
        if progress is None:
            return f"No reindex is running. Start one with `{self.command}` or `{self.command} full`."
        return f"A reindex is running: {escape_mrkdwn(progress.describe())}"

    async def is_admin(self, client: AsyncWebClient, user_id: str) -> tuple[bool, str]:
        """SLACK_ADMIN_USER_IDS when set; otherwise workspace admins and owners per `users.info`."""
        if self.settings.slack_admin_user_ids:
            if user_id in self.settings.slack_admin_user_ids:
                return True, ""
            return False, "you are not in this bot's admin list (SLACK_ADMIN_USER_IDS)."
        try:
            async with asyncio.timeout(ADMIN_CHECK_TIMEOUT):
                response = await client.users_info(user=user_id)
        except (SlackClientError, TimeoutError) as exc:
            log.warning("users.info failed for the reindex admin check: %s", exc)
            return False, "I could not check your role with Slack (users.info failed); please try again."
        user = response.get("user") or {}
        if user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"):
            return True, ""
        return False, "it is limited to workspace admins and owners."


class _Reporter:
    """Progress and the final report of one run, within the response_url's five uses."""

    def __init__(self, respond: AsyncRespond, client: AsyncWebClient, user_id: str, interval: float) -> None:
        self.respond = respond
        self.client = client
        self.user_id = user_id
        self.interval = interval
        self.sent = 0
        self.next_at = time.monotonic() + interval

    async def progress(self, progress: IndexProgress) -> None:
        """Post at most PROGRESS_MESSAGES updates, each wait twice as long as the one before."""
        now = time.monotonic()
        if self.sent >= PROGRESS_MESSAGES or now < self.next_at:
            return
        self.sent += 1
        self.next_at = now + self.interval * 2**self.sent
        await self._send(f"Reindex progress: {escape_mrkdwn(progress.describe())}", report=False)

    async def done(self, outcome: IndexResult | BaseException) -> None:
        if isinstance(outcome, IndexResult):
            icon = ":white_check_mark:" if outcome.failed == 0 and outcome.error is None else ":warning:"
            text = f"{icon} {escape_mrkdwn(outcome.summary())}"
        elif isinstance(outcome, IndexRunFailed):
            text = f":x: {escape_mrkdwn(str(outcome))}\n{escape_mrkdwn(outcome.result.summary())}"
        else:
            text = f":x: The reindex failed: {escape_mrkdwn(f'{type(outcome).__name__}: {outcome}')}"
        await self._send(text, report=True)

    async def _send(self, text: str, *, report: bool) -> None:
        try:
            response = await self.respond(text=text, response_type="ephemeral", replace_original=False)
            if response.status_code == 200:
                return
            reason = f"HTTP {response.status_code}"
        except Exception as exc:  # the webhook client raises aiohttp/OS errors
            reason = f"{type(exc).__name__}: {exc}"
        log.warning("response_url refused a reindex message (%s)", reason)
        if report:  # the report must arrive: a direct message from the bot instead
            try:
                await self.client.chat_postMessage(channel=self.user_id, text=text)
            except SlackClientError:
                log.exception("Could not deliver the reindex report to %s", self.user_id)
