"""What the replicas bench runs: a throwaway PostgreSQL cluster, real `main.py serve` processes with
Slack HTTP events, a Slack Web API that tells the load generator when an answer is finished, and the
CPU time of each process (from /proc).

The launch code follows tests/bot_process.py and tests/test_replicas.py, copied in its minimal form:
`tests` is not importable as a package here (an installed distribution ships a top-level `tests`
package), and the tests' FakeSlack keeps every call and finds a thread's answer by scanning them all,
work that would run on the same 2 cores as the replicas it measures. This fake resolves each awaited
answer in O(1) when its `chat.stopStream` arrives.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import text

from configs.config import PROJECT_ROOT, Settings
from data.database import Database
from data.weaviate_server import EmbeddedWeaviate, free_port

BOT_TOKEN = "xoxb-bench-token"
SIGNING_SECRET = "bench-signing-secret"
TEAM_ID = "T0BENCH"
BOT_USER_ID = "U0BOT"
MEMBER_USER_ID = "U0MEMBER"
FAILURE_PREFIX = ":warning:"  # services.slack.blocks.failure_text: a thread's "could not answer" message
STARTUP_SECONDS = 90.0  # two replicas loading the ONNX model at once on 2 cores


# --- PostgreSQL ----------------------------------------------------------------------------------
def _postgres_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)
    if found is None:
        raise RuntimeError(f"PostgreSQL's `{name}` is missing: install the Debian package `postgresql`.")
    return found


async def _run_as_postgres(*command: str) -> None:
    """initdb and pg_ctl refuse to run as root: run them as `postgres` then."""
    if os.geteuid() == 0:
        command = ("runuser", "-u", "postgres", "--", *command)
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}): {output.decode()}")


@dataclass(frozen=True)
class Postgres:
    dsn: str  # the `postgres` database, for CREATE DATABASE
    data_dir: Path

    def postmaster_pid(self) -> int:
        return int((self.data_dir / "postmaster.pid").read_text().split()[0])


@asynccontextmanager
async def postgres_cluster() -> AsyncIterator[Postgres]:
    """A throwaway cluster (initdb + pg_ctl, fsync off, as in tests/test_chat_store.py) on a free port."""
    root = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="docsbot-bench-pg-"))
    data, sockets = root / "data", root / "sockets"
    await asyncio.to_thread(sockets.mkdir)
    if os.geteuid() == 0:
        for path in (root, sockets):
            await asyncio.to_thread(shutil.chown, path, "postgres", "postgres")
    port = free_port()
    await _run_as_postgres(
        _postgres_bin("initdb"), "-D", str(data), "-U", "docsbot", "--auth=trust", "-E", "UTF8"
    )
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl = _postgres_bin("pg_ctl")
    await _run_as_postgres(pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log.txt"), "-w", "start")
    try:
        yield Postgres(f"postgresql+asyncpg://docsbot@127.0.0.1:{port}/postgres", data)
    finally:
        await _run_as_postgres(pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop")
        await asyncio.to_thread(shutil.rmtree, root, ignore_errors=True)


async def create_database(cluster: Postgres, name: str) -> str:
    """A fresh database in the cluster with the bot's tables (each configuration starts empty); its DSN.

    The tables are made here, before the replicas start: two `serve` processes creating them at once
    on an empty PostgreSQL database can collide (a unique violation in pg_type) and one exits.
    """
    admin = Database(cluster.dsn)
    try:
        async with admin.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f"CREATE DATABASE {name}"))
    finally:
        await admin.dispose()
    dsn = cluster.dsn.rsplit("/", 1)[0] + "/" + name
    database = Database(dsn)
    try:
        await database.create()
    finally:
        await database.dispose()
    return dsn


# --- The Slack Web API ---------------------------------------------------------------------------
@dataclass
class Finished:
    at: float  # time.monotonic() when the final call reached the fake
    ok: bool  # an answer (stopStream with its footer), not a failure message


class SlackRecorder:
    """The Web API methods an answer uses, answering as Slack does; `expect(thread_ts)` is resolved when
    the answer in that thread is finished: `chat.stopStream` with the footer (sources, buttons), or a
    failure message posted in the thread."""

    def __init__(self) -> None:
        self._ts = 1_700_000_000.0
        self._stream_threads: dict[str, str] = {}  # stream message ts -> thread ts
        self._waiting: dict[str, asyncio.Future[Finished]] = {}
        self.calls = 0
        self._runner: web.AppRunner | None = None
        self.api_url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port := free_port())
        await site.start()
        self.api_url = f"http://127.0.0.1:{port}/api/"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def expect(self, thread_ts: str) -> asyncio.Future[Finished]:
        future: asyncio.Future[Finished] = asyncio.get_running_loop().create_future()
        self._waiting[thread_ts] = future
        return future

    def _finish(self, thread_ts: str | None, ok: bool) -> None:
        future = self._waiting.pop(thread_ts, None) if thread_ts else None
        if future is not None and not future.done():
            future.set_result(Finished(time.monotonic(), ok))

    def _next_ts(self) -> str:
        self._ts += 1
        return f"{self._ts:.6f}"

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            args.update(await request.json())
        elif request.can_read_body:
            args.update(dict(await request.post()))
        self.calls += 1
        return web.json_response({"ok": True, **self._result(method, args)})

    def _result(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {"team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": "B0BOT", "user": "docsbot"}
        if method == "users.info":
            user = str(args.get("user"))
            return {"user": {"id": user, "name": user.lower(), "is_admin": False, "is_owner": False}}
        if method == "chat.startStream":
            ts = self._next_ts()
            self._stream_threads[ts] = str(args.get("thread_ts"))
            return {"channel": args.get("channel"), "ts": ts}
        if method == "chat.stopStream":
            thread_ts = self._stream_threads.pop(str(args.get("ts")), None)
            blocks = args.get("blocks")
            if blocks and blocks != "[]":  # a failure closes its stream without a footer
                self._finish(thread_ts, ok=True)
            return {"channel": args.get("channel"), "ts": args.get("ts")}
        if method == "chat.postMessage":
            if str(args.get("text", "")).startswith(FAILURE_PREFIX):
                self._finish(str(args.get("thread_ts")), ok=False)
            return {"channel": args.get("channel"), "ts": self._next_ts()}
        if method in ("chat.update", "chat.appendStream"):
            return {"channel": args.get("channel"), "ts": args.get("ts")}
        return {}


# --- `main.py serve` ---------------------------------------------------------------------------------
@dataclass
class Replica:
    """One `serve` process and its signed Slack events URL."""

    process: asyncio.subprocess.Process
    base_url: str
    folder: Path

    async def post_event(self, http: aiohttp.ClientSession, body: dict[str, Any]) -> int:
        """POST an `event_callback` signed as Slack signs it (v0 HMAC-SHA256); the HTTP status."""
        raw = json.dumps(body)
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=ts, body=raw),
        }
        async with http.post(f"{self.base_url}/slack/events", data=raw.encode(), headers=headers) as response:
            await response.read()
            return response.status

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.folder.glob("serve-*.log")))


def replica_environment(
    folder: Path, weaviate: EmbeddedWeaviate, collection: str, slack_api_url: str, **settings: str
) -> dict[str, str]:
    """The caller's environment without any bot setting (so no OPENAI_*: offline answers), plus the
    bench's Weaviate collection, Slack HTTP events against the fake, a free HTTP port and `settings`."""
    names = {name.upper() for name in Settings.model_fields}
    env = {key: value for key, value in os.environ.items() if key.upper() not in names}
    env.update(
        DATA_DIR=str(folder / "data"),
        HTTP_PORT=str(free_port()),
        WEAVIATE_URL=weaviate.url,
        WEAVIATE_GRPC_URL=weaviate.grpc_url,
        WEAVIATE_API_KEY=weaviate.api_key.get_secret_value(),
        WEAVIATE_COLLECTION=collection,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack_api_url,
        LOG_LEVEL="INFO",
    )
    env.update(settings)
    return env


async def _wait_healthy(replica: Replica, http: aiohttp.ClientSession) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if replica.process.returncode is not None:
            break
        try:
            async with http.get(f"{replica.base_url}/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"serve did not start (exit {replica.process.returncode}):\n{replica.log()[-4000:]}")


@asynccontextmanager
async def running_replicas(
    envs: list[dict[str, str]], http: aiohttp.ClientSession
) -> AsyncIterator[list[Replica]]:
    """`main.py serve` per environment (cwd its folder: no stray .env), all healthy; killed afterwards."""
    replicas = []
    try:
        for env in envs:
            folder = Path(env["DATA_DIR"]).parent
            folder.mkdir(parents=True, exist_ok=True)
            log = folder / f"serve-{len(list(folder.glob('serve-*.log')))}.log"
            with log.open("wb") as output:
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    str(PROJECT_ROOT / "main.py"),
                    "serve",
                    cwd=folder,
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=output,
                    stderr=asyncio.subprocess.STDOUT,
                )
            replicas.append(Replica(process, f"http://127.0.0.1:{env['HTTP_PORT']}", folder))
        await asyncio.gather(*(_wait_healthy(replica, http) for replica in replicas))
        yield replicas
    finally:
        for replica in replicas:
            if replica.process.returncode is None:
                replica.process.kill()
        for replica in replicas:
            await asyncio.wait_for(replica.process.wait(), 10)


# --- CPU time ---------------------------------------------------------------------------------------
TICKS = os.sysconf("SC_CLK_TCK")


def stat_cpu_seconds(stat: str, with_children: bool = False) -> float:
    """utime + stime (+ cutime + cstime of waited-for children) from a /proc/<pid>/stat line."""
    fields = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces
    used = int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5), counted from `state` (3)
    if with_children:
        used += int(fields[13]) + int(fields[14])
    return used / TICKS


def process_cpu(pid: int) -> float:
    """CPU seconds of a whole process (all its threads)."""
    return stat_cpu_seconds(Path(f"/proc/{pid}/stat").read_text())


def main_thread_cpu(pid: int) -> float:
    """CPU seconds of the process's main thread: for `serve`, the asyncio event loop."""
    return stat_cpu_seconds(Path(f"/proc/{pid}/task/{pid}/stat").read_text())


def machine_cpu() -> float:
    """CPU seconds all processes on the machine have used (since boot), from /proc/stat: to tell how
    much of the cores other work on the machine took during a row."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / TICKS  # all but idle and iowait


def tree_cpu(pid: int) -> float:
    """A process, its live children and its exited children (PostgreSQL: the postmaster and its backends)."""
    used = stat_cpu_seconds(Path(f"/proc/{pid}/stat").read_text(), with_children=True)
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            used += process_cpu(int(child))
        except OSError:  # exited meanwhile: its time moves to the parent's cutime
            continue
    return used
