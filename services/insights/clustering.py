"""Coverage gaps grouped by topic: the questions' embeddings clustered, each cluster labelled.

Agglomerative clustering (average linkage, cosine distance, a distance threshold instead of a
number of clusters) needs no model beyond the embedder the index already uses, and its result
does not depend on a random seed, so a page shows the same groups on every load. A cluster is
labelled with its most typical question (the one closest on average to the others) and the words
that set it apart from the other gaps (TF-IDF).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from cachetools import LRUCache

from data.embeddings import Embedder
from services.insights.records import NOT_COVERED, Turn

MAX_CLUSTERED = 2000  # the newest gaps; average linkage keeps an n x n distance matrix
KEYWORDS = 4
_WORD = r"(?u)\b[^\W\d_][\w-]+\b"  # words of two letters or more, no bare numbers

VectorCache = LRUCache[str, list[float]]


def new_vector_cache() -> VectorCache:
    """Question -> vector, so reloading a page embeds only the questions asked since."""
    return LRUCache(maxsize=20_000)


@dataclass(slots=True)
class Cluster:
    """One topic the docs fail on: its questions newest first."""

    key: str  # the id of its most typical question, stable while that question stays in it
    label: str
    keywords: list[str]
    turns: list[Turn] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.turns)

    @property
    def newest_at(self) -> datetime:
        return self.turns[0].asked_at

    @property
    def not_covered(self) -> int:
        return sum(1 for turn in self.turns if turn.outcome == NOT_COVERED)

    @property
    def downvoted(self) -> int:
        return sum(1 for turn in self.turns if turn.down > 0)

    @property
    def thread_ids(self) -> list[str]:
        """The conversations behind the cluster, newest first, each once."""
        return list(dict.fromkeys(turn.thread_id for turn in self.turns))


async def cluster_gaps(
    turns: Sequence[Turn], embedder: Embedder, distance: float, cache: VectorCache | None = None
) -> list[Cluster]:
    """The gap turns (`Turn.is_gap`) grouped by topic, biggest first, then newest first."""
    gaps = sorted((t for t in turns if t.is_gap and t.question), key=lambda t: t.asked_at, reverse=True)
    gaps = gaps[:MAX_CLUSTERED]
    if not gaps:
        return []
    texts = [turn.question for turn in gaps]
    vectors = await _vectors(texts, embedder, cache if cache is not None else new_vector_cache())
    groups, typical, keywords = await asyncio.to_thread(_cluster, texts, vectors, distance)
    clusters = [
        Cluster(gaps[center].question_id, gaps[center].question, words, [gaps[i] for i in sorted(members)])
        for members, center, words in zip(groups, typical, keywords, strict=True)
    ]
    clusters.sort(key=lambda c: (-c.count, -c.newest_at.timestamp(), c.key))
    return clusters


async def _vectors(texts: Sequence[str], embedder: Embedder, cache: VectorCache) -> np.ndarray:
    missing = list(dict.fromkeys(text for text in texts if text not in cache))
    if missing:
        for text, vector in zip(missing, await embedder.embed_documents(missing), strict=True):
            cache[text] = vector
    return np.asarray([cache[text] for text in texts], dtype=np.float32)


def _cluster(
    texts: Sequence[str], vectors: np.ndarray, distance: float
) -> tuple[list[list[int]], list[int], list[list[str]]]:
    """Blocking: (member indices per group, the typical member of each, its keywords)."""
    groups = group_vectors(vectors, distance)
    typical = [members[typical_member(vectors[members])] for members in groups]
    return groups, typical, top_keywords(texts, groups)


def group_vectors(vectors: np.ndarray, distance: float) -> list[list[int]]:
    """Indices grouped so that the average cosine distance within a group stays under `distance`."""
    if len(vectors) == 1:
        return [[0]]
    from sklearn.cluster import AgglomerativeClustering  # seconds to import: only when a page needs it

    model = AgglomerativeClustering(
        n_clusters=None, distance_threshold=distance, metric="cosine", linkage="average"
    )
    labels = model.fit_predict(vectors)
    groups: dict[int, list[int]] = {}
    for index, label in enumerate(labels.tolist()):
        groups.setdefault(label, []).append(index)
    return sorted(groups.values(), key=lambda members: members[0])


def typical_member(vectors: np.ndarray) -> int:
    """The member with the highest mean cosine similarity to the group (unit vectors)."""
    similarity = vectors @ vectors.T
    return int(np.argmax(similarity.mean(axis=1)))


def top_keywords(
    texts: Sequence[str], groups: Sequence[Sequence[int]], count: int = KEYWORDS
) -> list[list[str]]:
    """Per group, the words that weigh most in its questions against all the gaps (TF-IDF)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(stop_words="english", token_pattern=_WORD, sublinear_tf=True)
    try:
        matrix = vectorizer.fit_transform(texts)
    except ValueError:  # only stop words: nothing to show
        return [[] for _ in groups]
    vocabulary = vectorizer.get_feature_names_out()
    keywords = []
    for members in groups:
        weights = np.asarray(matrix[list(members)].sum(axis=0)).ravel()
        best = [int(i) for i in np.argsort(-weights, kind="stable")[:count] if weights[i] > 0]
        keywords.append([str(vocabulary[i]) for i in best])
    return keywords
