"""The replicas bench's pure helpers: round robin, the ask budget, /proc CPU parsing, the summary
rows and the report's pooling (what docs/benchmarks.md's Replicas section is computed from)."""

from __future__ import annotations

import os

import pytest

from bench.replica_processes import TICKS, main_thread_cpu, process_cpu, stat_cpu_seconds
from bench.replicas_bench import Load, Sample, round_robin, summarise
from bench.report_replicas import grouped, pooled


def test_round_robin_alternates_over_the_replicas() -> None:
    assert [round_robin(n, 2) for n in range(5)] == [0, 1, 0, 1, 0]
    assert {round_robin(n, 1) for n in range(5)} == {0}


def test_load_hands_out_exactly_its_total() -> None:
    load = Load(3)
    assert [load.next() for _ in range(5)] == [0, 1, 2, None, None]


def test_stat_cpu_seconds_reads_utime_and_stime_after_a_command_with_spaces() -> None:
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    # utime stime cutime cstime ...
    line = f"42 (serve (a b)) S 1 42 42 0 -1 4194560 10 0 0 0 {3 * TICKS} {TICKS} {2 * TICKS} {TICKS} 20 0"
    assert stat_cpu_seconds(line) == pytest.approx(4.0)
    assert stat_cpu_seconds(line, with_children=True) == pytest.approx(7.0)


def test_process_cpu_counts_this_process_and_its_main_thread() -> None:
    spent = sum(os.times()[:2])
    assert process_cpu(os.getpid()) == pytest.approx(spent, abs=0.05)
    assert 0 < main_thread_cpu(os.getpid()) <= process_cpu(os.getpid()) + 1 / TICKS


def test_summarise_counts_failures_and_rates_answered_asks_only() -> None:
    samples = [Sample(0.1 * n, 0.01, ok=True) for n in range(1, 10)] + [Sample(120.0, 0.01, ok=False)]
    cpu = {"replicas": 1.0, "replica_event_loops": 0.4, "weaviate": 0.5, "postgres": 0.3, "bench": 0.2}
    row = summarise(samples, wall=2.0, cpu_seconds=cpu, cores=2)
    assert (row["asks"], row["failed"], row["asks_per_second"]) == (10, 1, 4.5)
    assert row["p50_ms"] == pytest.approx(500.0)
    assert row["p99_ms"] < 1000.0  # the timed-out ask is not a latency
    assert row["cpu_ms_per_ask"]["replicas"] == 100.0
    assert row["cores_busy"] == 1.0  # the event loops are part of the replicas' time: not counted twice


def _row(replicas: int, concurrency: int, round_number: int, rate: float, latencies: list[float]) -> dict:
    cpu = {"replicas": 100.0, "replica_event_loops": 40.0, "weaviate": 20.0, "postgres": 10.0, "bench": 5.0}
    return {
        "replicas": replicas,
        "concurrency": concurrency,
        "round": round_number,
        "asks_per_second": rate,
        "latencies_ms": latencies,
        "cores_busy": 1.5,
        "failed": 0,
        "cpu_ms_per_ask": cpu,
    }


def test_pooled_averages_rates_and_pools_latencies_of_the_rounds() -> None:
    rows = [
        _row(2, 10, 2, 12.0, [300.0, 400.0]),
        _row(2, 10, 1, 10.0, [100.0, 200.0]),
        _row(1, 10, 1, 9, [1]),
    ]
    groups = grouped(rows)
    assert list(groups) == [(1, 10), (2, 10)]
    assert [r["round"] for r in groups[(2, 10)]] == [1, 2]
    two = pooled(groups[(2, 10)])
    assert two["asks_per_second"] == 11.0
    assert two["p50_ms"] == pytest.approx(250.0)
    assert two["cpu_total_ms"] == 135.0  # serve + Weaviate + PostgreSQL + bench
    assert two["loop_ms"] == 40.0  # per ask, on whichever replica's event loop answered it
