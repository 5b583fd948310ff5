"""Runs the locally built Weaviate server as a child process (the embedded default).

The bot needs no Docker: `make weaviate` builds the official server binary from source and this
module starts it on free (or configured) ports with its data in a directory of our own, waits
until it reports ready and stops it on exit. The server dies with the bot (`server_process`), and
a server a dead bot left on the same data directory is stopped before a new one starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import aiohttp
from pydantic import SecretStr

from data.errors import WeaviateServerError
from data.server_process import ServerPidFile, die_with_parent

logger = logging.getLogger(__name__)

BUILD_HINT = "Build it with `make weaviate` (needs Go; installs the server into .cache/weaviate/bin)."
REBUILD_HINT = "If the binary is broken or outdated, rebuild it with `make weaviate`."
_LOG_NAME = "weaviate-server.log"
_NODE_FILE = "embedded-node-name"
_TAIL_LINES = 40
# Only these variables of ours reach the server: anything else (WEAVIATE-style settings meant for a
# remote cluster, HOST/PORT, ...) could change how the embedded server behaves.
_INHERITED_ENV = ("PATH", "HOME", "TMPDIR", "TZ", "LANG", "LC_ALL", "GOMAXPROCS", "GOMEMLIMIT")


def free_port(host: str = "127.0.0.1", exclude: set[int] | None = None) -> int:
    """A port that is currently free for both TCP and UDP (Weaviate's gossip uses both)."""
    exclude = exclude or set()
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
        if port in exclude:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind((host, port))
        except OSError:
            continue
        return port
    raise WeaviateServerError("Could not find a free port for the embedded Weaviate server.")


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Like the server's own listener: TIME-WAIT leftovers of a previous run don't count as busy.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


class EmbeddedWeaviate:
    """A Weaviate server process owned by this Python process (async context manager)."""

    def __init__(
        self,
        binary: Path,
        data_dir: Path,
        *,
        http_port: int = 0,
        grpc_port: int = 0,
        host: str = "127.0.0.1",
        startup_timeout: float = 90.0,
        stop_grace: float = 15.0,
        api_key: SecretStr | None = None,
    ) -> None:
        """Ports of 0 mean "pick free ones"; the cluster-internal ports are always picked free.

        Weaviate's gRPC and cluster ports listen on every interface whatever `host` says, so the
        server never allows anonymous access: clients use `api_key` (random unless given).
        """
        self.binary = Path(binary)
        self.data_dir = Path(data_dir)
        self.host = host
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        taken: set[int] = set()
        self.http_port = self._port(http_port, taken)
        self.grpc_port = self._port(grpc_port, taken)
        self.api_key = api_key or SecretStr(secrets.token_urlsafe(32))
        self._cluster_password = secrets.token_urlsafe(32)
        self.startup_seconds: float | None = None
        self._node = ""  # read from (or created in) the data dir at start
        self._process: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None
        self._pid_file = ServerPidFile(self.data_dir)

    def _port(self, wanted: int, taken: set[int]) -> int:
        port = wanted or free_port(self.host, taken)
        taken.add(port)
        return port

    @property
    def url(self) -> str:
        """The REST endpoint, e.g. http://127.0.0.1:8079."""
        return f"http://{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        """The gRPC endpoint in the same URL form (the client needs both)."""
        return f"http://{self.host}:{self.grpc_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / _LOG_NAME

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    def _environment(self) -> dict[str, str]:
        """Server settings: API-key access only, no modules, no telemetry, private cluster ports."""
        taken = {self.http_port, self.grpc_port}
        gossip, data, raft, raft_rpc = (self._port(0, taken) for _ in range(4))
        node = self._node
        env = {key: os.environ[key] for key in _INHERITED_ENV if key in os.environ}
        env.update(
            PERSISTENCE_DATA_PATH=str(self.data_dir.resolve()),  # absolute: how a left-over one is found
            AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED="false",
            AUTHENTICATION_APIKEY_ENABLED="true",
            AUTHENTICATION_APIKEY_ALLOWED_KEYS=self.api_key.get_secret_value(),
            AUTHENTICATION_APIKEY_USERS="docsbot",
            CLUSTER_BASIC_AUTH_USERNAME="docsbot",
            CLUSTER_BASIC_AUTH_PASSWORD=self._cluster_password,
            DEFAULT_VECTORIZER_MODULE="none",
            # Our collections are created with their schema: an object with an unknown property is
            # a bug to report, not a reason to change the schema behind our back.
            AUTOSCHEMA_ENABLED="false",
            ENABLE_MODULES="",
            DISABLE_TELEMETRY="true",
            GO_PROFILING_DISABLE="true",
            GRPC_PORT=str(self.grpc_port),
            CLUSTER_HOSTNAME=node,
            CLUSTER_BIND_ADDR=self.host,
            CLUSTER_ADVERTISE_ADDR=self.host,
            CLUSTER_GOSSIP_BIND_PORT=str(gossip),
            CLUSTER_DATA_BIND_PORT=str(data),
            RAFT_PORT=str(raft),
            RAFT_INTERNAL_RPC_PORT=str(raft_rpc),
            RAFT_JOIN=f"{node}:{raft}",
            RAFT_BOOTSTRAP_EXPECT="1",
            # One node elects itself: the default 5x timeouts (for busy multi-node clusters) only
            # delay readiness (~8s -> ~4s). CLUSTER_IN_LOCALHOST stays off: it would assume the
            # internal RPC port is RAFT_PORT + 1.
            RAFT_TIMEOUTS_MULTIPLIER="1",
            # The raft ports are picked afresh each start; let the single node adopt its new address.
            RAFT_ENABLE_ONE_NODE_RECOVERY="true",
            LOG_LEVEL="warning",
            LOG_FORMAT="text",
        )
        return env

    def _node_name(self) -> str:
        """The node name belongs to the data: shards are assigned to it, so it must not change."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / _NODE_FILE
        if path.is_file() and (name := path.read_text(encoding="utf-8").strip()):
            return name
        name = f"embedded-{uuid.uuid4().hex[:8]}"
        path.write_text(name + "\n", encoding="utf-8")
        return name

    async def start(self) -> None:
        """Start the server (again, after it died) and wait until `/v1/.well-known/ready` answers 200."""
        if self.running:
            return
        await self._forget_exited_process()
        if not await asyncio.to_thread(self.binary.is_file):
            raise WeaviateServerError(f"The Weaviate server binary is missing: {self.binary}. {BUILD_HINT}")
        await asyncio.to_thread(self._pid_file.stop_left_over_server, self.stop_grace)
        for port, setting in ((self.http_port, "WEAVIATE_HTTP_PORT"), (self.grpc_port, "WEAVIATE_GRPC_PORT")):
            if not _port_is_free(self.host, port):
                raise WeaviateServerError(
                    f"Port {port} ({setting}) on {self.host} is already in use, so the embedded Weaviate "
                    "cannot listen there. Is another bot instance running? Stop it or choose another port."
                )
        self._node = await asyncio.to_thread(self._node_name)
        self._log = await asyncio.to_thread(self.log_path.open, "ab")
        started = time.monotonic()
        try:
            self._process = await asyncio.create_subprocess_exec(
                str(self.binary),
                "--host",
                self.host,
                "--port",
                str(self.http_port),
                "--scheme",
                "http",
                env=self._environment(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=self._log,
                stderr=asyncio.subprocess.STDOUT,
                preexec_fn=die_with_parent(),
            )
        except OSError as exc:
            await self._close_log()
            raise WeaviateServerError(f"Could not run {self.binary}: {exc}. {BUILD_HINT}") from exc
        try:
            await asyncio.to_thread(self._pid_file.record, self._process.pid)
            await self._wait_ready(started)
        except BaseException:
            await self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        logger.info(
            "Embedded Weaviate ready at %s (gRPC %s) in %.1fs; data in %s",
            self.url,
            self.grpc_port,
            self.startup_seconds,
            self.data_dir,
        )

    async def _wait_ready(self, started: float) -> None:
        assert self._process is not None
        ready_url = f"{self.url}/v1/.well-known/ready"
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while True:
                if self._process.returncode is not None:
                    raise WeaviateServerError(
                        f"The Weaviate server exited with code {self._process.returncode} while starting."
                        f"{await self._log_tail()}\n{REBUILD_HINT}"
                    )
                with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
                    async with http.get(ready_url) as response:
                        ready = response.status == 200
                    if ready and await self._answers_as_our_node(http):
                        return
                if time.monotonic() - started > self.startup_timeout:
                    raise WeaviateServerError(
                        f"The Weaviate server at {self.url} was not ready after {self.startup_timeout:.0f}s "
                        f"(WEAVIATE_STARTUP_TIMEOUT).{await self._log_tail()}\n{REBUILD_HINT}"
                    )
                await asyncio.sleep(0.2)

    async def _answers_as_our_node(self, http: aiohttp.ClientSession) -> bool:
        """Whoever answers on our port must be our process (not, say, a server started earlier)."""
        headers = {"Authorization": f"Bearer {self.api_key.get_secret_value()}"}
        async with http.get(f"{self.url}/v1/nodes", headers=headers) as response:
            body = await response.json(content_type=None)
        names = {node.get("name") for node in body.get("nodes", [])} if isinstance(body, dict) else set()
        return self._node in names

    async def _log_tail(self) -> str:
        """The last lines of the server log, to put into error messages."""

        def read() -> str:
            try:
                lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                return ""
            return "\n".join(lines[-_TAIL_LINES:])

        tail = await asyncio.to_thread(read)
        if not tail:
            return f" Its log ({self.log_path}) is empty."
        return f"\nLast lines of {self.log_path}:\n{tail}"

    async def wait_exited(self) -> int:
        """Wait until the running server exits, for whatever reason; its exit code (-N: signal N)."""
        if self._process is None:
            raise WeaviateServerError("The embedded Weaviate server is not running.")
        return await self._process.wait()

    async def _forget_exited_process(self) -> None:
        """After the server died on its own: release what it held, so `start` can run it again."""
        process, self._process = self._process, None
        if process is not None:
            await asyncio.to_thread(self._pid_file.clear, process.pid)
        await self._close_log()

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after the grace period; safe to call twice."""
        process, self._process = self._process, None
        try:
            if process is not None and process.returncode is None:
                await self._terminate(process)
        finally:
            if process is not None:
                # Synchronous, so a cancelled stop clears it too: the server is gone (or killed).
                self._pid_file.clear(process.pid)
        await self._close_log()

    async def _terminate(self, process: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), self.stop_grace)
        except TimeoutError:
            logger.warning("Weaviate did not stop within %.0fs; killing it", self.stop_grace)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        except asyncio.CancelledError:
            # Cancelled while waiting (Ctrl-C): never leave the server running behind us.
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            raise

    async def _close_log(self) -> None:
        log, self._log = self._log, None
        if log is not None:
            await asyncio.to_thread(log.close)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
