"""Retrieval metrics over the known-item sets, with bootstrap confidence intervals.

Every result list is judged with `bench.dataset.judge`: for each result, the answer sentences
it contains. With n answer sentences:

- Recall@10: the share of the answer's sentences found in the top 10 results (so it does not
  depend on how the answer was chunked);
- nDCG@10: each result gains the share of answer sentences it adds (not seen in earlier
  results), discounted by 1/log2(rank+1); the ideal is one passage holding the whole answer at
  rank 1, so the ideal DCG is 1 whatever the chunking;
- MRR@10: 1/rank of the first result holding an answer sentence (0 when none in the top 10).

Intervals: percentile bootstrap over queries (2,000 resamples, fixed seed); a difference between
two configurations is a paired bootstrap of the per-query differences, and is called noise when
its 95% interval contains 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

K = 10
METRICS = ("ndcg", "recall", "mrr")
_RESAMPLES = 2000
_SEED = 20261126


@dataclass(frozen=True)
class QueryScores:
    ndcg: float
    recall: float
    mrr: float


def score_query(judged: Sequence[frozenset[int]], answer_size: int, k: int = K) -> QueryScores:
    """Scores of one ranked list (see the module docstring)."""
    seen: set[int] = set()
    dcg = 0.0
    rr = 0.0
    for rank, found in enumerate(judged[:k], 1):
        new = found - seen
        if new:
            dcg += (len(new) / answer_size) / math.log2(rank + 1)
            seen |= new
        if found and rr == 0.0:
            rr = 1.0 / rank
    return QueryScores(ndcg=dcg, recall=len(seen) / answer_size, mrr=rr)


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"

    def as_dict(self) -> dict[str, float]:
        return {"mean": round(self.mean, 4), "low": round(self.low, 4), "high": round(self.high, 4)}


def _indexes(n: int) -> np.ndarray:
    return np.random.default_rng(_SEED).integers(0, n, size=(_RESAMPLES, n))


def bootstrap(values: Sequence[float]) -> Estimate:
    """Mean and 95% percentile-bootstrap interval."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"))
    means = data[_indexes(data.size)].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Estimate(float(data.mean()), float(low), float(high))


def paired_difference(a: Sequence[float], b: Sequence[float]) -> Estimate:
    """Mean of a - b over the same queries, with its paired 95% bootstrap interval."""
    if len(a) != len(b):
        raise ValueError("paired difference needs the same queries on both sides")
    return bootstrap([x - y for x, y in zip(a, b, strict=True)])


def is_noise(difference: Estimate) -> bool:
    return difference.low <= 0.0 <= difference.high


def summarize(per_query: Sequence[QueryScores]) -> dict[str, Estimate]:
    """Each metric's mean and interval."""
    return {name: bootstrap([getattr(q, name) for q in per_query]) for name in METRICS}
