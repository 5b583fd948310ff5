"""What `/healthz` and `/metrics` say about the running parts: the vector store (and the embedded
server's restarts), the database, and each chat adapter (connected, reconnecting, failed and why).

`/healthz` answers 503 while any part is unhealthy, so a load balancer or readiness probe stops
sending work; the process itself exits when a part cannot come back (see `serve`), so liveness is
the process, not this endpoint. From SIGTERM on it answers 503 "draining" whatever the parts say:
readiness goes false first, while the answers in flight finish (see `serve`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from data.weaviate_connection import WeaviateConnection
from data.weaviate_supervisor import ServerStatus
from services.runtime import ComponentHealth, Runtime

AdapterHealth = Callable[[], ComponentHealth]
DRAINING_DETAIL = "shutting down: answers in flight are finishing, new work goes to other replicas"


class ServerHealth:
    """The runtime's checks plus one entry per chat adapter that `serve` started."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._adapters: dict[str, AdapterHealth] = {}
        self._draining = False

    @property
    def draining(self) -> bool:
        return self._draining

    def start_draining(self) -> None:
        """From now on the server is not ready: it is shutting down and takes no new work."""
        self._draining = True

    def add_adapter(self, name: str, health: AdapterHealth) -> None:
        self._adapters[name] = health

    def watch_task(self, name: str, task: asyncio.Task[None], *, running: str = "running") -> None:
        """An adapter that is healthy while its task runs, and failed (with the error) once it ends."""

        def health() -> ComponentHealth:
            if not task.done():
                return ComponentHealth(True, running)
            if task.cancelled():
                return ComponentHealth(False, "stopped")
            error = task.exception()
            return ComponentHealth(False, "failed", f"{type(error).__name__}: {error}" if error else None)

        self.add_adapter(name, health)

    async def check(self) -> dict[str, ComponentHealth]:
        """Every part, by name (`vector_store`, `database`, then the adapters; `server` while draining)."""
        checks = await self._runtime.health()
        checks.update(self.adapters())
        if self._draining:
            checks["server"] = ComponentHealth(False, "draining", DRAINING_DETAIL)
        return checks

    def adapters(self) -> dict[str, ComponentHealth]:
        return {name: health() for name, health in self._adapters.items()}

    def embedded_server(self) -> ServerStatus | None:
        store = self._runtime.store
        return store.server_status if isinstance(store, WeaviateConnection) else None


class HealthMetrics(Collector):
    """Prometheus gauges read at scrape time: the embedded server's state and restarts, adapters' states.

    Only what is known without I/O: scrapes must stay cheap (the database check is `/healthz`'s).
    """

    def __init__(self, health: ServerHealth) -> None:
        self._health = health

    def collect(self) -> Iterator[Metric]:
        status = self._health.embedded_server()
        if status is not None:
            up = GaugeMetricFamily(
                "docsbot_embedded_weaviate_up", "1 while the embedded Weaviate server runs, else 0."
            )
            up.add_metric([], 1.0 if status.healthy else 0.0)
            restarts = CounterMetricFamily(
                "docsbot_embedded_weaviate_restarts", "Times the embedded Weaviate server was restarted."
            )
            restarts.add_metric([], float(status.restarts))
            yield up
            yield restarts
        adapters = GaugeMetricFamily(
            "docsbot_adapter_up", "1 while a chat adapter is connected, else 0.", labels=["adapter"]
        )
        for name, component in self._health.adapters().items():
            adapters.add_metric([name], 1.0 if component.healthy else 0.0)
        yield adapters
