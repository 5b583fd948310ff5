"""One `serve` replica vs two on this machine, through Slack HTTP events (issue 14, "Measured").

Each replica is a real `main.py serve` process (offline model: no OPENAI_* settings) on the bench's
Weaviate collection of the `python` set and one PostgreSQL database shared by the replicas (a fresh
database per configuration). `CONCURRENCY` conversations run at once; each posts `app_mention` events
(a new thread, then `TURNS_PER_THREAD - 1` mentions in that thread, so the follow-ups load the thread's
history from the database) and waits for the answer to be finished at the fake Slack before the next.
Events go round-robin over the replicas, as a load balancer would send them: a thread's follow-ups
land on whichever replica is next. `ASKS` asks per row; a round measures one replica, then two (the
next round in the other order, so drift in the machine's load falls on both).

Latency is from the event POST to the finished answer (`chat.stopStream` with its footer); the ack is
the POST's own response time (Slack wants it within 3 s). CPU time per ask is read from /proc for the
replicas (and their main threads: the event loop), Weaviate, PostgreSQL and this process (fake Slack
and load generator, on the same cores).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np

from bench.dataset import WORK_DIR, Dataset
from bench.quality import BASE_INDEX
from bench.replica_processes import (
    BOT_USER_ID,
    MEMBER_USER_ID,
    TEAM_ID,
    Postgres,
    Replica,
    SlackRecorder,
    create_database,
    machine_cpu,
    main_thread_cpu,
    postgres_cluster,
    process_cpu,
    replica_environment,
    running_replicas,
    tree_cpu,
)
from data.weaviate_server import EmbeddedWeaviate

REPLICA_COUNTS = (1, 2)
CONCURRENCY = (10, 50)
ASKS = 200  # per row
ROUNDS = 2
TURNS_PER_THREAD = 3
WARM_UP_ASKS = 2  # per replica, one after another: the ONNX session, Weaviate and database pools
ASK_TIMEOUT = 120.0
CHANNEL = "C0BENCH"


@dataclass
class Sample:
    seconds: float  # event POST -> finished answer
    ack_seconds: float  # the POST's response
    ok: bool


@dataclass
class Load:
    """Hands out asks (numbered in order, for round-robin) until `total` are taken."""

    total: int
    taken: itertools.count[int] = field(default_factory=itertools.count)

    def next(self) -> int | None:
        number = next(self.taken)
        return number if number < self.total else None


def round_robin(number: int, replicas: int) -> int:
    """Which replica receives the `number`th event."""
    return number % replicas


def mention(ts: str, words: str, thread_ts: str | None) -> dict[str, Any]:
    event = {
        "type": "app_mention",
        "user": MEMBER_USER_ID,
        "text": f"<@{BOT_USER_ID}> {words}",
        "ts": ts,
        "channel": CHANNEL,
        "event_ts": ts,
    }
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    return event


def event_body(event: dict[str, Any]) -> dict[str, Any]:
    """An Events API `event_callback` as Slack sends it (a new event_id: no redelivery)."""
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM_ID,
        "api_app_id": "A0BENCH",
        "event": event,
        "type": "event_callback",
        "event_id": "Ev" + uuid.uuid4().hex[:12].upper(),
        "event_time": int(time.time()),
        "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
    }


class Asker:
    """Sends one ask to a replica and waits for its answer at the fake Slack."""

    def __init__(
        self, replicas: Sequence[Replica], slack: SlackRecorder, http: aiohttp.ClientSession
    ) -> None:
        self.replicas = replicas
        self.slack = slack
        self.http = http
        self._ts = itertools.count(1)

    def new_ts(self) -> str:
        return f"{1_800_000_000 + next(self._ts)}.000100"

    async def ask(self, number: int, words: str, thread_ts: str | None) -> tuple[str, Sample]:
        """The `number`th ask (its replica by round robin); the thread it was answered in."""
        ts = self.new_ts()
        thread = thread_ts or ts
        finished = self.slack.expect(thread)
        replica = self.replicas[round_robin(number, len(self.replicas))]
        started = time.monotonic()
        status = await replica.post_event(self.http, event_body(mention(ts, words, thread_ts)))
        ack = time.monotonic() - started
        if status != 200:
            finished.cancel()
            return thread, Sample(ack, ack, ok=False)
        try:
            done = await asyncio.wait_for(finished, ASK_TIMEOUT)
        except TimeoutError:
            return thread, Sample(time.monotonic() - started, ack, ok=False)
        return thread, Sample(done.at - started, ack, done.ok)


async def run_load(asker: Asker, questions: Sequence[str], concurrency: int, asks: int) -> list[Sample]:
    """`concurrency` conversations asking until `asks` asks are done; a new thread every few turns."""
    load = Load(asks)
    samples: list[Sample] = []

    async def conversation() -> None:
        thread: str | None = None
        turn = 0
        while (number := load.next()) is not None:
            if turn % TURNS_PER_THREAD == 0:
                thread = None
            answered, sample = await asker.ask(number, questions[number % len(questions)], thread)
            samples.append(sample)
            thread = answered if sample.ok else None  # after a failure, start over in a new thread
            turn = turn + 1 if sample.ok else 0

    await asyncio.gather(*(conversation() for _ in range(concurrency)))
    return samples


def percentiles_ms(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "p99_ms": float("nan")}
    p50, p95, p99 = np.percentile(np.asarray(values, dtype=float) * 1000.0, [50, 95, 99])
    return {"p50_ms": round(float(p50), 1), "p95_ms": round(float(p95), 1), "p99_ms": round(float(p99), 1)}


def summarise(
    samples: Sequence[Sample], wall: float, cpu_seconds: dict[str, float], cores: int
) -> dict[str, Any]:
    """One row: throughput, latency of the answered asks, and CPU per ask by process."""
    answered = [s.seconds for s in samples if s.ok]
    # The event loops are within the replicas' time; the machine's is everyone's, ours included.
    total_cpu = sum(v for k, v in cpu_seconds.items() if k not in ("replica_event_loops", "machine"))
    others = max(0.0, cpu_seconds.get("machine", total_cpu) - total_cpu)
    return {
        "asks": len(samples),
        "failed": sum(not s.ok for s in samples),
        "wall_seconds": round(wall, 2),
        "asks_per_second": round(len(answered) / wall, 2) if wall else 0.0,
        **percentiles_ms(answered),
        "ack_p95_ms": percentiles_ms([s.ack_seconds for s in samples])["p95_ms"],
        "cpu_ms_per_ask": {k: round(1000 * v / max(1, len(samples)), 1) for k, v in cpu_seconds.items()},
        "cores_busy": round(total_cpu / wall, 2) if wall else 0.0,
        "cpu_share": round(total_cpu / (wall * cores), 3) if wall else 0.0,
        "others_cores_busy": round(others / wall, 2) if wall else 0.0,  # other work on the machine
    }


def _cpu_meter(
    replicas: Sequence[Replica], weaviate_pid: int, postgres: Postgres
) -> Callable[[], dict[str, float]]:
    def read() -> dict[str, float]:
        return {
            "replicas": sum(process_cpu(r.process.pid) for r in replicas),
            "replica_event_loops": sum(main_thread_cpu(r.process.pid) for r in replicas),
            "weaviate": process_cpu(weaviate_pid),
            "postgres": tree_cpu(postgres.postmaster_pid()),
            "bench": sum(os.times()[:2]),
            "machine": machine_cpu(),
        }

    return read


async def measure_configuration(
    count: int,
    round_number: int,
    server: EmbeddedWeaviate,
    dataset: Dataset,
    postgres: Postgres,
    slack: SlackRecorder,
    http: aiohttp.ClientSession,
) -> list[dict[str, Any]]:
    """`count` replicas on a fresh database: warm up, then one row per concurrency level."""
    dsn = await create_database(postgres, f"replicas_r{round_number}_n{count}_{uuid.uuid4().hex[:6]}")
    folder = WORK_DIR / "replicas" / f"round{round_number}-n{count}"
    if folder.exists():
        shutil.rmtree(folder)
    collection = BASE_INDEX.collection(dataset.name)
    envs = [
        replica_environment(
            folder / f"replica-{n}",
            server,
            collection,
            slack.api_url,
            DATABASE_URL=dsn,
            DOCS_PATHS=str(dataset.corpus),
        )
        for n in range(count)
    ]
    questions = [q.query for q in dataset.queries]
    rows = []
    started = time.monotonic()
    async with running_replicas(envs, http) as replicas:
        print(f"  {count} replica(s) healthy after {time.monotonic() - started:.1f} s", flush=True)
        asker = Asker(replicas, slack, http)
        for number in range(WARM_UP_ASKS * count):  # round robin: each replica answers WARM_UP_ASKS
            _, sample = await asker.ask(number, questions[-1 - number % len(questions)], None)
            if not sample.ok:
                raise RuntimeError(f"warm-up ask failed:\n{replicas[number % count].log()[-4000:]}")
        assert server.pid is not None
        meter = _cpu_meter(replicas, server.pid, postgres)
        for concurrency in CONCURRENCY:
            load_before = os.getloadavg()
            before, wall_started = meter(), time.perf_counter()
            samples = await run_load(asker, questions, concurrency, ASKS)
            wall, after = time.perf_counter() - wall_started, meter()
            cpu = {k: after[k] - before[k] for k in before}
            row = {
                "replicas": count,
                "concurrency": concurrency,
                "round": round_number,
                "load_average_before": load_before,
                **summarise(samples, wall, cpu, os.cpu_count() or 1),
                "latencies_ms": [round(s.seconds * 1000, 1) for s in samples if s.ok],
                "answers_logged": [r.log().count("Slack answer in") for r in replicas],
            }
            rows.append(row)
            print(
                f"  replicas={count} c={concurrency} round {round_number}: {row['asks_per_second']} asks/s, "
                f"p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms, failed {row['failed']}, "
                f"cores busy {row['cores_busy']} (others {row['others_cores_busy']})",
                flush=True,
            )
    return rows


async def measure(
    server: EmbeddedWeaviate, dataset: Dataset, index: dict[str, Any], machine: dict[str, Any]
) -> dict[str, Any]:
    """Every (replicas, concurrency) row, `ROUNDS` times; `index` describes the existing index of
    `dataset` (documents, chunks)."""
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    slack = SlackRecorder()
    await slack.start()
    try:
        async with postgres_cluster() as postgres, aiohttp.ClientSession() as http:
            for round_number in range(1, ROUNDS + 1):
                order = REPLICA_COUNTS if round_number % 2 else tuple(reversed(REPLICA_COUNTS))
                for count in order:
                    rows += await measure_configuration(
                        count, round_number, server, dataset, postgres, slack, http
                    )
    finally:
        await slack.stop()
    machine = {
        **machine,
        "load_average_at_end": os.getloadavg(),
        "run_minutes": round((time.perf_counter() - started) / 60, 1),
    }
    return {
        "dataset": dataset.name,
        "collection": BASE_INDEX.collection(dataset.name),
        "index": index,
        "asks_per_row": ASKS,
        "turns_per_thread": TURNS_PER_THREAD,
        "rounds": ROUNDS,
        "machine": machine,
        "rows": rows,
    }
