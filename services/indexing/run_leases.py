"""Which leases an index run holds, so runs of different sources go side by side and nothing else.

- Each source has a lease, "index:<collection>:source:<name>": two runs of one source never
  overlap, in this process or any other (a `/reindex handbook` while the schedule refreshes the
  website both run; a second `/reindex handbook` is refused with the first one's progress).
- A rebuild replaces the whole index, so it holds every configured source's lease (and those it
  was asked for) plus "index:<collection>", taken last: no incremental run is under way while it
  builds, and an incremental run started meanwhile finds a source held, or the rebuild's lease.
- An incremental run records itself under a lease of its own ("index:<collection>:run:<id>"),
  which carries its progress; a rebuild under "index:<collection>".

Leases are taken in sorted order and all-or-none, so two runs wanting overlapping sources never
hold part of each other's set for long: the later one is refused at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from configs.config import Settings
from data.leases import LeaseGroup, LeaseTaken
from services.indexing.contract import IndexAlreadyRunning, IndexProgress, IndexRunLog

__all__ = ["begin_run", "collection_lease", "source_lease"]


def collection_lease(settings: Settings) -> str:
    return f"index:{settings.weaviate_collection}"


def source_lease(settings: Settings, name: str) -> str:
    return f"{collection_lease(settings)}:source:{name}"


def _refused(exc: LeaseTaken) -> IndexAlreadyRunning:
    holder = exc.holder
    return IndexAlreadyRunning(
        IndexProgress.from_dict(holder.progress),
        f"in {holder.owner}, progress as of {holder.heartbeat_age():.0f}s ago",
    )


async def begin_run(
    run_log: IndexRunLog,
    settings: Settings,
    progress: IndexProgress,
    sources: Iterable[str],
) -> tuple[LeaseGroup, int]:
    """Take the run's leases and record it as running; `IndexAlreadyRunning` when one is held.

    `sources`: the sources the run reads; a rebuild (`progress.full`) passes every configured one.
    """
    ttl, heartbeat, state = settings.index_lease_seconds, settings.index_heartbeat_seconds, progress.to_dict()
    family = collection_lease(settings)
    try:
        held = await run_log.acquire_all(
            [source_lease(settings, name) for name in sources], ttl=ttl, heartbeat=heartbeat, progress=state
        )
    except LeaseTaken as exc:
        raise _refused(exc) from None
    try:
        if not progress.full:
            rebuilding = await run_log.holder(family)
            if rebuilding is not None and rebuilding.alive:
                raise LeaseTaken(rebuilding)
        own = family if progress.full else f"{family}:run:{uuid.uuid4().hex[:12]}"
        lease, run_id = await run_log.begin_run(
            own, full=progress.full, ttl=ttl, heartbeat=heartbeat, progress=state, family=family
        )
    except BaseException as exc:
        if held:
            await LeaseGroup(held).release()
        if isinstance(exc, LeaseTaken):
            raise _refused(exc) from None
        raise
    group = LeaseGroup([lease, *held])
    group.keep_alive(progress.to_dict)
    return group, run_id
