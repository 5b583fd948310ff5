"""The "Spaces" section of docs/benchmarks.md, from bench/.work/results/spaces.json.

`spaces_section` renders it (for `bench.report.write` to include); `write_section` puts it into the
page as it is, replacing an older copy, so `python -m bench --parts spaces` updates only its part.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import report_text
from bench.quality import load

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADING = "## Spaces: a source filter vs a tenant per space"
_BEFORE = "## How the query sets are built"  # the section goes before the method notes
COMMAND = "nice -n 10 .venv/bin/python -m bench --parts spaces"
_MODES = {
    "unfiltered": "unfiltered (`store.search`, every source)",
    "filtered": "property filter (`store.search(sources=space's)`)",
    "tenant": "tenant per space (the same hybrid query on the space's tenant)",
    "oracle": "oracle (unfiltered, every chunk as the limit, other spaces dropped after)",
}


def _load(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def _spaces(data: dict[str, Any]) -> str:
    spaces = data["spaces"].items()
    return ", ".join(f"{space} = sources {' + '.join(map(str, members))}" for space, members in spaces)


def _setup(data: dict[str, Any]) -> list[str]:
    m = data["machine"]
    sources = ", ".join(
        f"{n}: {s['documents']} documents / {s['chunks']} chunks" for n, s in data["sources"].items()
    )
    index = data["vector_index"]
    return [
        f"Measured {data['saved_utc']} with `{COMMAND}` ({m['run_minutes']} min) on {m['cpu_model']}, "
        f"{m['cores']} cores, {m['memory_gib']} GiB, load average {_load(m['load_average_at_start'])} at "
        f"start and {_load(m['load_average_at_end'])} at the end, Python {m['python']}, weaviate-client "
        f"{m['weaviate_client']}, Weaviate {m['weaviate_server']}, commit {m['git_commit']} (with the "
        "work tree's changes).\n",
        f"The `{data['dataset']}` set's {data['documents']} documents, dealt round-robin (sorted by path) "
        f"into {len(data['sources'])} local folders, each one source named by its path ({sources}), "
        f"indexed once by the real `Indexer` into one collection ({data['chunks']} chunks, each with its "
        f"`source_name`). Three spaces that overlap: {_spaces(data)}. The multi-tenancy alternative "
        "is built by hand with weaviate-client v4: a collection with the same schema and "
        "`multi_tenancy_config=Configure.multi_tenancy(enabled=True)`, one tenant per space holding its "
        "sources' chunks with the same ids and vectors (read back from the first collection).\n",
        f"Each of the {data['queries']} questions is asked in each space, {data['rounds']} times, one "
        f"search at a time; every mode sends the same hybrid query (alpha {data['alpha']}, "
        f"{data['fusion']} fusion, limit {data['fetch_limit']}: what `Retriever` fetches for 10 "
        "passages), with the query vectors computed before the clock starts, so the times are "
        "Weaviate's plus the client's. The filter and the tenant alternate which goes first. At this "
        f"size Weaviate answers a filter by a flat scan of its matches (HNSW `flat_search_cutoff` "
        f"{index['flat_search_cutoff']:,}, filter strategy {index['filter_strategy']} above it).\n",
    ]


def _latency(data: dict[str, Any]) -> list[str]:
    lines = [
        "| search | searches | p50 ms | p95 ms | p99 ms | mean ms |",
        "|---|---|---|---|---|---|",
    ]
    for mode, row in data["latency"].items():
        lines.append(
            f"| {_MODES[mode]} | {row['count']} | {row['p50_ms']:.2f} | {row['p95_ms']:.2f} | "
            f"{row['p99_ms']:.2f} | {row['mean_ms']:.2f} |"
        )
    per_space = "; ".join(
        f"{space} ({sum(data['sources'][str(n)]['chunks'] for n in data['spaces'][space])} chunks): "
        f"filter {rows['filtered']['p50_ms']:.2f} / {rows['filtered']['p95_ms']:.2f}, "
        f"tenant {rows['tenant']['p50_ms']:.2f} / {rows['tenant']['p95_ms']:.2f}"
        for space, rows in data["latency_per_space"].items()
    )
    paired = data["paired_ms"]
    lines += [
        "",
        f"p50 / p95 ms per space: {per_space}.\n",
        "Paired differences (each space's search against the unfiltered search of the same question and "
        "round, or the tenant search of the same question, space and round), median with its 95% "
        f"bootstrap interval: filter − unfiltered {_difference(paired['filtered_minus_unfiltered'])}; "
        f"filter − tenant {_difference(paired['filtered_minus_tenant'])}.\n",
    ]
    return lines


def _difference(row: dict[str, float]) -> str:
    return f"{row['median_ms']:+.2f} ms [{row['low_ms']:+.2f}, {row['high_ms']:+.2f}]"


def _quality(data: dict[str, Any]) -> list[str]:
    q = data["quality"]
    answerable = q["answerable_pairs"]
    lines = [
        f"Judged over the {q['pairs']} (question, space) pairs; hit@10 (an answer sentence in the top 10) "
        f"over the {answerable} pairs whose answer is in one of the space's sources.\n",
        "| search | hit@10 | overlap@10 with the oracle | same top 10 as the oracle | other spaces' chunks "
        "in the top 10 | answers found outside the space |",
        "|---|---|---|---|---|---|",
    ]
    for mode in ("unfiltered", "filtered", "tenant", "oracle"):
        hits = q["hit_at_10"][mode]
        share = f"{hits}/{answerable} ({hits / max(answerable, 1):.2f})"
        same = q["mean_overlap_at_10"].get(mode)
        identical = q["identical_top_10"].get(mode)
        elsewhere = q["other_spaces_chunks_in_top_10"].get(mode, 0)
        outside = q["answers_found_outside_the_space"].get(mode, 0)
        if mode == "unfiltered":
            same_text = f"{q['unfiltered_vs_large_limit_overlap_at_10']:.3f} (its own, before dropping)"
            identical_text = "–"
        else:
            same_text = "1" if same is None else f"{same:.3f}"
            identical_text = "all" if identical is None else f"{identical}/{answerable}"
        lines.append(
            f"| {_MODES[mode].split(' (')[0]} | {share} | {same_text} | {identical_text} | {elsewhere} | "
            f"{outside} |"
        )
    lines += [
        "",
        f"The tenant's top 10 and the filter's overlap {q['mean_overlap_at_10']['tenant_vs_filtered']:.3f} "
        f"(identical in {q['identical_top_10']['tenant_vs_filtered']}/{answerable}): a tenant keeps its own "
        "BM25 statistics (document frequencies over the space's chunks only), the filter scores with the "
        "whole collection's. Neither matches the oracle's order exactly because relative-score fusion "
        "normalises each leg over the candidates it fetched, so the oracle's larger limit changes the "
        "scores too (the unfiltered row's overlap column shows that effect alone).\n",
    ]
    return lines


def _storage(data: dict[str, Any]) -> list[str]:
    build, stored, change = data["build"], data["stored"], data["change"]
    disk = build["disk_bytes"]
    times = stored["tenants"] / max(stored["single"], 1)
    per_tenant = ", ".join(f"{s} {n}" for s, n in build["tenant_objects"].items())
    lines = [
        "| | one collection + filter | a tenant per space |",
        "|---|---|---|",
        f"| objects stored | {stored['single']} | {stored['tenants']} ({per_tenant}): ×{times:.2f} |",
    ]
    if disk.get("single") and disk.get("tenants"):
        lines.append(
            f"| bytes on disk right after writing (objects, inverted and HNSW logs) | "
            f"{disk['single'] / 1e6:.1f} MB | {disk['tenants'] / 1e6:.1f} MB "
            f"(×{disk['tenants'] / disk['single']:.2f}) |"
        )
    lines += [
        f"| build from vectors in memory (create + insert) | {build['copy_seconds']:.2f} s "
        f"({build['copy_objects']} objects) | {build['tenant_seconds']:.2f} s |",
        f"| space {change['space']} gains source {change['source']} | a sources-file change, no writes | "
        f"{change['objects']} objects copied in {change['add_seconds']:.2f} s |",
        f"| … and loses it again | a sources-file change, no writes | {change['removed_objects']} objects "
        f"deleted in {change['remove_seconds']:.2f} s |",
        "| a changed document in a source of k spaces | its chunks written once | written k times |",
        "",
        f"The first index (parsing, chunking, embedding through the bench's vector cache, writing) took "
        f"{data['index_seconds']:.1f} s; the tenant build starts from its vectors, so it shows only what "
        "the second layout costs to write.\n",
    ]
    return lines


def _conclusion(data: dict[str, Any]) -> list[str]:
    stored, paired, quality = data["stored"], data["paired_ms"], data["quality"]
    versus_all = paired["filtered_minus_unfiltered"]
    versus_tenant = paired["filtered_minus_tenant"]
    leaks = sum(quality["other_spaces_chunks_in_top_10"][m] for m in ("filtered", "tenant"))
    return [
        "**Conclusion: the property filter.** "
        f"A space's filter changes a search by {_difference(versus_all)} against no filter (it scans "
        f"fewer chunks), and filter − tenant is {_difference(versus_tenant)}: fractions of a millisecond in "
        f"a search of {data['latency']['unfiltered']['p50_ms']:.1f} ms at p50, itself a small part of an "
        "answer (embedding the question, the LLM). Both "
        f"keep every other space's chunk out ({leaks} served in all) and find the answer as often "
        f"(hit@10 {quality['hit_at_10']['filtered']} vs {quality['hit_at_10']['tenant']} of "
        f"{quality['answerable_pairs']}). What tenants would cost instead is structural: with these "
        f"overlapping spaces they store ×{stored['tenants'] / max(stored['single'], 1):.2f} the objects "
        "(a shared source once per space), every re-index of a shared source writes its chunks once per "
        "space, a change of a space's sources (the sources file, or `/docs-bot use` in the chat) becomes a "
        "copy or delete of chunks instead of a setting, and a channel mapped to two spaces would need two "
        "searches whose relative scores cannot be merged fairly, where the filter simply names the union "
        "of their sources. Tenants pay off when spaces are disjoint, large (past the flat-search cutoff, "
        "where a filter runs on the filtered HNSW, which this corpus does not reach) and must be "
        "offloaded or deleted on their own; a team's shared documentation is none of these.\n",
    ]


def spaces_section(out: list[str]) -> None:
    data = load("spaces")
    if not data:
        out.append(f"_No spaces results yet: run `{COMMAND}`._\n")
        return
    out += [*_setup(data), *_latency(data), *_quality(data), *_storage(data), *_conclusion(data)]


def write_section(doc: Path = DOC) -> Path:
    """Replace (or add) this section in docs/benchmarks.md, leaving the rest of the page alone."""
    return report_text.write_section(HEADING, spaces_section, before=_BEFORE, doc=doc)
