"""A 3-node Weaviate cluster on 127.0.0.1 from the locally built server, for tests and the bench.

Each node is the project's `EmbeddedWeaviate` (same start, readiness wait, logs and cleanup) with
the cluster settings of Weaviate's own local multi-node setup: every node binds its own gossip,
data and RAFT ports on one host, `CLUSTER_IN_LOCALHOST` makes RAFT look peers' ports up by node
name (from `RAFT_JOIN`) and expects each node's internal RPC port at RAFT_PORT + 1. Ports stay the
same across a node's restarts: its peers know it by them. Not production code: a real cluster is
Weaviate's Helm chart (docs/deployment.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import aiohttp
from pydantic import SecretStr

from data.weaviate_server import EmbeddedWeaviate, free_port

# Peers of a killed node notice within seconds instead of ~30 s; async replication repairs a
# returning node every 5 s (Weaviate's minimum) and propagates writes older than 1 s (default 30 s),
# so a test sees convergence in bounded time. Production keeps Weaviate's defaults.
FAST_CLUSTER_ENV = {
    "MEMBERLIST_FAST_FAILURE_DETECTION": "true",
    "ASYNC_REPLICATION_FREQUENCY": "5s",
    "ASYNC_REPLICATION_FREQUENCY_WHILE_PROPAGATING": "1s",
    "ASYNC_REPLICATION_PROPAGATION_DELAY": "1s",
}


@dataclass(frozen=True, slots=True)
class NodePorts:
    """One node's ports; its internal RAFT RPC port is `raft + 1` (CLUSTER_IN_LOCALHOST's rule)."""

    http: int
    grpc: int
    gossip: int
    data: int
    raft: int


def _pick_ports(count: int, host: str = "127.0.0.1") -> list[NodePorts]:
    taken: set[int] = set()

    def one() -> int:
        port = free_port(host, taken)
        taken.add(port)
        return port

    def raft_pair() -> int:
        for _ in range(100):
            port = one()
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                try:
                    probe.bind((host, port + 1))
                except OSError:
                    continue
            if port + 1 not in taken:
                taken.add(port + 1)
                return port
        raise RuntimeError("no two consecutive free ports for RAFT")

    return [NodePorts(one(), one(), one(), one(), raft_pair()) for _ in range(count)]


class ClusterNode(EmbeddedWeaviate):
    """One member of a `LocalCluster`: a fixed node name and ports, and peers to join."""

    def __init__(
        self,
        binary: Path,
        data_dir: Path,
        *,
        name: str,
        ports: NodePorts,
        peers: dict[str, NodePorts],
        api_key: SecretStr,
        cluster_password: str,
        extra_env: dict[str, str],
        startup_timeout: float,
    ) -> None:
        super().__init__(
            binary,
            data_dir,
            http_port=ports.http,
            grpc_port=ports.grpc,
            api_key=api_key,
            startup_timeout=startup_timeout,
        )
        self.name = name
        self.ports = ports
        self._peers = peers
        self._cluster_password = cluster_password  # every node must share it (cluster-internal API)
        self._extra_env = extra_env

    def _node_name(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.name

    def _environment(self) -> dict[str, str]:
        """The single-node settings, with the cluster's in place of the one-node RAFT."""
        env = super()._environment()
        env.pop("RAFT_ENABLE_ONE_NODE_RECOVERY", None)
        others = [p for n, p in self._peers.items() if n != self.name]
        env.update(
            CLUSTER_IN_LOCALHOST="true",
            CLUSTER_GOSSIP_BIND_PORT=str(self.ports.gossip),
            CLUSTER_DATA_BIND_PORT=str(self.ports.data),
            # Every peer, not one seed: a restarted seed must find the others too.
            CLUSTER_JOIN=",".join(f"{self.host}:{p.gossip}" for p in others),
            RAFT_PORT=str(self.ports.raft),
            RAFT_INTERNAL_RPC_PORT=str(self.ports.raft + 1),
            RAFT_JOIN=",".join(f"{name}:{p.raft}" for name, p in self._peers.items()),
            RAFT_BOOTSTRAP_EXPECT=str(len(self._peers)),
        )
        env.update(self._extra_env)
        return env

    async def kill(self) -> None:
        """SIGKILL, like a crashed machine: no clean shutdown, no goodbye to the peers."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        await self._forget_exited_process()


class LocalCluster:
    """`size` Weaviate nodes on 127.0.0.1 that form one cluster (async context manager)."""

    def __init__(
        self,
        binary: Path,
        root: Path,
        *,
        size: int = 3,
        extra_env: dict[str, str] | None = None,
        startup_timeout: float = 120.0,
    ) -> None:
        if root.exists():
            shutil.rmtree(root)
        api_key = SecretStr(secrets.token_urlsafe(24))
        password = secrets.token_urlsafe(24)
        names = [f"node{i}" for i in range(size)]
        peers = dict(zip(names, _pick_ports(size), strict=True))
        env = {**FAST_CLUSTER_ENV, **(extra_env or {})}
        self.api_key = api_key
        self.nodes = [
            ClusterNode(
                binary,
                root / name,
                name=name,
                ports=ports,
                peers=peers,
                api_key=api_key,
                cluster_password=password,
                extra_env=env,
                startup_timeout=startup_timeout,
            )
            for name, ports in peers.items()
        ]

    def node(self, name: str) -> ClusterNode:
        return next(n for n in self.nodes if n.name == name)

    async def leader(self) -> str:
        """The RAFT leader's node name, as a running node reports it."""
        headers = {"Authorization": f"Bearer {self.api_key.get_secret_value()}"}
        running = next(n for n in self.nodes if n.running)
        async with (
            aiohttp.ClientSession(headers=headers) as http,
            http.get(f"{running.url}/v1/cluster/statistics") as response,
        ):
            body = await response.json()
        return str(next(n["leaderId"] for n in body["statistics"] if n.get("leaderId")))

    async def start(self) -> None:
        """All nodes at once: none is ready before RAFT_BOOTSTRAP_EXPECT nodes have joined."""
        try:
            await asyncio.gather(*(node.start() for node in self.nodes))
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        await asyncio.gather(*(node.stop() for node in self.nodes), return_exceptions=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def log_tails(self, lines: int = 15) -> str:
        """The end of every node's log, for a failure message."""
        out: list[str] = []
        for node in self.nodes:
            try:
                tail: Sequence[str] = node.log_path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                tail = ["(no log)"]
            out.append(f"--- {node.name} ({node.log_path})\n" + "\n".join(tail))
        return "\n".join(out)
