"""Ends a call to a server that has gone away in seconds, where the client would wait a minute.

The Weaviate client retries an unavailable gRPC server with backoff (1+2+4+...+32 s, about 63 s)
before it raises, and nothing configures that: a question asked while the server is down would
hang for a minute. A watched call that runs longer than `check_after` seconds gets a readiness
check of the server (one check shared by every call in flight); when the server fails it, or
when the caller knows the server died (`abandon_all`), the call is cancelled and ends in
`CallAbandoned` with the reason. Slow calls to a server that answers are left alone, so long
batch writes are not cut short.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any


class CallAbandoned(Exception):
    """The watched call was cancelled because the server is not answering; the message says why."""


@dataclass(eq=False, slots=True)
class _Call:
    task: asyncio.Task[Any]
    timer: asyncio.TimerHandle | None = None
    reason: str | None = None


class CallWatchdog:
    """Watches calls made inside `watch()` blocks (synchronous, so existing `with` blocks keep working)."""

    def __init__(
        self,
        is_ready: Callable[[], Awaitable[bool]],
        describe_down: Callable[[], str],
        *,
        check_after: float,
        check_timeout: float = 3.0,
    ) -> None:
        """`is_ready()` checks the server; `describe_down()` is the reason given when it fails."""
        self._is_ready = is_ready
        self._describe_down = describe_down
        self.check_after = check_after
        self.check_timeout = check_timeout
        self._calls: dict[asyncio.Task[Any], _Call] = {}
        self._check: asyncio.Task[bool] | None = None

    @contextlib.contextmanager
    def watch(self) -> Iterator[None]:
        """Run the block under watch; it raises `CallAbandoned` when the watchdog gives up on it."""
        task = asyncio.current_task()
        if task is None or task in self._calls:  # nested in a watched block: that one covers it
            yield
            return
        call = _Call(task)
        self._calls[task] = call
        self._arm(call)
        try:
            yield
        except (asyncio.CancelledError, Exception) as exc:
            if call.reason is None:
                raise
            if task.uncancel() > 0 and isinstance(exc, asyncio.CancelledError):
                raise  # cancelled by someone else as well: that cancellation wins
            raise CallAbandoned(call.reason) from None
        else:
            if call.reason is not None:
                task.uncancel()  # the result arrived before the cancellation did
        finally:
            del self._calls[task]
            if call.timer is not None:
                call.timer.cancel()

    def abandon_all(self, reason: str) -> None:
        """End every watched call now (the server is known to be gone)."""
        for call in list(self._calls.values()):
            self._abandon(call, reason)

    def close(self) -> None:
        if self._check is not None:
            self._check.cancel()

    def _arm(self, call: _Call) -> None:
        call.timer = asyncio.get_running_loop().call_later(self.check_after, self._start_check, call)

    def _start_check(self, call: _Call) -> None:
        call.timer = None
        if self._check is None or self._check.done():
            self._check = asyncio.ensure_future(self._ready_within_timeout())
        self._check.add_done_callback(functools.partial(self._checked, call))

    async def _ready_within_timeout(self) -> bool:
        try:
            async with asyncio.timeout(self.check_timeout):
                return await self._is_ready()
        except Exception:
            return False

    def _checked(self, call: _Call, check: asyncio.Task[bool]) -> None:
        if self._calls.get(call.task) is not call:
            return  # the call ended meanwhile
        if not check.cancelled() and check.result():
            self._arm(call)
        else:
            self._abandon(call, self._describe_down())

    @staticmethod
    def _abandon(call: _Call, reason: str) -> None:
        if call.reason is None:
            call.reason = reason
            call.task.cancel()
