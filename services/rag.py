"""Retrieval for answers: hybrid search, then adjacent chunks merged and near-duplicates dropped.

The agent's `search_docs` tool and the `search` command both go through `Retriever`, so what the
model reads and what a user sees from the CLI are the same passages.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from cachetools import LRUCache

from configs.config import Settings
from data.embeddings import Embedder
from data.records import Passage, SearchHit
from data.vector_store import VectorStore
from services.relevance import MEASURED_JUDGES, CoverageJudge, covered

# How many hits to fetch per passage wanted: room for merging neighbours and dropping duplicates.
_FETCH_FACTOR = 4
# Passages whose word sets overlap this much (Jaccard) are treated as the same passage.
_DUPLICATE_JACCARD = 0.9
_WORD = re.compile(r"\w+")
# Longest run of chunks merged into one passage, so one passage cannot crowd out the others.
_MAX_MERGED_CHUNKS = 4
# Shortest shared text between neighbouring chunks that is taken for the chunk overlap.
_MIN_OVERLAP = 16


class Retriever:
    """Finds the passages that best answer a question."""

    def __init__(
        self, settings: Settings, store: VectorStore, embedder: Embedder, *, remembered_queries: int = 1024
    ) -> None:
        self._settings = settings
        self._store = store
        self._embedder = embedder
        # Teams ask the same questions again: their vectors are kept (1024 × 384 floats ≈ 3 MB).
        self._vectors: LRUCache[str, list[float]] | None = (
            LRUCache(maxsize=remembered_queries) if remembered_queries > 0 else None
        )

    async def search(
        self, query: str, k: int | None = None, *, sources: Sequence[str] | None = None
    ) -> list[Passage]:
        """Best passages first, at most `k` (default `SEARCH_TOP_K`); empty for a blank query.
        `sources` limits the search to those sources (a space's): the "not covered" judgement
        then sees only their passages too.

        Raises the store's `StoreUnavailable` / `IndexModelMismatch` unchanged: their messages
        tell the user what to do.
        """
        query = query.strip()
        wanted = k if k is not None else self._settings.search_top_k
        if not query or wanted <= 0:
            return []
        floor = self._settings.search_min_similarity
        judge = self.coverage_judge
        hits = await self.fetch(query, wanted, similarity=judge is not None or bool(floor), sources=sources)
        if floor is not None and not covered(query, hits, floor):
            return []  # an explicit cosine floor (the rule before the coverage judgement)
        if judge is not None and not judge.covered(query, hits):
            return []  # the closest chunks are about something else: the docs don't cover it
        passages = [p for p in merge_adjacent(hits) if p.score >= self._settings.search_min_score]
        return drop_duplicates(passages, limit=wanted)

    async def score_sentences(self, query: str, sentences: Sequence[str]) -> list[float]:
        """Cosine similarity of each sentence to the query: the offline model's answer leads with
        the sentences that score best (by meaning, so a sentence repeating the question's words
        does not win by counting them)."""
        if not sentences:
            return []
        query_vector = np.asarray(await self._query_vector(query.strip()), dtype=np.float32)
        vectors = np.asarray(await self._embedder.embed_documents(list(sentences)), dtype=np.float32)
        return [float(score) for score in vectors @ query_vector]

    @property
    def coverage_judge(self) -> CoverageJudge | None:
        """The coverage judgement measured for the embedding model, at SEARCH_MIN_COVERAGE when set;
        None when it is 0, when SEARCH_MIN_SIMILARITY sets a cosine floor instead, or when no
        judgement was measured for the model."""
        measured = MEASURED_JUDGES.get(self._embedder.model_id)
        threshold = self._settings.search_min_coverage
        if measured is None or self._settings.search_min_similarity is not None or threshold == 0:
            return None
        return measured if threshold is None else replace(measured, threshold=threshold)

    async def fetch(
        self, query: str, wanted: int, *, similarity: bool = False, sources: Sequence[str] | None = None
    ) -> list[SearchHit]:
        """The raw hits behind `wanted` passages (before merging, de-duplication and the floor)."""
        return await self._store.search(
            query,
            await self._query_vector(query),
            model_id=self._embedder.model_id,
            limit=wanted * _FETCH_FACTOR,
            alpha=self._settings.search_alpha,
            fusion=self._settings.search_fusion,
            similarity=similarity,
            sources=sources,
        )

    async def _query_vector(self, query: str) -> list[float]:
        if self._vectors is not None and (vector := self._vectors.get(query)) is not None:
            return vector
        vector = await self._embedder.embed_query(query)
        if self._vectors is not None:
            self._vectors[query] = vector
        return vector


def merge_adjacent(hits: Sequence[SearchHit]) -> list[Passage]:
    """Join hits of one document with consecutive chunk indexes into one passage, best first.

    Neighbouring chunks share `CHUNK_OVERLAP` characters; the repeated text is removed so the
    model does not read it twice.
    """
    by_document: dict[str, dict[int, SearchHit]] = {}
    for hit in hits:
        chunks = by_document.setdefault(hit.document_id, {})
        if hit.chunk_index not in chunks or chunks[hit.chunk_index].score < hit.score:
            chunks[hit.chunk_index] = hit
    passages: list[Passage] = []
    for chunks in by_document.values():
        run: list[SearchHit] = []
        for index in sorted(chunks):
            if run and (index != run[-1].chunk_index + 1 or len(run) == _MAX_MERGED_CHUNKS):
                passages.append(_passage_from_run(run))
                run = []
            run.append(chunks[index])
        if run:
            passages.append(_passage_from_run(run))
    passages.sort(key=lambda p: (-p.score, p.document_id, p.first_chunk))
    return passages


def drop_duplicates(passages: Sequence[Passage], limit: int | None = None) -> list[Passage]:
    """Keep the first (best) of passages with the same normalized text or nearly the same words,
    stopping once `limit` are kept.

    The same document indexed under two paths, or copied sections, would otherwise fill the
    context with repeats.
    """
    kept: list[tuple[Passage, list[str], frozenset[str]]] = []
    for passage in passages:
        if limit is not None and len(kept) >= limit:
            break
        normalized = _WORD.findall(passage.text.lower())
        words = frozenset(normalized)
        if any(
            _near(words, other_words)
            and (normalized == other_normalized or _jaccard(words, other_words) >= _DUPLICATE_JACCARD)
            for _, other_normalized, other_words in kept
        ):
            continue
        kept.append((passage, normalized, words))
    return [passage for passage, _, _ in kept]


def _passage_from_run(run: Sequence[SearchHit]) -> Passage:
    text = run[0].text
    for hit in run[1:]:
        text = _join_overlapping(text, hit.text)
    first = run[0]
    return Passage(
        text=text,
        title=first.title,
        heading_path=_common_heading(run),
        source=first.source,
        score=max(hit.score for hit in run),
        document_id=first.document_id,
        first_chunk=first.chunk_index,
        last_chunk=run[-1].chunk_index,
    )


def _join_overlapping(left: str, right: str) -> str:
    """Append `right` to `left`, dropping the longest prefix of `right` that `left` ends with.

    Only overlaps of at least `_MIN_OVERLAP` characters count, so a word that merely happens to
    end one chunk and start the next is not swallowed.
    """
    left = left.rstrip()
    right = right.lstrip()
    probe = right[:_MIN_OVERLAP]
    if len(probe) == _MIN_OVERLAP:
        position = left.find(probe)
        while position != -1:
            if right.startswith(left[position:]):
                return left + right[len(left) - position :]
            position = left.find(probe, position + 1)
    return left + "\n" + right


def _common_heading(run: Sequence[SearchHit]) -> str:
    """The shared leading headings of merged chunks (the first chunk's path when none is shared)."""
    paths = [hit.heading_path.split(" > ") if hit.heading_path else [] for hit in run]
    common: list[str] = []
    for parts in zip(*paths, strict=False):
        if any(part != parts[0] for part in parts):
            break
        common.append(parts[0])
    return " > ".join(common) if common else run[0].heading_path


def _near(a: frozenset[str], b: frozenset[str]) -> bool:
    """Whether the sizes allow a Jaccard index over the threshold (|a & b| / |a | b| <= min / max)."""
    small, large = sorted((len(a), len(b)))
    return small >= _DUPLICATE_JACCARD * large


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 1.0 if a == b else 0.0
    return len(a & b) / len(a | b)
