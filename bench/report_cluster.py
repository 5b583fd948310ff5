"""The "Weaviate cluster" section of docs/benchmarks.md, from bench/.work/results/cluster.json.

`cluster_section` renders it (for `bench.report.write` to include); `write_section` puts it into
the page as it is, replacing an older copy, so `python -m bench.cluster` updates only its part.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import report_text
from bench.quality import load

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADING = "## Weaviate cluster (3 nodes, one killed)"
_BEFORE = "## How the query sets are built"  # the section goes before the method notes
_STATES = (
    ("single", "1 node (embedded)"),
    ("all_up", "3 nodes, all up"),
    ("one_down", "3 nodes, 1 killed"),
)


def cluster_section(out: list[str]) -> None:
    data = load("cluster")
    if not data:
        out.append("_No cluster results yet: run `python -m bench.cluster`._\n")
        return
    m = data["machine"]
    index = data["cluster_index"]
    out += [
        f"Measured {data['saved_utc']} with `python -m bench.cluster` ({m['run_minutes']} min) on "
        f"{m['cpu_model']}, {m['cores']} cores, {m['memory_gib']} GiB, load average "
        f"{_load(m['load_average_at_start'])} at start and {_load(m['load_average_at_end'])} at the end, "
        f"commit {m['git_commit']}. Three Weaviate {m['weaviate_server'].split()[0]} processes on this "
        f"one machine (`bench/weaviate_cluster.py`; the cluster formed in {data['cluster_start_seconds']} s) "
        f"hold the `{data['dataset']}` set ({index['documents']} documents, {index['chunks']} chunks) with "
        "replication factor 3; one embedded node with the same index is the baseline. Each of the "
        f"{data['queries']} queries runs {data['rounds']} times per row through "
        "`WeaviateVectorStore.search` (hybrid, limit 15, vectors returned for the relevance check), with "
        "the query vectors computed beforehand; the bot is connected to node0 and node2 is killed "
        "(SIGKILL), then the rows are measured again once the cluster has declared it dead.\n",
        "| Weaviate | read consistency | concurrent searches | searches | p50 ms | p95 ms | max ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, label in _STATES:
        for setting, row in data[key].items():
            level, workers = setting.split("/")
            shown = level if key != "single" else f"{level} (1 copy)"
            out.append(
                f"| {label} | {shown} | {workers} | {row['searches']} | {row['p50_ms']:.1f} | "
                f"{row['p95_ms']:.1f} | {row['max_ms']:.0f} |"
            )
    out += ["", _reading(data), ""]


def _reading(data: dict[str, Any]) -> str:
    """What the rows say, in numbers from this run, and what they cannot say."""
    up, down = data["all_up"]["QUORUM/1"], data["one_down"]["QUORUM/1"]
    up10, down10 = data["all_up"]["QUORUM/10"], data["one_down"]["QUORUM/10"]
    single_one, single_quorum = data["single"]["ONE/1"], data["single"]["QUORUM/1"]
    searches = sum(row["searches"] for key, _ in _STATES for row in data[key].values())
    load = max(data["machine"]["load_average_at_start"][0], data["machine"]["load_average_at_end"][0])
    return (
        f"All {searches:,} searches succeeded, with node2 killed too: QUORUM needs 2 of the 3 copies. "
        f"At QUORUM, one search at a time, p50 was {up['p50_ms']:.1f} ms with all 3 nodes up and "
        f"{down['p50_ms']:.1f} ms with one killed (p95 {up['p95_ms']:.1f} / {down['p95_ms']:.1f} ms); "
        f"10 at once, p95 {up10['p95_ms']:.1f} / {down10['p95_ms']:.1f} ms. "
        "A QUORUM search runs on one copy of each shard, then compares its hits with a second copy "
        '(digests; a stale copy is repaired). Read these rows as "a node down costs searches '
        'nothing measurable here", not as a speed-up: the three nodes and the bench share 2 cores, '
        "a killed node frees its share of them, and other work ran alongside (load average up to "
        f"{load:.1f}). The single-node rows at ONE and QUORUM do the same work (one copy) and still "
        f"differ ({single_one['p50_ms']:.1f} vs {single_quorum['p50_ms']:.1f} ms p50): differences "
        "of that size are noise on this machine."
    )


def _load(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def write_section(doc: Path = DOC) -> Path:
    """Replace (or add) this section in docs/benchmarks.md, leaving the rest of the page alone."""
    return report_text.write_section(HEADING, cluster_section, before=_BEFORE, doc=doc)
