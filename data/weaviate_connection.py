"""The connection to Weaviate: a client that fails fast and clearly when the server is gone.

Without WEAVIATE_URL it runs the embedded server under a supervisor that restarts it when it dies;
while it is down, `client()` says so at once. Every call made in `reachable()` is watched
(`CallWatchdog`): one that waits on a server that died or stopped answering ends in
`StoreUnavailable` within seconds, instead of the client's minute of retries. Credentials in
WEAVIATE_URL never appear in a message.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

import aiohttp
import httpx
import weaviate
from weaviate.classes.init import AdditionalConfig, Auth, Timeout
from weaviate.exceptions import (
    AuthenticationFailedError,
    WeaviateBaseError,
    WeaviateClosedClientError,
    WeaviateConnectionError,
    WeaviateGRPCUnavailableError,
    WeaviateQueryError,
    WeaviateRetryError,
    WeaviateTimeoutError,
)

from configs.config import Settings
from data.call_watchdog import CallAbandoned, CallWatchdog
from data.errors import StoreUnavailable, WeaviateServerError
from data.redaction import redact_url
from data.weaviate_server import EmbeddedWeaviate
from data.weaviate_supervisor import ServerStatus, SupervisedWeaviate

DEFAULT_GRPC_PORT = 50051
WEAVIATE_CLOUD_DOMAINS = (".weaviate.cloud", ".weaviate.network")

# What the client raises when the server is not there (as opposed to refusing a request). A
# server that dies mid-request surfaces as httpx's own error: the client passes it through. A
# closed client is one replaced after the embedded server restarted, used by a call begun before.
UNREACHABLE = (
    WeaviateClosedClientError,
    WeaviateConnectionError,
    WeaviateGRPCUnavailableError,
    WeaviateRetryError,
    WeaviateTimeoutError,
    httpx.TransportError,
    OSError,
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a remote Weaviate listens (REST and gRPC)."""

    http_host: str
    http_port: int
    http_secure: bool
    grpc_host: str
    grpc_port: int
    grpc_secure: bool


def parse_endpoint(url: str, grpc_url: str | None) -> Endpoint:
    """`http(s)://host[:port]` plus an optional gRPC `[scheme://]host:port` (default: same host, 50051)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"WEAVIATE_URL must look like http://host:port or https://host, got {redact_url(url)!r}"
        )
    secure = parts.scheme == "https"
    http_port = parts.port or (443 if secure else 80)
    grpc_host, grpc_port, grpc_secure = parts.hostname, DEFAULT_GRPC_PORT, secure
    if not grpc_url and parts.hostname.endswith(WEAVIATE_CLOUD_DOMAINS):
        # Weaviate Cloud serves gRPC on a sibling host: grpc-<cluster host>:443.
        grpc_host, grpc_port, grpc_secure = f"grpc-{parts.hostname}", 443, True
    if grpc_url:
        grpc = urlsplit(grpc_url if "://" in grpc_url else f"//{grpc_url}")
        if not grpc.hostname:
            raise ValueError(f"WEAVIATE_GRPC_URL must look like host:port, got {redact_url(grpc_url)!r}")
        grpc_secure = grpc.scheme in ("https", "grpcs") or (not grpc.scheme and secure)
        grpc_host, grpc_port = grpc.hostname, grpc.port or (443 if grpc_secure else DEFAULT_GRPC_PORT)
    if (grpc_host, grpc_port) == (parts.hostname, http_port):
        raise ValueError(
            f"WEAVIATE_URL and WEAVIATE_GRPC_URL both point at {grpc_host}:{grpc_port}; Weaviate serves gRPC "
            "on a port of its own (usually 50051): set WEAVIATE_GRPC_URL to it."
        )
    return Endpoint(parts.hostname, http_port, secure, grpc_host, grpc_port, grpc_secure)


class WeaviateConnection:
    """A Weaviate client for `settings`, connecting (or starting the embedded server) on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: weaviate.WeaviateAsyncClient | None = None
        self._supervisor: SupervisedWeaviate | None = None
        self._endpoint: Endpoint | None = None
        self._api_key: str | None = None
        self._watchdog = CallWatchdog(
            self._answers_ready, self._down_reason, check_after=settings.weaviate_stall_check_seconds
        )

    @property
    def url(self) -> str:
        """Where Weaviate is (the embedded server's URL once it runs), without any credentials."""
        if self._supervisor is not None:
            return self._supervisor.server.url
        if self.settings.weaviate_url is not None:
            return redact_url(self.settings.weaviate_url)
        return f"embedded Weaviate on port {self.settings.weaviate_http_port}"

    @property
    def server_status(self) -> ServerStatus | None:
        """The embedded server's state (None for a remote Weaviate: it is someone else's to run)."""
        return self._supervisor.status() if self._supervisor is not None else None

    async def wait_gave_up(self) -> WeaviateServerError:
        """Return once the embedded server is beyond restarting; never for a remote Weaviate."""
        if self._supervisor is None:
            await asyncio.Event().wait()
        assert self._supervisor is not None
        return await self._supervisor.wait_gave_up()

    async def connect(self) -> None:
        """Start the embedded server if needed and connect; `StoreUnavailable` when it cannot."""
        if self._client is not None:
            return
        s = self.settings
        starts_server = s.weaviate_url is None and self._supervisor is None
        if s.weaviate_url is None:
            server = await self._start_embedded_server() if starts_server else self._running_server()
            url: str = server.url
            grpc_url: str | None = server.grpc_url
            self._api_key = server.api_key.get_secret_value()
        else:
            url, grpc_url = s.weaviate_url, s.weaviate_grpc_url
            self._api_key = s.weaviate_api_key.get_secret_value() if s.weaviate_api_key else None
        try:
            self._endpoint = parse_endpoint(url, grpc_url)
        except ValueError as exc:
            raise StoreUnavailable(str(exc)) from exc
        try:
            self._client = await self._open_client()
        except StoreUnavailable:
            if starts_server:
                await self._stop_server()
            raise

    def _running_server(self) -> EmbeddedWeaviate:
        assert self._supervisor is not None
        return self._supervisor.server

    async def _start_embedded_server(self) -> EmbeddedWeaviate:
        s = self.settings
        server = EmbeddedWeaviate(
            s.weaviate_binary,
            s.data_dir / "weaviate",
            http_port=s.weaviate_http_port,
            grpc_port=s.weaviate_grpc_port,
            startup_timeout=s.weaviate_startup_timeout,
            api_key=s.weaviate_api_key,  # None: a random key for this run
        )
        supervisor = SupervisedWeaviate(
            server,
            give_up_after=s.weaviate_restart_give_up_seconds,
            on_down=self._watchdog.abandon_all,
            on_up=self._reconnect,
        )
        try:
            await supervisor.start()
        except WeaviateServerError as exc:
            raise StoreUnavailable(str(exc)) from exc
        self._supervisor = supervisor
        return server

    async def _open_client(self) -> weaviate.WeaviateAsyncClient:
        """A connected client for `_endpoint`; `StoreUnavailable` saying why when it cannot connect."""
        endpoint = self._endpoint
        assert endpoint is not None
        client = weaviate.use_async_with_custom(
            http_host=endpoint.http_host,
            http_port=endpoint.http_port,
            http_secure=endpoint.http_secure,
            grpc_host=endpoint.grpc_host,
            grpc_port=endpoint.grpc_port,
            grpc_secure=endpoint.grpc_secure,
            auth_credentials=Auth.api_key(self._api_key) if self._api_key else None,
            additional_config=AdditionalConfig(timeout=Timeout(init=10, query=60, insert=120)),
        )
        try:
            await client.connect()
        except (WeaviateBaseError, *UNREACHABLE) as exc:
            with contextlib.suppress(Exception):
                await client.close()
            if isinstance(exc, AuthenticationFailedError) or getattr(exc, "status_code", None) in (401, 403):
                raise StoreUnavailable(
                    f"Weaviate at {self.url} refused the API key (WEAVIATE_API_KEY): {exc}"
                ) from exc
            raise StoreUnavailable(
                f"Cannot reach Weaviate at {self.url} (gRPC {endpoint.grpc_host}:{endpoint.grpc_port}): {exc}"
            ) from exc
        return client

    async def _reconnect(self) -> None:
        """A fresh client after the embedded server restarted: the old one's gRPC channel is backing
        off from the dead server. If this fails, the next `client()` call connects."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()
        self._client = await self._open_client()

    async def close(self) -> None:
        """Disconnect and stop the embedded server, if this connection started one."""
        client, self._client = self._client, None
        self._watchdog.close()
        try:
            if client is not None:
                await client.close()
        finally:
            await self._stop_server()

    async def _stop_server(self) -> None:
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            await supervisor.stop()

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def client(self) -> weaviate.WeaviateAsyncClient:
        """The connected client (connecting on first use); `StoreUnavailable` at once while the
        embedded server is down, instead of a call that waits on it."""
        if self._supervisor is not None and (reason := self._supervisor.unavailable_reason()):
            raise StoreUnavailable(reason)
        if self._client is None:
            await self.connect()
        assert self._client is not None
        return self._client

    @contextlib.contextmanager
    def reachable(self) -> Iterator[None]:
        """Turn "the server went away" into `StoreUnavailable` naming the URL, within seconds: a call
        is abandoned when the server dies or stops passing its readiness check (`CallWatchdog`)."""
        if self._supervisor is not None and (reason := self._supervisor.unavailable_reason()):
            raise StoreUnavailable(reason)  # a caller that got its client just before the server died
        try:
            with self._watchdog.watch():
                yield
        except CallAbandoned as exc:
            raise StoreUnavailable(str(exc)) from None
        except (*UNREACHABLE, WeaviateQueryError) as exc:
            if isinstance(exc, WeaviateQueryError) and "UNAVAILABLE" not in str(exc):
                raise
            raise StoreUnavailable(self._down_reason(f"stopped answering: {exc}")) from exc

    def _down_reason(self, what: str = "stopped answering (its readiness check failed)") -> str:
        if self._supervisor is not None and (reason := self._supervisor.unavailable_reason()):
            return reason
        return f"Weaviate at {self.url} {what}. Check that it is running, then try again."

    async def _answers_ready(self) -> bool:
        """The watchdog's check: Weaviate's readiness endpoint (not the client's: it prints errors)."""
        endpoint = self._endpoint
        if endpoint is None:
            return False
        scheme = "https" if endpoint.http_secure else "http"
        ready = f"{scheme}://{endpoint.http_host}:{endpoint.http_port}/v1/.well-known/ready"
        async with aiohttp.ClientSession() as http, http.get(ready) as response:
            return response.status == 200
