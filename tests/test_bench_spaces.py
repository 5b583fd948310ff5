"""The spaces bench's pure helpers: how documents are dealt into sources, what tenants store, the
oracle's top k and the overlap docs/benchmarks.md's Spaces section is computed from."""

from __future__ import annotations

import pytest

from bench.spaces_bench import (
    deal_documents,
    median_difference,
    oracle_top,
    overlap,
    percentiles,
    stored_objects,
)
from bench.spaces_tenants import SPACES


def test_deal_documents_goes_round_robin_over_the_sorted_paths() -> None:
    dealt = deal_documents(["tutorial/b.rst", "faq/a.rst", "tutorial/a.rst", "using/x.rst", "faq/b.rst"], 4)
    assert dealt == {
        "faq/a.rst": 0,
        "faq/b.rst": 1,
        "tutorial/a.rst": 2,
        "tutorial/b.rst": 3,
        "using/x.rst": 0,
    }


def test_stored_objects_counts_a_shared_source_once_per_space() -> None:
    chunks = {0: 10, 1: 20, 2: 30, 3: 40}
    # A = 0+1, B = 1+2, C = 3: source 1 is in two spaces, so it is stored twice.
    assert stored_objects(SPACES, chunks) == 10 + 20 + 20 + 30 + 40
    assert stored_objects({"only": (0, 1, 2, 3)}, chunks) == sum(chunks.values())


def test_oracle_top_drops_other_spaces_after_the_ranking_and_keeps_its_order() -> None:
    ranked = [("x", 0), ("y", 0), ("x", 1), ("z", 3), ("x", 2), ("y", 1)]
    assert oracle_top(ranked, lambda key: key[0] != "y", 3) == [("x", 0), ("x", 1), ("z", 3)]
    assert oracle_top(ranked, lambda key: False, 3) == []


def test_overlap_is_the_share_of_the_expected_results_found() -> None:
    assert overlap([("a", 0), ("b", 0)], [("b", 0), ("c", 0), ("d", 0), ("e", 0)]) == 0.25
    assert overlap([("a", 0)], []) == 1.0
    assert overlap([], [("a", 0)]) == 0.0


def test_percentiles_of_a_known_spread() -> None:
    row = percentiles([float(n) for n in range(1, 101)])
    assert row["count"] == 100
    assert row["p50_ms"] == pytest.approx(50.5)
    assert row["p95_ms"] == pytest.approx(95.05)
    assert row["mean_ms"] == pytest.approx(50.5)


def test_median_difference_pairs_the_lists_and_brackets_the_median() -> None:
    slow = [10.0 + n % 3 for n in range(60)]
    fast = [value - 2.0 for value in slow]
    row = median_difference(slow, fast)
    assert row == {"median_ms": 2.0, "low_ms": 2.0, "high_ms": 2.0}
    mixed = median_difference([1.0, 5.0, 9.0, 2.0, 8.0], [0.0, 0.0, 0.0, 0.0, 0.0])
    assert mixed["low_ms"] <= mixed["median_ms"] == 5.0 <= mixed["high_ms"]
