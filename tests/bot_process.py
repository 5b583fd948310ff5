"""`python main.py ...` as a real child process, and the embedded Weaviate server it starts.

For the tests that kill things: the bot runs with its own embedded Weaviate (no WEAVIATE_URL) on
free ports in a temp DATA_DIR, exactly as a user runs it; its Weaviate is found as its child in
/proc, so the tests work the same on code that writes no pid file.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from configs.config import PROJECT_ROOT, Settings
from data.weaviate_server import free_port

TOKEN = "recovery-test-token"
ASK_TIMEOUT = 15.0  # well past the 5 s an answer may take while Weaviate is down; far below ~63 s


def bot_environment(tmp_path: Path, **settings: str) -> dict[str, str]:
    """The caller's environment without any bot setting, plus a temp DATA_DIR, free ports and `settings`."""
    names = {name.upper() for name in Settings.model_fields}
    env = {key: value for key, value in os.environ.items() if key.upper() not in names}
    taken: set[int] = set()
    for name in ("HTTP_PORT", "WEAVIATE_HTTP_PORT", "WEAVIATE_GRPC_PORT"):
        taken.add(port := free_port(exclude=taken))
        env[name] = str(port)
    docs = tmp_path / "no-docs"
    docs.mkdir(exist_ok=True)
    env.update(
        DATA_DIR=str(tmp_path / "data"), DOCS_PATHS=str(docs), CHATKIT_API_TOKEN=TOKEN, LOG_LEVEL="INFO"
    )
    env.update(settings)
    return env


def start_bot(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """`python main.py args...` in `tmp_path` (no stray .env), its output in tmp_path/bot-N.log."""
    log = tmp_path / f"bot-{len(list(tmp_path.glob('bot-*.log')))}.log"
    return subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "main.py"), *args],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def output_of(tmp_path: Path) -> str:
    return "\n".join(log.read_text(errors="replace") for log in sorted(tmp_path.glob("bot-*.log")))


def children(pid: int) -> list[int]:
    """Direct children of `pid` (from /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def weaviate_servers_on(data_dir: Path) -> list[int]:
    """Every live weaviate-server process, whoever its parent, whose data is in `data_dir`."""
    wanted = f"PERSISTENCE_DATA_PATH={data_dir.resolve()}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "weaviate-server":
                continue
            if wanted in (entry / "environ").read_bytes().split(b"\0") and _running(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_until_gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while _running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def kill_all(pids: list[int]) -> None:
    """Clean up after a failed test: nothing of ours may keep ports or CPU."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


@dataclass
class Reply:
    text: str  # the answer, or the error event's message
    seconds: float
    failed: bool


@dataclass
class ServeClient:
    """HTTP to a `serve` process: asks over POST /chatkit, /healthz, /metrics."""

    base: str
    http: aiohttp.ClientSession

    async def health(self) -> tuple[int, dict[str, Any]]:
        async with self.http.get(f"{self.base}/healthz") as response:
            return response.status, await response.json()

    async def metrics(self) -> str:
        async with self.http.get(f"{self.base}/metrics") as response:
            return await response.text()

    async def ask(self, question: str) -> Reply:
        """One question in a new thread; the reply's text and how long it took."""
        request = {
            "type": "threads.create",
            "params": {
                "input": {
                    "content": [{"type": "input_text", "text": question}],
                    "attachments": [],
                    "inference_options": {},
                }
            },
        }
        headers = {"Authorization": f"Bearer {TOKEN}", "X-User-Id": "recovery-test"}
        started = time.monotonic()
        async with asyncio.timeout(ASK_TIMEOUT):
            async with self.http.post(f"{self.base}/chatkit", json=request, headers=headers) as response:
                assert response.status == 200, await response.text()
                body = (await response.read()).decode()
        seconds = time.monotonic() - started
        events = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]
        for event in events:
            if event["type"] == "error":
                return Reply(str(event.get("message")), seconds, failed=True)
            item = event.get("item") or {}
            if event["type"] == "thread.item.done" and item.get("type") == "assistant_message":
                return Reply(item["content"][0]["text"], seconds, failed=False)
        raise AssertionError(f"no answer and no error in {events}")

    async def wait_healthy(self, within: float) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            try:
                status, body = await self.health()
                if status == 200:
                    return body
            except aiohttp.ClientError:
                pass
            assert time.monotonic() < deadline, f"serve not healthy after {within}s"
            await asyncio.sleep(0.2)
