"""Peak memory of `main.py serve` with the benchmark index loaded.

Starts the real command as a child process pointed at the run's Weaviate and the bench
collection (no Slack/Discord credentials, no .env values: the environment is cleared of every
setting), asks questions through POST /chatkit so the model and the index are in use, then reads
the process's peak resident set (VmHWM) before stopping it with SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from chatkit.types import InferenceOptions, ThreadCreateParams, ThreadsCreateReq, UserMessageInput
from chatkit.types import UserMessageTextContent as Text

from bench.dataset import WORK_DIR, Dataset
from bench.quality import BASE_INDEX
from configs.config import Settings
from data.weaviate_server import EmbeddedWeaviate, free_port

ROOT = Path(__file__).resolve().parent.parent


BENCH_TOKEN = "bench-memory-token"
CHATKIT_HEADERS = {
    "Authorization": f"Bearer {BENCH_TOKEN}",
    "X-User-Id": "bench",
    "Content-Type": "application/json",
}


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _request(question: str) -> str:
    message = UserMessageInput(
        content=[Text(text=question)], attachments=[], inference_options=InferenceOptions()
    )
    return ThreadsCreateReq(params=ThreadCreateParams(input=message)).model_dump_json()


async def measure(server: EmbeddedWeaviate, dataset: Dataset, questions: int = 30) -> dict[str, Any]:
    data_dir = WORK_DIR / "serve"
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    port = free_port()
    names = {name.upper() for name in Settings.model_fields}
    env = {key: value for key, value in os.environ.items() if key.upper() not in names}
    env.update(
        DATA_DIR=str(data_dir),
        WEAVIATE_URL=server.url,
        WEAVIATE_GRPC_URL=server.grpc_url,
        WEAVIATE_API_KEY=server.api_key.get_secret_value(),
        WEAVIATE_COLLECTION=BASE_INDEX.collection(dataset.name),
        DOCS_PATHS=str(dataset.corpus),
        HTTP_HOST="127.0.0.1",
        HTTP_PORT=str(port),
        LOG_LEVEL="WARNING",
        CHATKIT_API_TOKEN=BENCH_TOKEN,  # /chatkit is off without a token
    )
    log = (data_dir / "serve.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "main.py"), "serve", cwd=data_dir, env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        started = time.perf_counter()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
            while True:
                if process.returncode is not None:
                    raise RuntimeError(
                        f"serve exited with {process.returncode}; see {data_dir / 'serve.log'}"
                    )
                try:
                    async with http.get(f"{url}/healthz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if time.perf_counter() - started > 120:
                    raise RuntimeError(f"serve did not become healthy; see {data_dir / 'serve.log'}")
                await asyncio.sleep(0.5)
            ready_seconds = time.perf_counter() - started
            idle_rss = _status_kib(process.pid, "VmRSS")
            answered = 0
            for query in dataset.queries[:questions]:
                async with http.post(
                    f"{url}/chatkit", data=_request(query.query), headers=CHATKIT_HEADERS
                ) as response:
                    body = await response.read()
                    answered += response.status == 200 and b"assistant_message" in body
        peak = _status_kib(process.pid, "VmHWM")
        current = _status_kib(process.pid, "VmRSS")
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()
    weaviate_pid = server._process.pid if server._process is not None else None
    return {
        "questions": questions,
        "answered": answered,
        "ready_seconds": ready_seconds,
        "idle_rss_mib": idle_rss / 1024,
        "peak_rss_mib": peak / 1024,
        "rss_after_mib": current / 1024,
        "weaviate_rss_mib": _status_kib(weaviate_pid, "VmRSS") / 1024 if weaviate_pid else None,
        "collection": BASE_INDEX.collection(dataset.name),
    }
