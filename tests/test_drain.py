"""SIGTERM to a `serve` replica behind a load balancer: it drains before it stops.

A real `main.py serve` process with Slack HTTP events (the fake Slack) and a language model that
takes its time (the fake OpenAI server, each reply held back): SIGTERM arrives while an answer is
being written. /healthz must turn 503 "draining" at once, while the process still runs; a new event
is refused with a status Slack redelivers (not 200); the answer in flight finishes within the grace
period, or, when the grace is too short, ends with a message saying it was cut short. The process
exits 0 with no lease left held in its database.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web
from fake_openai_server import FakeOpenAIServer, docs_responder
from fake_slack import FakeSlack, event_body
from slack_harness import stream_text
from sqlalchemy import func, select
from test_replicas import Replica, finished_streams, mention, replica_environment, running_replica

from data.database import Database
from data.leases import LeaseRow
from data.weaviate_server import EmbeddedWeaviate
from services.slack.bot import CUT_SHORT


@dataclass
class SlowOpenAI(FakeOpenAIServer):
    """The fake OpenAI server, each reply held back `delay` seconds (a model writing a long answer)."""

    delay: float = 1.0
    arrivals: list[float] = field(default_factory=list)  # when each request came in
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        await self._hold()
        return await super()._chat_completions(request)

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        await self._hold()
        return await super()._responses(request)

    async def _hold(self) -> None:
        self.arrivals.append(time.monotonic())
        try:
            await asyncio.wait_for(self._stopping.wait(), self.delay)
        except TimeoutError:
            pass

    async def stop(self) -> None:
        """Held replies are let go first: the server's cleanup waits for every handler to end."""
        self._stopping.set()
        await super().stop()


@dataclass
class Drained:
    fake: FakeSlack
    llm: SlowOpenAI
    replica: Replica


@asynccontextmanager
async def replica_mid_answer(
    tmp_path: Path, weaviate: EmbeddedWeaviate, *, delay: float, grace: float
) -> AsyncIterator[Drained]:
    """A replica (SQLite in its DATA_DIR) asked one question in thread 5000.1; yields once the
    question reached the model, that is while the answer is being made."""
    async with AsyncExitStack() as stack:
        fake = FakeSlack()
        await fake.start()
        stack.push_async_callback(fake.stop)
        llm = await stack.enter_async_context(SlowOpenAI(responder=docs_responder, delay=delay))
        http = await stack.enter_async_context(aiohttp.ClientSession())
        folder = tmp_path / "replica"
        collection = "T" + uuid.uuid4().hex
        env = replica_environment(
            folder,
            weaviate,
            fake,
            collection,
            OPENAI_BASE_URL=llm.base_url,
            OPENAI_API_KEY="test-key",
            SHUTDOWN_GRACE_SECONDS=str(grace),
        )
        replica = await stack.enter_async_context(running_replica(folder, env, http))
        assert (await replica.slack.event(event_body(mention("5000.1", "how do I install it?"))))[0] == 200
        for _ in range(200):
            if llm.arrivals:
                break
            await asyncio.sleep(0.05)
        assert llm.arrivals, f"the question never reached the model:\n{replica.log()}"
        yield Drained(fake, llm, replica)


async def leases_held(replica: Replica) -> int:
    database = Database(f"sqlite+aiosqlite:///{(replica.folder / 'data' / 'docsbot.sqlite3').resolve()}")
    try:
        async with database.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(LeaseRow)) or 0)
    finally:
        await database.dispose()


async def draining_health(replica: Replica) -> dict[str, object]:
    """/healthz right after SIGTERM: 503 "draining" (polled: the signal is handled by the loop)."""
    for _ in range(40):
        status, body = await replica.client.health()
        if status == 503:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"/healthz still {status} after SIGTERM: {body}")


async def test_sigterm_drains_then_the_answer_in_flight_finishes(
    weaviate_server: EmbeddedWeaviate, tmp_path: Path
) -> None:
    async with replica_mid_answer(tmp_path, weaviate_server, delay=1.5, grace=20) as run:
        process = run.replica.process
        process.send_signal(signal.SIGTERM)
        health = await draining_health(run.replica)
        assert health["status"] == "draining" and process.poll() is None, health
        assert health["components"]["server"]["state"] == "draining"  # type: ignore[index]

        status, _ = await run.replica.slack.event(event_body(mention("5000.2", "and a new question?")))
        assert status == 503  # Slack redelivers it; the load balancer sends that to a ready replica

        [answer] = await run.fake.wait_for(lambda: finished_streams(run.fake, "5000.1"), timeout=20)
        assert "From the documents" in stream_text(answer)
        assert await asyncio.to_thread(process.wait, 30) == 0, run.replica.log()
        assert run.fake.streams("5000.2") == []
        assert not [c for c in run.fake.calls_to("chat.postMessage") if CUT_SHORT in c.args.get("text", "")]
        assert "Traceback" not in run.replica.log()
        assert await leases_held(run.replica) == 0


async def test_an_answer_past_the_grace_period_says_it_was_cut_short(
    weaviate_server: EmbeddedWeaviate, tmp_path: Path
) -> None:
    async with replica_mid_answer(tmp_path, weaviate_server, delay=30, grace=0.5) as run:
        process = run.replica.process
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert (await draining_health(run.replica))["status"] == "draining"

        [post] = await run.fake.wait_for(
            lambda: [c for c in run.fake.calls_to("chat.postMessage") if CUT_SHORT in c.args.get("text", "")],
            timeout=15,
        )
        assert post.args["thread_ts"] == "5000.1"
        assert await asyncio.to_thread(process.wait, 30) == 0, run.replica.log()
        assert time.monotonic() - signalled < 15  # the grace, then the shutdown: not the model's 30 s
        assert finished_streams(run.fake, "5000.1") == []
        assert await leases_held(run.replica) == 0
