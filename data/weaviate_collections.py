"""The index generations behind one collection alias, over the connection of `weaviate_connection`.

The store (searches) and the index writer (writes, and the alias swap that ends a rebuild) both
work through `WeaviateCollections`, so neither needs the other. A generation is one physical
chunk collection plus its document registry (names in `weaviate_schema`); the alias points at the
serving one.
"""

from __future__ import annotations

import logging
import time

from weaviate.exceptions import UnexpectedStatusCodeError

from configs.config import Settings
from data.errors import IndexWriteError
from data.weaviate_connection import WeaviateConnection
from data.weaviate_schema import (
    REGISTRY_SUFFIX,
    GenerationContents,
    GenerationInfo,
    chunk_collection_spec,
    generation_pattern,
    new_generation_name,
    property_types,
    registry_collection_spec,
    registry_name,
    replication_spec,
    schema_difference,
)

logger = logging.getLogger(__name__)


class WeaviateCollections(WeaviateConnection):
    """The generations of the alias `settings.weaviate_collection`, on a `WeaviateConnection`.

    The serving generation is remembered briefly (see `serving_collection`), and each generation's
    embedder forever: it never changes.
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.alias = settings.weaviate_collection
        self._info: dict[str, GenerationInfo] = {}
        self._serving: tuple[str, float] | None = None  # (alias target, monotonic time read)

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
        factor = self.settings.weaviate_replication_factor
        version = str((await client.get_meta()).get("version", "")) if factor > 1 else ""
        copies = replication_spec(factor, self.settings.weaviate_async_replication, version)
        await client.collections.create(physical, **chunk_collection_spec(info), **copies)
        try:
            await client.collections.create(registry_name(physical), **registry_collection_spec(), **copies)
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

    async def point_alias(self, physical: str, expected: GenerationContents) -> None:
        """Make `physical` serve once it holds what `expected` says: one atomic alias update (or
        the alias's creation); `IndexWriteError` saying what is wrong otherwise.

        It checks the schema, the embedder and the counts, so a generation that another run wrote
        into, or that Weaviate re-created by auto-schema after it was dropped, never serves.
        """
        if problem := await self._generation_problem(physical, expected):
            raise IndexWriteError(
                f"The new index generation {physical} was not made to serve: {problem}. The previous "
                "index keeps serving; did another run change the index meanwhile? Run the rebuild again."
            )
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

    async def _generation_problem(self, physical: str, expected: GenerationContents) -> str | None:
        """What keeps `physical` from serving (missing, another schema or embedder, other counts)."""
        client = await self.client()
        registry = registry_name(physical)
        specs = {physical: chunk_collection_spec(expected.info), registry: registry_collection_spec()}
        counts: dict[str, int] = {}
        with self.reachable():
            for name, spec in specs.items():
                collection = client.collections.use(name)
                if not await collection.exists():
                    return f"{name} does not exist"
                config = await collection.config.get(simple=True)
                actual = {prop.name: str(prop.data_type.value) for prop in config.properties}
                if difference := schema_difference(property_types(spec), actual):
                    return f"{name} does not have the indexer's schema ({difference})"
                built = GenerationInfo.from_description(config.description)
                if name == physical and built != expected.info:
                    return f"it was made for {built.model_id} ({built.dimension}-d), not for this run's"
                counts[name] = await collection.length()
        if (counts[registry], counts[physical]) != (expected.documents, expected.chunks):
            return (
                f"it holds {counts[registry]} documents and {counts[physical]} chunks, but the run "
                f"recorded {expected.documents} and {expected.chunks}"
            )
        return None

    async def drop_orphan_generations(self) -> list[str]:
        """Drop generations of this alias that do not serve (left by a crashed rebuild).

        Safe only while holding the index lease: another run's unfinished generation is one too.
        """
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
