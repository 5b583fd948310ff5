"""A 3-node Weaviate cluster on 127.0.0.1 (the real server, three processes): the index is kept in
3 copies, one node is killed, and searches, answers and an incremental reindex go on; the store's
health says the cluster is degraded but readable; when the node returns, its copy converges. Then
another node is killed, a full rebuild makes a new generation without it, and on its return that
node holds the new generation and no longer the old one.

Convergence is checked copy by copy: Weaviate's `GET /v1/objects/{collection}/{id}?node_name=`
reads one node's replica, so a node that missed the reindex shows stale or deleted chunks until
async replication repairs it (with ASYNC_REPLICATION_DISABLED=true on the nodes this test fails).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from conftest import WEAVIATE_BINARY, MakeSettings
from docs_corpus import DOCS

from bench.weaviate_cluster import LocalCluster
from configs.config import Settings
from data.cluster_health import ClusterHealth, copies_needed
from data.vector_store import WeaviateVectorStore
from data.weaviate_schema import registry_name, replication_spec
from services.chat.contract import Answer
from services.console import answer_once
from services.runtime import Runtime, open_runtime

pytestmark = pytest.mark.timeout(240)

CONVERGE_SECONDS = 60.0


def test_replication_spec_follows_the_server_version() -> None:
    assert replication_spec(1, True, "1.39.3") == {}  # one copy: the server's default, as before
    modern = replication_spec(3, True, "1.39.3")["replication_config"]
    assert modern.factor == 3 and modern.asyncEnabled is None  # 1.38+ decides async itself
    assert modern.deletionStrategy is not None and modern.deletionStrategy.value == "TimeBasedResolution"
    with pytest.warns(DeprecationWarning):  # the client's: the field is gone from 1.38 on
        older = replication_spec(3, False, "1.36.9")["replication_config"]
    assert older.asyncEnabled is False


def test_copies_needed_per_consistency_level() -> None:
    assert [copies_needed(level, 3) for level in ("ONE", "QUORUM", "ALL")] == [1, 2, 3]
    assert copies_needed("QUORUM", 1) == 1 and copies_needed("QUORUM", 5) == 3


def test_health_tells_degraded_from_down() -> None:
    nodes = {"node0": "HEALTHY", "node1": "HEALTHY", "node2": "UNAVAILABLE"}
    one_down = ClusterHealth(nodes, 3, True, "QUORUM", "ALL", fewest_copies=2)
    assert one_down.degraded and one_down.readable and not one_down.writable  # ALL needs all 3
    two_down = ClusterHealth({**nodes, "node1": "UNAVAILABLE"}, 3, True, "QUORUM", "QUORUM", 1)
    assert not two_down.readable and not two_down.writable
    unreachable = ClusterHealth({}, None, None, "QUORUM", "QUORUM", None, error="refused")
    assert unreachable.degraded and not unreachable.readable
    single = ClusterHealth({"embedded-1": "HEALTHY"}, 1, False, "QUORUM", "QUORUM", 1)
    assert not single.degraded and single.readable and single.writable


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[LocalCluster]:
    async with LocalCluster(WEAVIATE_BINARY, tmp_path / "cluster") as running:
        yield running


async def _until(what: str, check: Callable[[], Awaitable[bool]], seconds: float) -> float:
    """Poll `check` until it holds; the seconds it took (fails the test after `seconds`)."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > seconds:
            pytest.fail(f"{what}: not within {seconds:.0f}s")
        await asyncio.sleep(0.5)
    return time.monotonic() - started


async def _objects(store: WeaviateVectorStore, collection: str) -> dict[str, str]:
    """Every object of `collection` read through the cluster (QUORUM): id -> its text or state."""
    client = await store.client()
    found: dict[str, str] = {}
    async for obj in client.collections.use(collection).iterator():
        props = obj.properties
        found[str(obj.uuid)] = str(props.get("text") or props.get("content_hash"))
    return found


async def _stale_on_node(
    cluster: LocalCluster, node: str, collection: str, expected: dict[str, str], gone: set[str]
) -> list[str]:
    """What `node`'s own replica gets wrong: ids missing or outdated, and deleted ids still there."""
    base = f"{next(n for n in cluster.nodes if n.running and n.name != node).url}/v1/objects/{collection}"
    headers = {"Authorization": f"Bearer {cluster.api_key.get_secret_value()}"}
    wrong: list[str] = []
    async with aiohttp.ClientSession(headers=headers) as http:
        for object_id, value in expected.items():
            async with http.get(f"{base}/{object_id}", params={"node_name": node}) as response:
                body = await response.json() if response.status == 200 else {}
            props = body.get("properties", {})
            if str(props.get("text") or props.get("content_hash")) != value:
                wrong.append(f"{object_id}: {response.status}")
        for object_id in gone:
            async with http.get(f"{base}/{object_id}", params={"node_name": node}) as response:
                if response.status != 404:
                    wrong.append(f"{object_id} (deleted): {response.status}")
    return wrong


async def _lose(cluster: LocalCluster, store: WeaviateVectorStore, node: str) -> None:
    """Kill `node` and wait until the store reports it down and counts no longer wait on it.

    Counts (aggregations) have no replica fallback: until gossip declares the node dead (seconds)
    they wait on it up to the query timeout; `status` and a reindex's first step use them.
    """
    await cluster.node(node).kill()

    async def reported_down() -> bool:
        return node in (await store.cluster_health()).down

    async def counts_answer() -> bool:
        try:
            return await asyncio.wait_for(store.stats(), 2) is not None
        except TimeoutError:
            return False

    await _until(f"{node} shows as down", reported_down, 20)
    await _until(f"counts answer without {node}", counts_answer, 30)


async def _return(cluster: LocalCluster, store: WeaviateVectorStore, node: str) -> None:
    await cluster.node(node).start()

    async def all_healthy() -> bool:
        return not (await store.cluster_health()).degraded

    await _until(f"{node} is healthy again", all_healthy, 30)


async def _ask(runtime: Runtime, question: str) -> Answer:
    result = await answer_once(runtime.chat, f"cluster:{question}", question, lambda _text: None)
    assert isinstance(result, Answer), result
    return result


async def test_one_node_down_keeps_answers_and_reindex_then_converges(
    cluster: LocalCluster, make_plain_settings: MakeSettings, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    # The worst first loss is the RAFT leader: the bot talks to another node, the leader dies first
    # (an incremental reindex while it is down), the third node second (a full rebuild meanwhile).
    killed = await cluster.leader()
    entry = next(node for node in cluster.nodes if node.name != killed)
    second_name = next(node.name for node in cluster.nodes if node.name not in (killed, entry.name))
    settings: Settings = make_plain_settings(
        weaviate_url=entry.url,
        weaviate_grpc_url=entry.grpc_url,
        weaviate_api_key=cluster.api_key,
        weaviate_replication_factor=3,
        docs_paths=[str(docs)],
    )
    async with open_runtime(settings) as runtime:
        store = runtime.store
        assert isinstance(store, WeaviateVectorStore)
        first = await runtime.indexer.index()
        assert first.added == 5 and first.failed == 0, first.summary()

        healthy = await store.cluster_health()
        assert healthy.nodes == {"node0": "HEALTHY", "node1": "HEALTHY", "node2": "HEALTHY"}
        assert healthy.replication_factor == 3 and healthy.fewest_copies == 3
        assert healthy.async_replication is True
        assert not healthy.degraded and healthy.readable and healthy.writable
        physical = await store.serving_collection()
        assert physical is not None
        client = await store.client()
        registry = await client.collections.use(registry_name(physical)).config.get()
        assert registry.replication_config.factor == 3  # incremental reindexes need the registry too
        chunks_before = await _objects(store, physical)
        states_before = await _objects(store, registry_name(physical))

        await cluster.node(killed).kill()
        # At once, before the cluster has noticed: searches and answers go on (QUORUM = 2 of 3).
        passages = await runtime.retriever.search("What is the default region?")
        assert passages and passages[0].source.endswith("configuration.rst")
        answer = await _ask(runtime, "What does error E1042 mean?")
        assert "another deploy" in answer.text and answer.sources
        await _lose(cluster, store, killed)  # already dead: waits for the cluster to notice
        # By now gossip has dropped the node from /v1/nodes; RAFT still counts it, and so does health.
        degraded: ClusterHealth = await store.cluster_health()
        assert degraded.down == [killed] and degraded.fewest_copies == 2, degraded
        assert degraded.degraded and degraded.readable and degraded.writable
        nodes_line = degraded.describe(new_factor=3)[0]  # what `status` prints
        assert f"{killed} UNAVAILABLE" in nodes_line and "2 of 3 copies" in nodes_line, nodes_line

        # A reindex while the node is down: one document changed, one deleted, one added.
        install = docs / "install.md"
        install.write_text(install.read_text() + "\n\nThe installer also runs on FreeBSD 14.\n")
        (docs / "faq.txt").unlink()
        (docs / "oncall.md").write_text("# On call\n\nThe on-call rotation changes every Tuesday at 09:00.\n")
        reindex = await runtime.indexer.index()
        assert (reindex.added, reindex.updated, reindex.deleted, reindex.failed) == (1, 1, 1, 0), (
            reindex.summary()
        )
        oncall = await runtime.retriever.search("When does the on-call rotation change?")
        assert oncall and oncall[0].source.endswith("oncall.md")

        chunks_after = await _objects(store, physical)
        states_after = await _objects(store, registry_name(physical))
        assert chunks_after != chunks_before and states_after != states_before

        restarted = time.monotonic()
        await _return(cluster, store, killed)

        async def converged() -> bool:
            chunks = await _stale_on_node(
                cluster, killed, physical, chunks_after, set(chunks_before) - set(chunks_after)
            )
            states = await _stale_on_node(
                cluster,
                killed,
                registry_name(physical),
                states_after,
                set(states_before) - set(states_after),
            )
            return not chunks and not states

        await _until("the returned node's copy converges", converged, CONVERGE_SECONDS)
        print(f"{killed} converged {time.monotonic() - restarted:.1f}s after its restart")
        answer = await _ask(runtime, "Does the installer run on FreeBSD?")
        assert "FreeBSD" in answer.text

        # Round two: another node goes (the copies that serve now include the one that returned),
        # and a full rebuild creates a new generation, swaps the alias and drops the old one.
        await _lose(cluster, store, second_name)
        rebuild = await runtime.indexer.index(full=True)
        assert rebuild.seen == 5 and rebuild.failed == 0, rebuild.summary()
        rebuilt = await store.serving_collection()
        assert rebuilt is not None and rebuilt != physical
        assert (await store.cluster_health()).replication_factor == 3
        oncall = await runtime.retriever.search("When does the on-call rotation change?")
        assert oncall and oncall[0].source.endswith("oncall.md")
        new_chunks = await _objects(store, rebuilt)
        new_states = await _objects(store, registry_name(rebuilt))

        restarted = time.monotonic()
        await _return(cluster, store, second_name)
        second = cluster.node(second_name)
        headers = {"Authorization": f"Bearer {cluster.api_key.get_secret_value()}"}

        async def rebuilt_everywhere() -> bool:
            """The returned node learnt the new generation (RAFT) and holds a full copy of it."""
            async with aiohttp.ClientSession(headers=headers) as http:
                async with http.get(f"{second.url}/v1/schema/{physical}") as response:
                    old_dropped = response.status == 404
            chunks = await _stale_on_node(cluster, second_name, rebuilt, new_chunks, set())
            states = await _stale_on_node(cluster, second_name, registry_name(rebuilt), new_states, set())
            return old_dropped and not chunks and not states

        await _until("the second node's copy of the new generation", rebuilt_everywhere, CONVERGE_SECONDS)
        print(f"{second_name} converged {time.monotonic() - restarted:.1f}s after its restart")
        assert not (await store.cluster_health()).degraded
