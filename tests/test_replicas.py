"""Two `serve` replicas on one PostgreSQL behind a (round-robin) load balancer, over Slack HTTP events.

Each replica is a real `main.py serve` process with the offline model, the session Weaviate and the
fake Slack. Events go to the replicas in turn and each is redelivered (same event_id,
X-Slack-Retry-Num) to the other one at the same time, as Slack does when the first delivery was
slow: the event claims in the database let exactly one answer. A follow-up in a thread goes to the
replica that did not answer the thread: the conversation→thread mapping and the history are in the
database, so it answers in the same thread with the thread's memory.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from bot_process import ServeClient, bot_environment, kill_all, output_of, start_bot
from fake_slack import BOT_USER_ID, MEMBER_USER_ID, TEAM_ID, FakeSlack, SlackSender, event_body
from slack_harness import BOT_TOKEN, SIGNING_SECRET, stream_text
from sqlalchemy import text
from test_chat_store import postgres_dsn  # noqa: F401  (fixture)

from configs.config import Settings
from data.database import Database
from data.weaviate_server import EmbeddedWeaviate
from services.chat.store import RequestContext, SqlStore
from services.runtime import open_runtime
from services.slack.bot import conversation_key

STARTUP_SECONDS = 60.0
CHANNEL = "C0CHAN"
DOCS = {
    "backups.md": "# Backups\n\n## Restoring a backup\n\nTo restore a backup, stop the server and run "
    "`restore.sh` with the snapshot name. Restores take about ten minutes for a 50 GB snapshot.\n",
    "install.md": "# Install\n\nRun `pip install docs-bot` and then `docs-bot serve`.\n",
    "upgrades.md": "# Upgrades\n\nTo upgrade, run `docs-bot upgrade`; it takes about two minutes and "
    "keeps your settings.\n",
}


@dataclass
class Replica:
    """One `serve` process: its Slack events URL (signed as Slack signs) and its /healthz."""

    process: subprocess.Popen[bytes]
    client: ServeClient
    slack: SlackSender
    folder: Path

    def log(self) -> str:
        return output_of(self.folder)


def replica_environment(
    folder: Path, weaviate: EmbeddedWeaviate, fake: FakeSlack, collection: str, **settings: str
) -> dict[str, str]:
    """A `serve` on the session Weaviate's `collection` with Slack HTTP events against `fake`."""
    folder.mkdir(parents=True, exist_ok=True)
    return bot_environment(
        folder,
        WEAVIATE_URL=weaviate.url,
        WEAVIATE_GRPC_URL=weaviate.grpc_url,
        WEAVIATE_API_KEY=weaviate.api_key.get_secret_value(),
        WEAVIATE_COLLECTION=collection,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=fake.api_url,
        **settings,
    )


@asynccontextmanager
async def running_replica(
    folder: Path, env: dict[str, str], http: aiohttp.ClientSession
) -> AsyncIterator[Replica]:
    """`main.py serve` started in `folder`; yields once /healthz is 200, kills it afterwards."""
    process = start_bot(folder, env, "serve")
    base = f"http://127.0.0.1:{env['HTTP_PORT']}"
    slack = SlackSender(f"{base}/slack/events", SIGNING_SECRET)
    replica = Replica(process, ServeClient(base, http), slack, folder)
    try:
        try:
            await replica.client.wait_healthy(STARTUP_SECONDS)
        except AssertionError:
            raise AssertionError(f"serve did not start (exit {process.poll()}):\n{replica.log()}") from None
        yield replica
    finally:
        await slack.close()
        kill_all([process.pid])
        process.wait(10)


def mention(ts: str, words: str) -> dict[str, str]:
    return {
        "type": "app_mention",
        "user": MEMBER_USER_ID,
        "text": f"<@{BOT_USER_ID}> {words}",
        "ts": ts,
        "channel": CHANNEL,
        "event_ts": ts,
    }


def followup(thread_ts: str, ts: str, words: str) -> dict[str, str]:
    """A plain message in a thread (no mention): answered only in threads the bot answered in."""
    return {
        "type": "message",
        "user": MEMBER_USER_ID,
        "text": words,
        "ts": ts,
        "thread_ts": thread_ts,
        "channel": CHANNEL,
        "channel_type": "channel",
        "event_ts": ts,
    }


def finished_streams(fake: FakeSlack, thread_ts: str) -> list[list[object]]:
    return [s for s in fake.streams(thread_ts) if s[-1].method == "chat.stopStream"]  # type: ignore[misc]


def answered_by(replicas: list[Replica], thread_ts: str) -> list[int]:
    """Which replicas logged an answer in the thread, once per answer."""
    line = re.compile(rf"Slack answer in {CHANNEL}/{re.escape(thread_ts)}:")
    return [n for n, replica in enumerate(replicas) for _ in line.finditer(replica.log())]


async def logged(found: Callable[[], list[int]], polls: int = 100) -> list[int]:
    """The answers logged (a replica logs one just after its last Slack call), polled for 5 s."""
    for _ in range(polls):
        if answers := found():
            return answers
        await asyncio.sleep(0.05)
    return found()


@pytest.fixture
async def shared_dsn(postgres_dsn: str) -> str:  # noqa: F811
    """A fresh database in the module's PostgreSQL cluster, for the replicas to share."""
    name = "replicas" + uuid.uuid4().hex[:12]
    admin = Database(postgres_dsn)
    try:
        async with admin.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f"CREATE DATABASE {name}"))
    finally:
        await admin.dispose()
    return postgres_dsn.rsplit("/", 1)[0] + "/" + name


async def test_two_replicas_answer_each_event_once_and_share_threads(
    make_settings: Callable[..., Settings], weaviate_server: EmbeddedWeaviate, shared_dsn: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, body in DOCS.items():
        (docs / name).write_text(body, encoding="utf-8")
    settings = make_settings(docs_paths=[str(docs)], database_url=shared_dsn)
    async with open_runtime(settings) as runtime:  # indexed once, before the replicas start
        await runtime.indexer.index()

    fake = FakeSlack()
    await fake.start()
    async with AsyncExitStack() as stack:
        stack.push_async_callback(fake.stop)
        http = await stack.enter_async_context(aiohttp.ClientSession())
        envs = [
            replica_environment(
                tmp_path / f"replica-{n}",
                weaviate_server,
                fake,
                settings.weaviate_collection,
                DATABASE_URL=shared_dsn,
                DOCS_PATHS=str(docs),
            )
            for n in range(2)
        ]
        replicas = [
            await stack.enter_async_context(running_replica(Path(env["DATA_DIR"]).parent, env, http))
            for env in envs
        ]

        # Round robin: event n to replica n % 2, its redelivery to the other one, at the same time.
        questions = {"4000.1": "how do I restore a backup?", "4000.2": "how do I install it?"}
        deliveries = []
        for n, (ts, words) in enumerate(questions.items()):
            body = event_body(mention(ts, words))
            deliveries.append(replicas[n % 2].slack.event(body))
            deliveries.append(replicas[(n + 1) % 2].slack.event(body, retry_num=1))
        assert [status for status, _ in await asyncio.gather(*deliveries)] == [200] * 4
        for ts in questions:
            await fake.wait_for(lambda ts=ts: finished_streams(fake, ts), timeout=30)
        [first] = finished_streams(fake, "4000.1")
        assert "restore.sh" in stream_text(first)

        # The follow-up goes to the replica that did not answer the thread; once it is answered, it is
        # redelivered to the one that did (as Slack does when an acknowledgement took over 3 s).
        [answerer] = await logged(lambda: answered_by(replicas, "4000.1"))
        other = 1 - answerer
        body = event_body(followup("4000.1", "4000.5", "and how long does it take?"))
        assert (await replicas[other].slack.event(body))[0] == 200
        await fake.wait_for(lambda: len(finished_streams(fake, "4000.1")) == 2, timeout=30)
        assert (await replicas[answerer].slack.event(body, retry_num=1))[0] == 200
        await asyncio.sleep(1.0)  # time for a duplicate answer to show up, were there one

        assert len(finished_streams(fake, "4000.1")) == 2 and len(finished_streams(fake, "4000.2")) == 1
        both = await logged(lambda: answered_by(replicas, "4000.1")[1:] and answered_by(replicas, "4000.1"))
        assert sorted(both) == sorted([answerer, other])
        assert len(answered_by(replicas, "4000.2")) == 1
        skipped = sum(replica.log().count("already answered (a Slack redelivery)") for replica in replicas)
        assert skipped == 3, [replica.log() for replica in replicas]
        # The thread's memory: with the question before it, the follow-up is about restores; the same
        # words in a new thread (no memory) find nothing about them.
        assert "ten minutes" in stream_text(finished_streams(fake, "4000.1")[1])
        await replicas[other].slack.event(event_body(mention("4000.9", "and how long does it take?")))
        [alone] = await fake.wait_for(lambda: finished_streams(fake, "4000.9"), timeout=30)
        assert "ten minutes" not in stream_text(alone)

        database = Database(shared_dsn)
        try:
            key = conversation_key(TEAM_ID, CHANNEL, "4000.1")
            thread_id = await database.thread_for_conversation(key)
            assert thread_id is not None
            page = await SqlStore(database).load_thread_items(
                thread_id, None, 20, "asc", RequestContext(conversation_key=key)
            )
            kinds = [item.type for item in page.data]
            assert kinds == ["user_message", "assistant_message"] * 2, kinds
        finally:
            await database.dispose()
    assert time.monotonic() - started < 60
