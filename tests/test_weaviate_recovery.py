"""The embedded Weaviate is supervised: killed, it comes back; while down, users hear so in seconds.

Each test runs the real `python main.py ...` with its own embedded server (the real binary) and
kills that server for real (SIGKILL), as an OOM killer or a crash would.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import weaviate
from bot_process import (
    ServeClient,
    bot_environment,
    children,
    kill_all,
    output_of,
    start_bot,
    weaviate_servers_on,
)
from conftest import WEAVIATE_BINARY
from docs_corpus import build_corpus
from weaviate.classes.config import DataType, Property
from weaviate.classes.init import Auth

from configs.config import PROJECT_ROOT, Settings
from data.errors import StoreUnavailable
from data.redaction import redact_url
from data.server_process import ServerPidFile
from data.vector_store import WeaviateVectorStore
from data.weaviate_server import EmbeddedWeaviate, free_port

QUESTION = "What license is Acme Deploy released under?"
ANSWER = "Apache License 2.0"


async def test_killed_weaviate_is_restarted_and_asks_meanwhile_fail_fast(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    build_corpus(docs)
    env = bot_environment(tmp_path, DOCS_PATHS=str(docs))
    bot = start_bot(tmp_path, env, "serve")
    try:
        async with aiohttp.ClientSession() as http:
            serve = ServeClient(f"http://127.0.0.1:{env['HTTP_PORT']}", http)
            await serve.wait_healthy(within=90)
            deadline = time.monotonic() + 90
            while "First indexing done" not in output_of(tmp_path):  # on first start, in the background
                assert time.monotonic() < deadline, output_of(tmp_path)
                await asyncio.sleep(0.2)
            first = await serve.ask(QUESTION)
            assert ANSWER in first.text, first

            [server] = children(bot.pid)
            os.kill(server, signal.SIGKILL)
            killed_at = time.monotonic()
            down = await serve.ask(QUESTION)  # may race the server's death: "stopped answering"
            assert down.failed and down.seconds < 5 and "Weaviate" in down.text, down
            status, health = await serve.health()
            assert status == 503 and health["checks"]["vector_store"] is False, health

            replies = [down]
            while replies[-1].failed and time.monotonic() - killed_at < 60:
                await asyncio.sleep(0.25)
                replies.append(await serve.ask(QUESTION))
            back = replies.pop()
            recovered = time.monotonic() - killed_at
            assert all(reply.seconds < 5 for reply in replies), replies  # every one came fast
            restarting = "The embedded Weaviate server was killed by SIGKILL"
            assert any(restarting in r.text and "being restarted" in r.text for r in replies), replies
            assert ANSWER in back.text, back
            status, health = await serve.health()
            vector_store = health["components"]["vector_store"]
            assert status == 200 and vector_store["state"] == "running" and vector_store["restarts"] == 1
            assert vector_store["pid"] != server and children(bot.pid) == [vector_store["pid"]]
            assert "docsbot_embedded_weaviate_restarts_total 1.0" in await serve.metrics()
            assert "docsbot_embedded_weaviate_up 1.0" in await serve.metrics()
            slowest = max(reply.seconds for reply in replies)
            print(
                f"\n{len(replies)} asks while down (slowest {slowest:.2f}s); answers after {recovered:.1f}s"
            )
    finally:
        bot.send_signal(signal.SIGTERM)
        try:
            assert bot.wait(30) == 0, output_of(tmp_path)
        finally:
            kill_all([bot.pid, *weaviate_servers_on(tmp_path / "data" / "weaviate")])


def test_serve_gives_up_and_exits_when_weaviate_cannot_come_back(tmp_path: Path) -> None:
    binary = tmp_path / "weaviate-server"
    binary.symlink_to(WEAVIATE_BINARY)
    env = bot_environment(tmp_path, WEAVIATE_BINARY=str(binary), WEAVIATE_RESTART_GIVE_UP_SECONDS="2")
    bot = start_bot(tmp_path, env, "serve")
    try:
        deadline = time.monotonic() + 90
        while "HTTP server listening" not in output_of(tmp_path):
            assert bot.poll() is None and time.monotonic() < deadline, output_of(tmp_path)
            time.sleep(0.2)
        binary.unlink()  # a restart cannot work: the binary is gone (a broken upgrade, say)
        [server] = children(bot.pid)
        os.kill(server, signal.SIGKILL)
        try:
            code = bot.wait(30)
        except subprocess.TimeoutExpired:
            pytest.fail("serve kept running with a dead store:\n" + output_of(tmp_path))
        output = output_of(tmp_path)
        assert code == 1, output
        assert "could not be restarted within 2s (WEAVIATE_RESTART_GIVE_UP_SECONDS)" in output
        assert f"The Weaviate server binary is missing: {binary}" in output
    finally:
        kill_all([bot.pid, *weaviate_servers_on(tmp_path / "data" / "weaviate")])


async def test_a_server_left_by_a_dead_bot_is_stopped_and_a_live_bots_is_not(tmp_path: Path) -> None:
    env = bot_environment(tmp_path)
    data = tmp_path / "data" / "weaviate"
    # A server on this DATA_DIR and these ports, as a bot that crashed would leave it.
    left_over = EmbeddedWeaviate(
        WEAVIATE_BINARY,
        data,
        http_port=int(env["WEAVIATE_HTTP_PORT"]),
        grpc_port=int(env["WEAVIATE_GRPC_PORT"]),
    )
    await left_over.start()
    try:
        # Its owner (this test process) is alive: a second bot must not take the data over.
        status = await run_command(tmp_path, env, "status")
        assert status.returncode == 1
        assert f"Another bot process (pid {os.getpid()}) runs the embedded Weaviate" in status.output
        assert left_over.running

        # Now as if that bot had died: the pid file names an owner that has exited.
        ServerPidFile(data).record(left_over.pid or 0, owner_pid=_exited_pid())
        status = await run_command(tmp_path, env, "status")
        assert status.returncode == 0, status.output
        assert "Index: empty" in status.output
        assert "Stopping the Weaviate server" in status.output
        exit_code = await asyncio.wait_for(left_over.wait_exited(), 15)
        assert exit_code in (0, -signal.SIGTERM)
        assert weaviate_servers_on(data) == []
    finally:
        await left_over.stop()


async def test_embedded_server_refuses_unknown_properties(weaviate_server: EmbeddedWeaviate) -> None:
    """AUTOSCHEMA_ENABLED=false: a write that does not match the schema fails instead of changing it."""
    client = weaviate.use_async_with_local(
        port=weaviate_server.http_port,
        grpc_port=weaviate_server.grpc_port,
        auth_credentials=Auth.api_key(weaviate_server.api_key.get_secret_value()),
    )
    name = f"Autoschema{os.getpid()}"
    async with client:
        collection = await client.collections.create(
            name, properties=[Property(name="title", data_type=DataType.TEXT)]
        )
        try:
            with pytest.raises(weaviate.exceptions.UnexpectedStatusCodeError, match="no such prop"):
                await collection.data.insert({"title": "ok", "surprise": "not in the schema"})
            config = await collection.config.get()
            assert [p.name for p in config.properties] == ["title"]
        finally:
            await client.collections.delete(name)


async def test_credentials_in_weaviate_url_are_never_shown(make_plain_settings: object) -> None:
    port = free_port()
    settings: Settings = make_plain_settings(  # type: ignore[operator]
        weaviate_url=f"http://admin:hunter2@127.0.0.1:{port}", weaviate_grpc_url=None
    )
    with pytest.raises(StoreUnavailable) as unreachable:
        await WeaviateVectorStore(settings).connect()
    assert f"http://***@127.0.0.1:{port}" in str(unreachable.value)
    assert "hunter2" not in str(unreachable.value)

    settings = make_plain_settings(weaviate_url="ftp://admin:hunter2@weaviate.example")  # type: ignore[operator]
    with pytest.raises(StoreUnavailable) as malformed:
        await WeaviateVectorStore(settings).connect()
    assert "ftp://***@weaviate.example" in str(malformed.value) and "hunter2" not in str(malformed.value)

    assert redact_url("https://u:p@h:8080/v1?x=1") == "https://***@h:8080/v1?x=1"
    assert redact_url("u:p/with/slashes@h:1") == "***@h:1"
    assert redact_url("http://h:8080/search?mail=a@b") == "http://h:8080/search?mail=a@b"


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    output: str  # stdout and stderr


async def run_command(tmp_path: Path, env: dict[str, str], *args: str) -> CommandResult:
    """A short command, awaited without blocking the loop (this test's own server runs on it)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(PROJECT_ROOT / "main.py"),
        *args,
        cwd=tmp_path,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    return CommandResult(await process.wait(), output.decode(errors="replace"))


def _exited_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid
