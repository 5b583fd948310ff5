"""`serve`: the HTTP server plus every chat adapter whose credentials are set, until interrupted.

It also ends when the embedded Weaviate died and could not be restarted (WEAVIATE_RESTART_GIVE_UP_SECONDS):
a process that stays up with a dead store is one that systemd or Kubernetes never restarts.

On SIGTERM a replica behind a load balancer drains before it stops: `/healthz` turns 503 "draining" at
once (readiness false), new Slack events are refused with a 503 (Slack redelivers them, to a ready
replica), and answers in flight get SHUTDOWN_GRACE_SECONDS to finish; those still running then end
with a message saying they were cut short. Then the background jobs are cancelled (each releases its
lease on the way out) and the rest shuts down.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

from configs.config import Settings
from services.chat.contract import AskService
from services.chat.metrics import REGISTRY, MeteredAskService
from services.insights.admin import add_admin_routes
from services.insights.config import InsightsConfig
from services.insights.digest import run_weekly_digest
from services.insights.digest_posting import digest_poster
from services.insights.recording import RecordingAskService
from services.insights.retention import run_retention_periodically
from services.insights.service import insights_for
from services.runtime import ComponentHealth, Runtime, open_runtime
from services.server.health import HealthMetrics, ServerHealth
from services.server.http_app import Handler, bound_port, build_http_app, start_http_server

log = logging.getLogger(__name__)

Drain = Callable[[float], Awaitable[None]]  # an adapter's drain: stop taking work, finish within the grace

HOW_TO_ENABLE = (
    "No chat adapter is configured. Slack: set SLACK_BOT_TOKEN and SLACK_APP_TOKEN (Socket Mode) "
    "or SLACK_SIGNING_SECRET (HTTP events at /slack/events). Discord: set DISCORD_TOKEN. "
    "Meanwhile `python main.py chat` chats in the console (and POST /chatkit answers when "
    "CHATKIT_API_TOKEN is set)."
)


async def run_server(
    settings: Settings, *, stop: asyncio.Event | None = None, started: asyncio.Future[int] | None = None
) -> None:
    """Run until SIGINT/SIGTERM (or `stop` is set), then drain; index DOCS_PATHS in the background on
    first start.

    `started`, when given, receives the HTTP port once the server listens (port 0 picks a free one).
    Raises `WeaviateServerError` when the embedded Weaviate is beyond restarting.
    """
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    # A digest channel without its token fails now, not in a week.
    post_digest = digest_poster(settings) if settings.insights_digest_channel else None
    async with open_runtime(settings) as runtime, AsyncExitStack() as stack:
        health = ServerHealth(runtime)
        background: dict[str, Awaitable[None]] = {}
        routes: dict[str, Handler] = {}
        drains: list[Drain] = []
        await _start_adapters(runtime, stack, routes, background, health, drains)
        app = build_http_app(
            chatkit_server=runtime.chat.server,
            health_checks=health.check,
            chatkit_token=settings.chatkit_api_token,
            extra_routes=routes,
            draining=lambda: health.draining,
        )
        insights = insights_for(runtime)
        add_admin_routes(app, insights)  # 404s unless ADMIN_TOKEN / ADMIN_PASSWORD is set
        # POST /chatkit streams still open when the server closes get the grace period too.
        grace = settings.shutdown_grace_seconds
        http = await start_http_server(app, settings.http_host, settings.http_port, shutdown_timeout=grace)
        stack.push_async_callback(http.cleanup)
        metrics = HealthMetrics(health)
        REGISTRY.register(metrics)
        stack.callback(REGISTRY.unregister, metrics)
        if started is not None:
            started.set_result(bound_port(http) or settings.http_port)
        tasks: list[asyncio.Task[Any]] = []
        for name, job in background.items():
            tasks.append(task := asyncio.create_task(_guard(job), name=f"adapter-{name}"))
            if name == "slack":
                health.watch_task(name, task)
        if await runtime.store.stats() is None:
            log.info("The index is empty: indexing %s in the background", ", ".join(settings.docs_paths))
            tasks.append(runtime.indexer.start_background(on_done=_log_index_result))
        if settings.retention_days > 0:
            retention = run_retention_periodically(runtime.database, InsightsConfig.from_settings(settings))
            tasks.append(asyncio.create_task(retention, name="retention"))
        if post_digest is not None:  # every replica schedules it; one posts it (digest.py)
            tasks.append(asyncio.create_task(run_weekly_digest(insights, post_digest), name="weekly-digest"))
        tasks.append(asyncio.create_task(refresh_sources(runtime), name="source-schedule"))
        store_gave_up = asyncio.create_task(runtime.vector_store_gave_up())
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({store_gave_up, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if stopping.done():
                await _drain(health, drains, grace)
        finally:
            for task in (*tasks, store_gave_up, stopping):
                task.cancel()
            log.info("Shutting down")
            await asyncio.gather(*tasks, store_gave_up, stopping, return_exceptions=True)
            await runtime.indexer.cancel_background()  # a chat-started reindex records and frees its lease
        if store_gave_up.done() and not store_gave_up.cancelled():
            raise store_gave_up.result()  # after the adapters stopped; open_runtime's exit stops the rest


async def _start_adapters(
    runtime: Runtime,
    stack: AsyncExitStack,
    routes: dict[str, Handler],
    background: dict[str, Awaitable[None]],
    health: ServerHealth,
    drains: list[Drain],
) -> None:
    settings = runtime.settings
    if settings.slack_enabled:
        from services.slack.bot import SlackBot

        slack = SlackBot(
            settings,
            answering(runtime, "slack"),
            runtime.indexer,
            runtime.database.claim_event,
            runtime.spaces,
        )
        stack.push_async_callback(slack.close)
        drains.append(slack.drain)
        if settings.slack_signing_secret is not None:
            routes["/slack/events"] = slack.http_handler()
            health.add_adapter("slack", lambda: ComponentHealth(True, "listening"))
            log.info("Slack: HTTP events at /slack/events")
        if settings.slack_app_token is not None:
            background["slack"] = slack.start_socket_mode()  # its health follows the task
            log.info("Slack: Socket Mode")
    if settings.discord_enabled:
        from services.discord.bot import DiscordBot

        discord_bot = DiscordBot(settings, answering(runtime, "discord"), runtime.indexer, runtime.spaces)
        stack.push_async_callback(discord_bot.close)
        background["discord"] = discord_bot.start()
        health.add_adapter("discord", discord_bot.health)  # names the shards this process holds
        log.info("Discord: gateway bot")
    if not settings.slack_enabled and not settings.discord_enabled:
        log.warning(HOW_TO_ENABLE)


async def _drain(health: ServerHealth, drains: list[Drain], grace_seconds: float) -> None:
    """Readiness false first, then the adapters finish (or cut short) what they are answering."""
    health.start_draining()
    log.info("Stopping: /healthz says draining; answers in flight get %.0f s", grace_seconds)
    await asyncio.gather(*(drain(grace_seconds) for drain in drains))


def answering(runtime: Runtime, platform: str) -> AskService:
    """The chat service as an adapter uses it: metered (/metrics) and recorded (`main.py report`)."""
    return RecordingAskService(MeteredAskService(runtime.chat, platform), runtime.database, platform)


async def refresh_sources(runtime: Runtime) -> None:
    """Refresh each source on its own schedule (`services.indexing.schedule`); none by default."""
    from services.indexing.schedule import refresh_on_schedule
    from services.sources.catalog import load_catalog

    settings = runtime.settings
    await refresh_on_schedule(
        lambda names: runtime.indexer.index(names),
        runtime.database.index_runs,
        runtime.database.leases,
        f"schedule:{settings.weaviate_collection}",
        lambda: load_catalog(settings),
        settings.reindex_interval_minutes,
    )


async def _guard(job: Awaitable[None]) -> None:
    """Run an adapter; its failure is logged (and shown in /healthz), the rest of the server goes on."""
    try:
        await job
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("An adapter stopped with an error")
        raise


async def _log_index_result(outcome: object) -> None:
    if isinstance(outcome, BaseException):
        log.error("First indexing failed: %s", outcome)
    else:
        log.info("First indexing done:\n%s", getattr(outcome, "summary", lambda: outcome)())
