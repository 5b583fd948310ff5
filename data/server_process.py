"""Keeping the embedded server from outliving the bot, and from blocking the next start if it did.

Two guards, because neither suffices alone: on Linux the server is asked to die with its parent
(`PR_SET_PDEATHSIG`, which covers SIGKILL and crashes of the bot), and every start records the
server in a pid file in its data directory, so that a start that finds a server left behind by a
bot that is gone (another OS, a server that ignored the signal) stops it instead of failing with
"port already in use". A server whose bot is still alive is not touched: that bot uses the data.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from data.errors import WeaviateServerError

logger = logging.getLogger(__name__)

PID_FILE_NAME = "weaviate-server.pid"
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_KILL_WAIT_SECONDS = 10.0


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child get SIGTERM when the thread that started it ends (Linux).

    SIGTERM, not SIGKILL: Weaviate then shuts down cleanly (its data stays consistent). The signal
    follows the *thread* that forked: start the server from the event loop's thread, which lives
    as long as the server should. None where the call does not exist (other systems).
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # libc's, already loaded into this process
    parent = os.getpid()

    def set_parent_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the call: the signal will never come
            os._exit(1)

    return set_parent_death_signal


@dataclass(frozen=True, slots=True)
class ServerRecord:
    """Who runs the server on a data directory: the server's pid and the bot process that owns it."""

    server_pid: int
    owner_pid: int


class ServerPidFile:
    """`weaviate-server.pid` in the server's data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / PID_FILE_NAME

    def record(self, server_pid: int, owner_pid: int | None = None) -> None:
        """Note that `server_pid` (owned by `owner_pid`, default this process) serves this directory."""
        owner = os.getpid() if owner_pid is None else owner_pid
        self.path.write_text(json.dumps({"server_pid": server_pid, "owner_pid": owner}) + "\n")

    def read(self) -> ServerRecord | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return ServerRecord(int(data["server_pid"]), int(data["owner_pid"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def clear(self, server_pid: int) -> None:
        """Remove the file if it still names `server_pid` (a newer server may have replaced it)."""
        record = self.read()
        if record is not None and record.server_pid == server_pid:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def stop_left_over_server(self, grace: float) -> None:
        """Stop a server a previous bot left running on this directory (blocking: run it in a thread).

        Raises `WeaviateServerError` when the server's bot is still running: two servers on one
        data directory would corrupt it, and stopping the other bot's server would break that bot.
        """
        record = self.read()
        if record is None:
            return
        if not _serves(record.server_pid, self.data_dir):
            self.path.unlink(missing_ok=True)  # the server is gone; the file is all that is left
            return
        if _alive(record.owner_pid) and _parent_of(record.server_pid) == record.owner_pid:
            raise WeaviateServerError(
                f"Another bot process (pid {record.owner_pid}) runs the embedded Weaviate on "
                f"{self.data_dir}. Stop it first, or give this one its own DATA_DIR."
            )
        logger.warning(
            "Stopping the Weaviate server (pid %d) that a previous run (pid %d) left on %s",
            record.server_pid,
            record.owner_pid,
            self.data_dir,
        )
        _terminate(record.server_pid, grace)
        self.path.unlink(missing_ok=True)


def _serves(pid: int, data_dir: Path) -> bool:
    """Whether `pid` is a live Weaviate server on `data_dir` (not a process that reused the pid)."""
    wanted = f"PERSISTENCE_DATA_PATH={data_dir.resolve()}".encode()
    try:
        environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:  # gone, not ours to read, or no /proc: never stop what we cannot identify
        return False
    return wanted in environment and _alive(pid)


def _alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _state(pid) not in ("Z", "X")


def _stat_fields(pid: int) -> list[str]:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return []
    return stat.rpartition(")")[2].split()  # after "(command name)", which may contain spaces


def _state(pid: int) -> str:
    fields = _stat_fields(pid)
    return fields[0] if fields else ""


def _parent_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if len(fields) > 1 else None


def _terminate(pid: int, grace: float) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; returns once the process is gone."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, _KILL_WAIT_SECONDS)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not _alive(pid):
            return
        logger.warning("The left-over Weaviate server (pid %d) is still running after %s", pid, sig.name)
    raise WeaviateServerError(
        f"Could not stop the Weaviate server (pid {pid}) a previous run left behind; stop it by hand."
    )
