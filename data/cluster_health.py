"""The Weaviate cluster as `status` and health checks see it: its nodes, and whether every shard
of the serving index has enough live copies to be searched and written at the configured
consistency levels (WEAVIATE_READ_CONSISTENCY, WEAVIATE_WRITE_CONSISTENCY).

A node that dies leaves `/v1/nodes` within seconds (gossip forgets it) but stays in RAFT's
configuration, so the members come from both: a 3-node cluster with one node dead reads as 3
nodes, one UNAVAILABLE, not as a healthy 2-node cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from weaviate import WeaviateAsyncClient
from weaviate.exceptions import WeaviateBaseError

Consistency = Literal["ONE", "QUORUM", "ALL"]


def copies_needed(level: Consistency, factor: int) -> int:
    """How many copies of a shard must answer at `level` when there are `factor` of them."""
    return {"ONE": 1, "QUORUM": factor // 2 + 1, "ALL": factor}[level]


@dataclass(frozen=True, slots=True)
class ClusterHealth:
    """The store's nodes and the live copies of the serving index's worst-off shard.

    `degraded` (a node or a copy missing) is for operators; `readable` decides whether answers
    work, so a readiness check should use it: one node down with 3 copies at QUORUM is degraded,
    not down.
    """

    nodes: dict[str, str]  # node name -> HEALTHY, UNHEALTHY, UNAVAILABLE or TIMEOUT
    replication_factor: int | None  # of the serving index; None before the first index
    async_replication: bool | None
    read_consistency: Consistency
    write_consistency: Consistency
    fewest_copies: int | None  # live copies of the worst-off shard; None before the first index
    error: str | None = None  # why the nodes could not be asked

    @property
    def down(self) -> list[str]:
        return sorted(name for name, status in self.nodes.items() if status != "HEALTHY")

    def _enough(self, level: Consistency) -> bool:
        if self.error is not None or len(self.down) == len(self.nodes):
            return False
        needed = copies_needed(level, self.replication_factor or 1)
        return self.fewest_copies is None or self.fewest_copies >= needed

    @property
    def readable(self) -> bool:
        return self._enough(self.read_consistency)

    @property
    def writable(self) -> bool:
        return self._enough(self.write_consistency)

    @property
    def degraded(self) -> bool:
        missing = self.fewest_copies is not None and self.fewest_copies < (self.replication_factor or 1)
        return bool(self.down) or missing or not (self.readable and self.writable)

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodes": self.nodes,
            "down": self.down,
            "degraded": self.degraded,
            "readable": self.readable,
            "writable": self.writable,
            "replication_factor": self.replication_factor,
            "fewest_copies": self.fewest_copies,
            "async_replication": self.async_replication,
            "read_consistency": self.read_consistency,
            "write_consistency": self.write_consistency,
            "error": self.error,
        }

    def describe(self, new_factor: int) -> list[str]:
        """Two lines for `status`: every node's state, then the replication the index has and gets."""
        if self.error is not None:
            return [f"Weaviate nodes: not answering ({self.error})"]
        nodes = ", ".join(f"{name} {state}" for name, state in sorted(self.nodes.items()))
        line = f"Weaviate nodes: {len(self.nodes)} — {nodes}"
        factor = self.replication_factor
        if self.degraded:
            works = {True: "work", False: "FAIL"}
            copies = f"{self.fewest_copies} of {factor} copies of a shard live; " if factor else ""
            line += (
                f" (degraded: {copies}searches {works[self.readable]} at {self.read_consistency}, "
                f"writes {works[self.writable]} at {self.write_consistency})"
            )
        repair = {True: "on", False: "off", None: "n/a"}[self.async_replication]
        has = f"factor {factor}, async repair {repair}" if factor is not None else "no index yet"
        return [
            line,
            f"Replication: {has}; new index generations get factor {new_factor}; "
            f"consistency: searches {self.read_consistency}, writes {self.write_consistency}",
        ]


async def read_cluster_health(
    client: WeaviateAsyncClient, physical: str | None, read: Consistency, write: Consistency
) -> ClusterHealth:
    """Nodes from `/v1/nodes` and RAFT; per shard of `physical` (the serving index), its live copies."""
    nodes = await client.cluster.nodes(collection=physical, output="verbose")
    status = {name: "UNAVAILABLE" for name in await _raft_members(client)}
    status.update((node.name, node.status) for node in nodes)
    if physical is None:
        return ClusterHealth(status, None, None, read, write, None)
    collection = client.collections.use(physical)
    replication = (await collection.config.get()).replication_config
    live = [{shard.name for shard in node.shards} for node in nodes if node.status == "HEALTHY"]
    shards = [shard.name for shard in await collection.config.get_shards()]
    fewest = min((sum(shard in held for held in live) for shard in shards), default=0)
    return ClusterHealth(status, replication.factor, replication.async_enabled, read, write, fewest)


async def _raft_members(client: WeaviateAsyncClient) -> set[str]:
    """Every node RAFT counts as a member, up or down; empty where the statistics are not served
    (an older server, or a key without the permission): then the live nodes are all we know."""
    try:
        statistics = await client.cluster.statistics()
    except WeaviateBaseError:
        return set()
    return {member.node_id for node in statistics.statistics for member in node.raft.latest_configuration}
