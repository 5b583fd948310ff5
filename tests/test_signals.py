"""A CLI command that is killed or terminated takes its embedded Weaviate with it.

Otherwise the orphan keeps the ports and every later command fails with "port already in use".
The command is `ask` waiting on a language model that never answers (a real socket that accepts
and stays silent), so it is caught mid-work with its server running.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bot_process import bot_environment, children, kill_all, output_of, start_bot, wait_until_gone

from data.server_process import PID_FILE_NAME


@contextmanager
def ask_waiting_on_the_model(
    tmp_path: Path, env: dict[str, str]
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`ask` started and blocked on a model that accepts the request and never answers (a real
    socket): its embedded Weaviate runs. Yields (the `ask` process, the server's pid)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.5)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        env = {**env, "OPENAI_BASE_URL": url, "OPENAI_API_KEY": "unused", "LLM_TIMEOUT_SECONDS": "300"}
        bot = start_bot(tmp_path, env, "ask", "How do I install it?")
        servers: list[int] = []
        try:
            connection = _first_connection(listener, bot, tmp_path)  # the question reached the model
            with connection:
                servers = children(bot.pid)
                assert len(servers) == 1, servers
                yield bot, servers[0]
        finally:
            kill_all([bot.pid, *servers])


def _first_connection(listener: socket.socket, bot: subprocess.Popen[bytes], tmp_path: Path) -> socket.socket:
    """The model's first connection: `ask`'s start-up (its Weaviate included) is over by then."""
    deadline = time.monotonic() + 120
    while bot.poll() is None and time.monotonic() < deadline:
        try:
            return listener.accept()[0]
        except TimeoutError:
            continue
    raise AssertionError(f"ask never called the model (exit code {bot.poll()}):\n{output_of(tmp_path)}")


def test_sigkill_of_a_command_takes_its_weaviate_along(tmp_path: Path) -> None:
    env = bot_environment(tmp_path)
    with ask_waiting_on_the_model(tmp_path, env) as (bot, server):
        bot.kill()
        bot.wait(10)
        assert wait_until_gone(server, within=30), "the embedded Weaviate outlived its killed parent"
    # The next command gets the ports (and finds the pid file of a server that is gone).
    status = start_bot(tmp_path, env, "status")
    assert status.wait(120) == 0, output_of(tmp_path)


def test_sigterm_stops_a_command_cleanly(tmp_path: Path) -> None:
    env = bot_environment(tmp_path)
    with ask_waiting_on_the_model(tmp_path, env) as (bot, server):
        bot.send_signal(signal.SIGTERM)
        assert bot.wait(30) == 143, output_of(tmp_path)  # 128 + SIGTERM, after its clean-up
        assert wait_until_gone(server, within=1)  # stopped by the clean-up, not left to die
        assert not (tmp_path / "data" / "weaviate" / PID_FILE_NAME).exists()
        assert "Traceback" not in output_of(tmp_path)
