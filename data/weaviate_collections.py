"""The connection to Weaviate and the index generations behind one collection alias.

The store (searches) and the index writer (writes, and the alias swap that ends a rebuild) both
work through `WeaviateCollections`, so neither needs the other. A generation is one physical
chunk collection plus its document registry (names in `weaviate_schema`); the alias points at the
serving one.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

import weaviate
from weaviate.classes.init import AdditionalConfig, Auth, Timeout
from weaviate.exceptions import (
    AuthenticationFailedError,
    UnexpectedStatusCodeError,
    WeaviateBaseError,
    WeaviateConnectionError,
    WeaviateGRPCUnavailableError,
    WeaviateQueryError,
    WeaviateRetryError,
    WeaviateTimeoutError,
)

from configs.config import Settings
from data.errors import IndexWriteError, StoreUnavailable, WeaviateServerError
from data.weaviate_schema import (
    REGISTRY_SUFFIX,
    GenerationInfo,
    chunk_collection_spec,
    generation_pattern,
    new_generation_name,
    registry_collection_spec,
    registry_name,
)
from data.weaviate_server import EmbeddedWeaviate

logger = logging.getLogger(__name__)

DEFAULT_GRPC_PORT = 50051
WEAVIATE_CLOUD_DOMAINS = (".weaviate.cloud", ".weaviate.network")

# What the client raises when the server is not there (as opposed to refusing a request).
UNREACHABLE = (
    WeaviateConnectionError,
    WeaviateGRPCUnavailableError,
    WeaviateRetryError,
    WeaviateTimeoutError,
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
        raise ValueError(f"WEAVIATE_URL must look like http://host:port or https://host, got {url!r}")
    secure = parts.scheme == "https"
    http_port = parts.port or (443 if secure else 80)
    grpc_host, grpc_port, grpc_secure = parts.hostname, DEFAULT_GRPC_PORT, secure
    if not grpc_url and parts.hostname.endswith(WEAVIATE_CLOUD_DOMAINS):
        # Weaviate Cloud serves gRPC on a sibling host: grpc-<cluster host>:443.
        grpc_host, grpc_port, grpc_secure = f"grpc-{parts.hostname}", 443, True
    if grpc_url:
        grpc = urlsplit(grpc_url if "://" in grpc_url else f"//{grpc_url}")
        if not grpc.hostname:
            raise ValueError(f"WEAVIATE_GRPC_URL must look like host:port, got {grpc_url!r}")
        grpc_secure = grpc.scheme in ("https", "grpcs") or (not grpc.scheme and secure)
        grpc_host, grpc_port = grpc.hostname, grpc.port or (443 if grpc_secure else DEFAULT_GRPC_PORT)
    if (grpc_host, grpc_port) == (parts.hostname, http_port):
        raise ValueError(
            f"WEAVIATE_URL and WEAVIATE_GRPC_URL both point at {grpc_host}:{grpc_port}; Weaviate serves gRPC "
            "on a port of its own (usually 50051): set WEAVIATE_GRPC_URL to it."
        )
    return Endpoint(parts.hostname, http_port, secure, grpc_host, grpc_port, grpc_secure)


class WeaviateCollections:
    """A Weaviate client and the generations of the alias `settings.weaviate_collection`.

    Without WEAVIATE_URL it runs its own embedded server. The serving generation is remembered
    briefly (see `serving_collection`), and each generation's embedder forever: it never changes.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.alias = settings.weaviate_collection
        self._client: weaviate.WeaviateAsyncClient | None = None
        self._server: EmbeddedWeaviate | None = None
        self._info: dict[str, GenerationInfo] = {}
        self._serving: tuple[str, float] | None = None  # (alias target, monotonic time read)

    @property
    def url(self) -> str:
        """Where Weaviate is (the embedded server's URL once it runs)."""
        if self._server is not None:
            return self._server.url
        return self.settings.weaviate_url or f"embedded Weaviate on port {self.settings.weaviate_http_port}"

    # -- connection ---------------------------------------------------------------------------------
    async def connect(self) -> None:
        """Start the embedded server if needed and connect; `StoreUnavailable` when it cannot."""
        if self._client is not None:
            return
        s = self.settings
        if s.weaviate_url is None:
            server = await self._start_embedded_server()
            url: str = server.url
            grpc_url: str | None = server.grpc_url
            api_key: str | None = server.api_key.get_secret_value()
        else:
            url, grpc_url = s.weaviate_url, s.weaviate_grpc_url
            api_key = s.weaviate_api_key.get_secret_value() if s.weaviate_api_key else None
        try:
            endpoint = parse_endpoint(url, grpc_url)
        except ValueError as exc:
            raise StoreUnavailable(str(exc)) from exc
        self._client = await self._open_client(url, endpoint, api_key)

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
        try:
            await server.start()
        except WeaviateServerError as exc:
            raise StoreUnavailable(str(exc)) from exc
        self._server = server
        return server

    async def _open_client(
        self, url: str, endpoint: Endpoint, api_key: str | None
    ) -> weaviate.WeaviateAsyncClient:
        """A connected client; on failure the embedded server is stopped and the message says why."""
        client = weaviate.use_async_with_custom(
            http_host=endpoint.http_host,
            http_port=endpoint.http_port,
            http_secure=endpoint.http_secure,
            grpc_host=endpoint.grpc_host,
            grpc_port=endpoint.grpc_port,
            grpc_secure=endpoint.grpc_secure,
            auth_credentials=Auth.api_key(api_key) if api_key else None,
            additional_config=AdditionalConfig(timeout=Timeout(init=10, query=60, insert=120)),
        )
        try:
            await client.connect()
        except (WeaviateBaseError, *UNREACHABLE) as exc:
            with contextlib.suppress(Exception):
                await client.close()
            await self._stop_server()
            if isinstance(exc, AuthenticationFailedError) or getattr(exc, "status_code", None) in (401, 403):
                raise StoreUnavailable(
                    f"Weaviate at {url} refused the API key (WEAVIATE_API_KEY): {exc}"
                ) from exc
            raise StoreUnavailable(
                f"Cannot reach Weaviate at {url} (gRPC {endpoint.grpc_host}:{endpoint.grpc_port}): {exc}"
            ) from exc
        return client

    async def close(self) -> None:
        """Disconnect and stop the embedded server, if this connection started one."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()
        await self._stop_server()

    async def _stop_server(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop()

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def client(self) -> weaviate.WeaviateAsyncClient:
        """The connected client (connecting on first use)."""
        if self._client is None:
            await self.connect()
        assert self._client is not None
        return self._client

    @contextlib.contextmanager
    def reachable(self) -> Iterator[None]:
        """Turn "the server went away" errors into `StoreUnavailable` naming the URL."""
        try:
            yield
        except (*UNREACHABLE, WeaviateQueryError) as exc:
            if isinstance(exc, WeaviateQueryError) and "UNAVAILABLE" not in str(exc):
                raise
            raise StoreUnavailable(f"Weaviate at {self.url} stopped answering: {exc}") from exc

    # -- generations --------------------------------------------------------------------------------
    async def serving_collection(self, *, max_age: float = 0.0) -> str | None:
        """The physical collection the alias points at, or None before the first index.

        `max_age` > 0 accepts a target read that many seconds ago: searches use it to skip a
        REST round trip per question; a search that hits a generation dropped meanwhile re-reads.
        """
        if max_age > 0 and self._serving is not None and time.monotonic() - self._serving[1] < max_age:
            return self._serving[0]
        client = await self.client()
        with self.reachable():
            alias = await client.alias.get(alias_name=self.alias)
        self._serving = (alias.collection, time.monotonic()) if alias is not None else None
        return alias.collection if alias is not None else None

    async def generation_info(self, physical: str) -> GenerationInfo:
        """The embedder a generation was built with (cached: it never changes)."""
        if physical not in self._info:
            client = await self.client()
            with self.reachable():
                config = await client.collections.use(physical).config.get(simple=True)
            self._info[physical] = GenerationInfo.from_description(config.description)
        return self._info[physical]

    async def create_generation(self, info: GenerationInfo) -> str:
        """A new, empty generation (chunks and registry) for `info`'s embedder; it does not serve yet."""
        client = await self.client()
        physical = new_generation_name(self.alias)
        await client.collections.create(physical, **chunk_collection_spec(info))
        try:
            await client.collections.create(registry_name(physical), **registry_collection_spec())
        except BaseException:
            await client.collections.delete(physical)
            raise
        self._info[physical] = info
        logger.info("Created index generation %s (%s, %d-d)", physical, info.model_id, info.dimension)
        return physical

    async def drop_generation(self, physical: str) -> None:
        """Delete a generation's chunk collection and registry."""
        client = await self.client()
        await client.collections.delete([physical, registry_name(physical)])
        self._info.pop(physical, None)

    async def point_alias(self, physical: str) -> None:
        """Make `physical` serve: one atomic alias update (or the alias's creation)."""
        client = await self.client()
        try:
            if not await client.alias.exists(alias_name=self.alias) or not await client.alias.update(
                alias_name=self.alias, new_target_collection=physical
            ):
                await client.alias.create(alias_name=self.alias, target_collection=physical)
            self._serving = (physical, time.monotonic())
        except UnexpectedStatusCodeError as exc:
            raise IndexWriteError(
                f"Could not point the alias {self.alias} at {physical}: {exc.message}"
            ) from exc

    async def drop_orphan_generations(self) -> list[str]:
        """Drop generations of this alias that do not serve (left by a crashed rebuild)."""
        client = await self.client()
        serving = await self.serving_collection()
        pattern = generation_pattern(self.alias)
        orphans: set[str] = set()
        for name in await client.collections.list_all(simple=True):
            base = name.removesuffix(REGISTRY_SUFFIX)
            if pattern.match(base) and base != serving:
                orphans.add(name)
        if orphans:
            logger.warning("Dropping unfinished index generations: %s", ", ".join(sorted(orphans)))
            await client.collections.delete(sorted(orphans))
        return sorted(orphans)
