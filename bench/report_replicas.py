"""The "Replicas" section of docs/benchmarks.md, from bench/.work/results/replicas.json.

`replicas_section` renders it (for `bench.report.write` to include); `write_section` puts it into the
page as it is, replacing an older copy, so `python -m bench --parts replicas` updates only its part.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from statistics import mean
from typing import Any

import numpy as np

from bench import report_text
from bench.quality import load

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADING = "## Replicas: one `serve` vs two (Slack HTTP events)"
_BEFORE = "## How the query sets are built"  # the section goes before the method notes
COMMAND = "nice -n 10 .venv/bin/python -m bench --parts replicas"
_PARTS = (("replicas", "serve"), ("weaviate", "Weaviate"), ("postgres", "PostgreSQL"), ("bench", "bench"))


def _load(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def _cpu(row: dict[str, Any]) -> str:
    cpu = row["cpu_ms_per_ask"]
    parts = [f"{cpu[key]:.0f}" for key, _ in _PARTS]
    return f"{' / '.join(parts)} (loops {cpu['replica_event_loops']:.0f})"


def grouped(rows: Sequence[dict[str, Any]]) -> dict[tuple[int, int], list[dict[str, Any]]]:
    """Rows by (replicas, concurrency), rounds in order."""
    groups: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (r["replicas"], r["concurrency"], r["round"])):
        groups.setdefault((row["replicas"], row["concurrency"]), []).append(row)
    return groups


def pooled(runs: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Mean asks/s over the rounds; latency percentiles over every answered ask of the rounds."""
    latencies = [v for run in runs for v in run["latencies_ms"]]
    p50, p95 = np.percentile(latencies, [50, 95]) if latencies else (math.nan, math.nan)
    cpu = {
        key: mean(run["cpu_ms_per_ask"][key] for run in runs)
        for key in (*(k for k, _ in _PARTS), "replica_event_loops")
    }
    return {
        "asks_per_second": mean(run["asks_per_second"] for run in runs),
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "cores_busy": mean(run["cores_busy"] for run in runs),
        "failed": sum(run["failed"] for run in runs),
        "cpu_total_ms": sum(cpu[k] for k, _ in _PARTS),
        "loop_ms": cpu["replica_event_loops"],  # the event loop time one ask costs whichever replica
        **{f"cpu_{k}": v for k, v in cpu.items()},
    }


def _summary(groups: dict[tuple[int, int], list[dict[str, Any]]]) -> list[str]:
    levels = sorted({c for _, c in groups})
    lines = [
        "| concurrent | 1 replica: asks/s | p50 ms | p95 ms | 2 replicas: asks/s | p50 ms | p95 ms | "
        "throughput 2 vs 1 | p95 2 vs 1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for level in levels:
        one, two = groups.get((1, level)), groups.get((2, level))
        if not one or not two:
            continue
        a, b = pooled(one), pooled(two)
        lines.append(
            f"| {level} | {a['asks_per_second']:.1f} | {a['p50_ms']:.0f} | {a['p95_ms']:.0f} | "
            f"{b['asks_per_second']:.1f} | {b['p50_ms']:.0f} | {b['p95_ms']:.0f} | "
            f"{b['asks_per_second'] / a['asks_per_second']:.2f}× | {b['p95_ms'] / a['p95_ms']:.2f}× |"
        )
    return lines


def _rows(groups: dict[tuple[int, int], list[dict[str, Any]]]) -> list[str]:
    lines = [
        "| replicas | concurrent | round | asks | failed | asks/s | p50 ms | p95 ms | p99 ms | ack p95 ms | "
        "CPU ms / ask: serve / Weaviate / PostgreSQL / bench | cores busy | other work (cores) | "
        "load avg before |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (replicas, level), runs in groups.items():
        for r in runs:
            lines.append(
                f"| {replicas} | {level} | {r['round']} | {r['asks']} | {r['failed']} | "
                f"{r['asks_per_second']:.1f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['p99_ms']:.0f} | "
                f"{r['ack_p95_ms']:.0f} | {_cpu(r)} | {r['cores_busy']:.2f} | "
                f"{r.get('others_cores_busy', math.nan):.2f} | {r['load_average_before'][0]:.1f} |"
            )
    return lines


def _reading(groups: dict[tuple[int, int], list[dict[str, Any]]], cores: int) -> str:
    """Why two replicas gain little here, and what the CPU per ask implies for bigger machines."""
    one = pooled([r for (n, _), runs in groups.items() if n == 1 for r in runs])
    two = pooled([r for (n, _), runs in groups.items() if n == 2 for r in runs])
    gains = {
        level: pooled(groups[(2, level)])["asks_per_second"] / pooled(groups[(1, level)])["asks_per_second"]
        for (n, level) in groups
        if n == 1 and (2, level) in groups
    }
    gain_text = " and ".join(f"{g:.2f}× at {level}" for level, g in sorted(gains.items()))
    total, loop = one["cpu_total_ms"], one["loop_ms"]
    embed_side = one["cpu_replicas"] - one["cpu_replica_event_loops"]
    rows = [r for runs in groups.values() for r in runs]
    rates = [r["asks_per_second"] for r in rows]
    others = [r.get("others_cores_busy", math.nan) for r in rows]
    ours = mean(r["cores_busy"] for r in rows)
    replica_cap = 1000 / loop
    levels = sorted({c for n, c in groups if n == 1})
    p95 = {c: pooled(groups[(1, c)])["p95_ms"] for c in levels}
    queueing = f"{p95[levels[-1]] / p95[levels[0]]:.1f}× from {levels[0]} to {levels[-1]} conversations"
    wider = [
        f"{c} cores ≈ {c * 1000 / total:.0f} asks/s with {math.ceil(c * 1000 / total / replica_cap)} replicas"
        for c in (4, 8, 16)
    ]
    return (
        f"Two replicas gave {gain_text} concurrent conversations: no gain beyond the noise, whose size "
        f"the rounds show — the same configuration measured {min(rates):.1f} to {max(rates):.1f} asks/s "
        f"while other work on this shared machine took {min(others):.1f}–{max(others):.1f} of its "
        f"{cores} cores. The machine was saturated in every row: the bench's processes and the other "
        f"work together kept both cores busy. An offline answer costs {total:.0f} ms of CPU in all "
        f"(one replica; two: {two['cpu_total_ms']:.0f} ms) — {one['cpu_replicas']:.0f} ms in `serve` "
        f"({one['cpu_replica_event_loops']:.0f} ms on its event loop: Slack Bolt, chatkit, the agent run, "
        f"SQLAlchemy; {embed_side:.0f} ms on other threads, mostly ONNX embedding of the query and of the "
        "retrieved passages' sentences that the offline answer ranks), "
        f"{one['cpu_weaviate']:.0f} ms in Weaviate, {one['cpu_postgres']:.0f} ms in PostgreSQL and "
        f"{one['cpu_bench']:.0f} ms in this bench's fake Slack and load generator — so the "
        f"{ours:.2f} cores the bench's processes got on average allow about {ours:.2f} × 1000 / {total:.0f} "
        f"≈ {ours * 1000 / total:.1f} asks/s, which is what both configurations measured, and the whole "
        f"2 cores would allow ≈ {cores * 1000 / total:.0f}. The answer is CPU-bound, and the embedding, "
        "Weaviate's search and PostgreSQL run on the same cores as the replicas: a second replica adds a "
        "second event loop with nothing left to run it on (it costs no extra CPU per ask either, and saves "
        "none), plus a second ONNX thread pool (EMBEDDING_THREADS=0 sizes each for the whole machine). "
        "Latency at a fixed concurrency is then queueing: p95 follows the number of asks waiting "
        f"({queueing}), not the number of replicas. What the numbers imply on a larger machine (an "
        f"estimate from the CPU per ask, not measured): one replica's event loop needs {loop:.0f} ms per "
        f"ask and is one thread, so a replica tops out near 1000 / {loop:.0f} ≈ {replica_cap:.0f} "
        "asks/s however many cores it has (its ONNX runs, serialised by a lock, set a bound of the same "
        "order); beyond that, replicas scale throughput while the cores last — "
        + ", ".join(wider)
        + " — provided Weaviate and PostgreSQL get their share of those cores (or their own machines, "
        "which also takes their CPU off the bot's). Setup note: the bench creates the bot's tables before "
        "it starts the replicas, because two `serve` processes creating them at once on an empty "
        "PostgreSQL database collided in one run (a unique violation in pg_type) and one replica exited. "
        "Fixed since in the bot (`Database.create` takes an advisory lock on PostgreSQL and retries on "
        "SQLite; tests/test_chat_store.py starts four at once on both)."
    )


def replicas_section(out: list[str]) -> None:
    data = load("replicas")
    if not data:
        out.append(f"_No replicas results yet: run `{COMMAND}`._\n")
        return
    m = data["machine"]
    groups = grouped(data["rows"])
    out += [
        f"Measured {data['saved_utc']} with `{COMMAND}` ({m['run_minutes']} min) on {m['cpu_model']}, "
        f"{m['cores']} cores, {m['memory_gib']} GiB, load average {_load(m['load_average_at_start'])} at "
        f"start and {_load(m['load_average_at_end'])} at the end, Python {m['python']}, onnxruntime "
        f"{m['onnxruntime']}, commit {m['git_commit']} (with the work tree's changes).\n",
        f"Each replica is a real `main.py serve` process with the offline model (no OPENAI_* settings), "
        f"the bench's Weaviate (collection `{data['collection']}`: the `{data['dataset']}` set, "
        f"{data['index']['documents']} documents, {data['index']['chunks']} chunks) and one PostgreSQL "
        "database shared by the replicas (a throwaway cluster, fsync off; a fresh database per "
        "configuration), Slack over HTTP events against a fake Slack Web API in the bench process. "
        "Every conversation posts a signed `app_mention` event and waits until the answer is finished "
        f"at the fake Slack (`chat.stopStream` with its sources and buttons) before the next; each thread "
        f"gets {data['turns_per_thread']} asks, so follow-ups load its history from the database. "
        "Events go round-robin over the replicas, as a load balancer sends them (a thread's follow-up "
        f"lands on whichever replica is next). {data['asks_per_row']} asks per row after 2 warm-up asks "
        f"per replica; {data['rounds']} rounds, the second in the other order (two replicas first). "
        "Latency is from the event POST to the finished answer; the ack is the POST's own response "
        "(Slack wants it within 3 s). CPU time per ask is read from /proc for each process; *loops* is "
        "the replicas' main threads (the asyncio event loop), part of the serve figure; *cores busy* is "
        "all of it divided by the wall time; *other work* is the rest of the machine's busy time in the "
        "same interval (/proc/stat): other sessions' tests and builds, which the bench cannot stop.\n",
        *_summary(groups),
        "",
        "Every row (p50/p95 above pool both rounds' asks; asks/s is the rounds' mean):\n",
        *_rows(groups),
        "",
        _reading(groups, int(m["cores"])) + "\n",
    ]


def write_section(doc: Path = DOC) -> Path:
    """Replace (or add) this section in docs/benchmarks.md, leaving the rest of the page alone."""
    return report_text.write_section(HEADING, replicas_section, before=_BEFORE, doc=doc)
