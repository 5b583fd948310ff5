"""`serve`: the HTTP server plus every chat adapter whose credentials are set, until interrupted."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable
from contextlib import AsyncExitStack
from typing import Any

from configs.config import Settings
from services.chat.metrics import MeteredAskService
from services.runtime import Runtime, open_runtime
from services.server.http_app import Handler, bound_port, build_http_app, start_http_server

log = logging.getLogger(__name__)

HOW_TO_ENABLE = (
    "No chat adapter is configured. Slack: set SLACK_BOT_TOKEN and SLACK_APP_TOKEN (Socket Mode) "
    "or SLACK_SIGNING_SECRET (HTTP events at /slack/events). Discord: set DISCORD_TOKEN. "
    "Meanwhile the ChatKit endpoint answers at POST /chatkit, and `python main.py chat` chats in the console."
)


async def run_server(
    settings: Settings, *, stop: asyncio.Event | None = None, started: asyncio.Future[int] | None = None
) -> None:
    """Run until SIGINT/SIGTERM (or `stop` is set); index DOCS_PATHS in the background on first start.

    `started`, when given, receives the HTTP port once the server listens (port 0 picks a free one).
    """
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    async with open_runtime(settings) as runtime, AsyncExitStack() as stack:
        background: list[Awaitable[None]] = []
        routes: dict[str, Handler] = {}
        await _start_adapters(runtime, stack, routes, background)
        app = build_http_app(
            chatkit_server=runtime.chat.server,
            health_checks=runtime.health,
            chatkit_token=settings.chatkit_api_token,
            extra_routes=routes,
        )
        http = await start_http_server(app, settings.http_host, settings.http_port)
        stack.push_async_callback(http.cleanup)
        if started is not None:
            started.set_result(bound_port(http) or settings.http_port)
        tasks: list[asyncio.Task[Any]] = [asyncio.create_task(_guard(job)) for job in background]
        if await runtime.store.stats() is None:
            log.info("The index is empty: indexing %s in the background", ", ".join(settings.docs_paths))
            tasks.append(runtime.indexer.start_background(on_done=_log_index_result))
        if settings.reindex_interval_minutes > 0:
            tasks.append(
                asyncio.create_task(refresh_periodically(runtime, settings.reindex_interval_minutes * 60))
            )
        await stop.wait()
        log.info("Shutting down")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _start_adapters(
    runtime: Runtime, stack: AsyncExitStack, routes: dict[str, Handler], background: list[Awaitable[None]]
) -> None:
    settings = runtime.settings
    if settings.slack_enabled:
        from services.slack.bot import SlackBot

        slack = SlackBot(
            settings, MeteredAskService(runtime.chat, "slack"), runtime.indexer, runtime.database.claim_event
        )
        stack.push_async_callback(slack.close)
        if settings.slack_signing_secret is not None:
            routes["/slack/events"] = slack.http_handler()
            log.info("Slack: HTTP events at /slack/events")
        if settings.slack_app_token is not None:
            background.append(slack.start_socket_mode())
            log.info("Slack: Socket Mode")
    if settings.discord_enabled:
        from services.discord.bot import DiscordBot

        discord_bot = DiscordBot(settings, MeteredAskService(runtime.chat, "discord"), runtime.indexer)
        stack.push_async_callback(discord_bot.close)
        background.append(discord_bot.start())
        log.info("Discord: gateway bot")
    if not settings.slack_enabled and not settings.discord_enabled:
        log.warning(HOW_TO_ENABLE)


async def refresh_periodically(runtime: Runtime, interval_seconds: float) -> None:
    """Keep the index fresh: an incremental run every interval (skipped while another run is going)."""
    from services.indexer import IndexAlreadyRunning

    while True:
        await asyncio.sleep(interval_seconds)
        try:
            result = await runtime.indexer.index()
        except IndexAlreadyRunning:
            continue
        except Exception as exc:  # the next interval tries again; the previous index keeps serving
            log.error("Scheduled reindex failed: %s", exc)
            continue
        if result.added or result.updated or result.deleted or result.failed:
            log.info("Scheduled reindex:\n%s", result.summary())


async def _guard(job: Awaitable[None]) -> None:
    """Run an adapter; log its failure instead of taking the whole server down."""
    try:
        await job
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("An adapter stopped with an error")


async def _log_index_result(outcome: object) -> None:
    if isinstance(outcome, BaseException):
        log.error("First indexing failed: %s", outcome)
    else:
        log.info("First indexing done:\n%s", getattr(outcome, "summary", lambda: outcome)())
