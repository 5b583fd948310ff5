"""Keeps the embedded Weaviate running: a server that dies is started again on its data on disk.

Without this a killed or crashed server stays dead while the bot stays up, so no supervisor ever
restarts anything. Here the death is noticed at once (the child's exit), callers are told why the
store is unavailable (`unavailable_reason`) instead of waiting on the client's retries, restarts
back off (0, 1, 2, 4 ... 30 s), and after `give_up_after` seconds without a running server the
supervisor stops trying: `wait_gave_up` returns the error, so `serve` can exit non-zero and let
systemd or Kubernetes act.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from data.errors import WeaviateServerError
from data.weaviate_server import EmbeddedWeaviate

logger = logging.getLogger(__name__)

ServerState = Literal["starting", "running", "restarting", "failed", "stopped"]
FIRST_RETRY_DELAY = 1.0
MAX_RETRY_DELAY = 30.0
# A server that dies sooner than this after a restart is crash-looping: its restarts keep backing
# off and count towards giving up, instead of starting a fresh outage each time.
STABLE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """The embedded server as `/healthz` and the metrics report it."""

    state: ServerState
    pid: int | None
    restarts: int  # successful restarts since the bot started
    down_seconds: float | None  # how long it has been down, while it is
    last_exit: str | None  # how it last died, e.g. "was killed by SIGKILL"
    reason: str | None  # why it cannot be used now (`unavailable_reason`); None while it runs

    @property
    def healthy(self) -> bool:
        return self.state == "running"


def describe_exit(code: int) -> str:
    """`-9` -> "was killed by SIGKILL", `1` -> "exited with code 1"."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


class SupervisedWeaviate:
    """An `EmbeddedWeaviate` that is started again whenever it exits, until `stop()`."""

    def __init__(
        self,
        server: EmbeddedWeaviate,
        *,
        give_up_after: float,
        on_down: Callable[[str], None],
        on_up: Callable[[], Awaitable[None]],
    ) -> None:
        """`on_down(reason)` runs as soon as the server is found dead; `on_up()` after a restart."""
        self.server = server
        self.give_up_after = give_up_after
        self._on_down = on_down
        self._on_up = on_up
        self._state: ServerState = "stopped"
        self._watcher: asyncio.Task[None] | None = None
        self._restarts = 0
        self._up_since: float | None = None
        self._down_since: float | None = None
        self._outage_since = 0.0
        self._delay = 0.0
        self._last_exit: str | None = None
        self._problem: str | None = None
        self._failure: WeaviateServerError | None = None
        self._gave_up = asyncio.Event()

    async def start(self) -> None:
        """Start the server; a failure here is raised (there is nothing to supervise yet)."""
        self._state = "starting"
        try:
            await self.server.start()
        except BaseException:
            self._state = "stopped"
            raise
        self._came_up()
        self._watcher = asyncio.create_task(self._watch(), name="embedded-weaviate-supervisor")

    async def stop(self) -> None:
        """Stop supervising, then stop the server; safe to call twice."""
        self._state = "stopped"
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        await self.server.stop()

    def status(self) -> ServerStatus:
        down = time.monotonic() - self._down_since if self._down_since is not None else None
        pid = self.server.pid if self.server.running else None
        reason = self.unavailable_reason()
        return ServerStatus(self._state, pid, self._restarts, down, self._last_exit, reason)

    def unavailable_reason(self) -> str | None:
        """Why the server cannot be used right now, in words for the user; None while it runs."""
        if self._state in ("running", "starting"):
            return None
        if self._state == "stopped":
            return "The embedded Weaviate server has been stopped."
        if self._state == "failed":
            return str(self._failure)
        down = time.monotonic() - self._down_since if self._down_since is not None else 0.0
        retry = f" Its last restart failed: {self._problem}" if self._problem else ""
        return (
            f"The embedded Weaviate server {self._last_exit} {down:.0f}s ago and is being restarted "
            f"(its data is kept). Try again in a few seconds.{retry}"
        )

    async def wait_gave_up(self) -> WeaviateServerError:
        """Wait until the supervisor gives up on the server; the error says why."""
        await self._gave_up.wait()
        assert self._failure is not None
        return self._failure

    # -- supervision --------------------------------------------------------------------------------
    def _came_up(self) -> None:
        self._state = "running"
        self._up_since = time.monotonic()
        self._down_since = None
        self._problem = None

    async def _watch(self) -> None:
        while True:
            code = await self.server.wait_exited()
            self._went_down(code)
            if not await self._bring_back():
                return
            try:  # still "restarting" meanwhile: no call may use the old, backing-off client
                await self._on_up()
            except Exception:  # the next call connects; supervision must go on
                logger.exception("Reconnecting to the restarted Weaviate server failed")
            down = time.monotonic() - (self._down_since or time.monotonic())
            self._restarts += 1
            self._came_up()
            logger.warning(
                "The embedded Weaviate server runs again after %.1fs down (restart %d)", down, self._restarts
            )

    def _went_down(self, code: int) -> None:
        now = time.monotonic()
        up_for = now - self._up_since if self._up_since is not None else None
        crash_loop = self._restarts > 0 and up_for is not None and up_for < STABLE_SECONDS
        if not crash_loop:
            self._outage_since, self._delay = now, 0.0
        self._state = "restarting"
        self._down_since = now
        self._last_exit = describe_exit(code)
        logger.error(
            "The embedded Weaviate server %s; restarting it on its data in %s (its log: %s)",
            self._last_exit,
            self.server.data_dir,
            self.server.log_path,
        )
        self._on_down(self.unavailable_reason() or "")

    async def _bring_back(self) -> bool:
        """Restart with backoff; False once `give_up_after` has passed without a running server."""
        while True:
            remaining = self.give_up_after - (time.monotonic() - self._outage_since)
            if remaining <= 0:
                self._give_up()
                return False
            if self._delay:
                await asyncio.sleep(min(self._delay, remaining))
            self._delay = min(max(self._delay * 2, FIRST_RETRY_DELAY), MAX_RETRY_DELAY)
            try:
                await self.server.start()
            except WeaviateServerError as exc:
                self._problem = str(exc)
                logger.error("Restarting the embedded Weaviate server failed: %s", exc)
                continue
            return True

    def _give_up(self) -> None:
        self._state = "failed"
        self._failure = WeaviateServerError(
            f"The embedded Weaviate server {self._last_exit} and could not be restarted within "
            f"{self.give_up_after:g}s (WEAVIATE_RESTART_GIVE_UP_SECONDS): {self._problem or 'it kept dying'} "
            f"See its log: {self.server.log_path}"
        )
        logger.error("%s", self._failure)
        self._on_down(str(self._failure))
        self._gave_up.set()
