"""`python -m bench.index_memory`: peak RSS of `main.py index` over a 100 MB corpus, and whether it grows.

Two generated corpora (deterministic, made once under bench/.work/index-memory/), each indexed by
the real command, `main.py index --full`, as a child process against a Weaviate of its own:

- 100 MB of Markdown, 4,000 pages of 20 KB and, in their middle, one 20 MB file, with
  CHUNK_SIZE=20000: every byte is read, parsed, chunked, streamed and written (~6,000 chunks),
  while embedding, which reads at most 256 tokens of a chunk and so costs per chunk rather than
  per byte, takes minutes on 2 cores instead of the hours that 100 MB at the default CHUNK_SIZE
  (~150,000 chunks) would;
- 1.2 MB of such pages with the default settings (~1,900 chunks of 1,000 characters).

VmRSS is sampled every half second; the peak is the child's own maximum resident set (wait4's
ru_maxrss, so nothing between two samples is missed). Results go to
bench/.work/results/index_memory.json and the "Memory while indexing" section of
docs/benchmarks.md. `--main PATH --label before` measures another checkout's main.py (the code
before a change) the same way, as more rows.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import quality
from bench.dataset import WORK_DIR
from bench.machine import describe
from bench.report_index_memory import write_section
from configs.config import DEFAULT_WEAVIATE_BINARY, Settings
from data.weaviate_server import EmbeddedWeaviate

ROOT = Path(__file__).resolve().parent.parent
HERE = WORK_DIR / "index-memory"
SAMPLE_SECONDS = 0.5


@dataclass(frozen=True)
class Workload:
    """A generated corpus and the settings it is indexed with."""

    name: str
    pages: int
    page_bytes: int
    large_bytes: int  # one file this large in the middle of the pages; 0: none
    chunk_size: int | None  # None: the default

    @property
    def corpus(self) -> Path:
        return HERE / f"corpus-{self.name}"


WORKLOADS = (
    Workload("100MB", pages=4000, page_bytes=20_000, large_bytes=20_000_000, chunk_size=20000),
    Workload("1.2MB", pages=110, page_bytes=11_000, large_bytes=0, chunk_size=None),
)


def _vocabulary(rng: random.Random) -> list[str]:
    syllables = [a + b for a in "bcdfghklmnprstvz" for b in ("a", "e", "i", "o", "u", "ai", "ou")]
    return ["".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(6000)]


def _page(rng: random.Random, words: list[str], weights: list[float], title: str, size: int) -> str:
    """Markdown of about `size` characters: a title, then sections of a few paragraphs."""
    parts = [f"# {title}\n"]
    written = 0
    while written < size:
        parts.append(f"\n## {' '.join(rng.choices(words, weights, k=3)).capitalize()}\n\n")
        for _ in range(rng.randint(2, 5)):
            paragraph = " ".join(rng.choices(words, weights, k=rng.randint(30, 120))).capitalize() + ".\n\n"
            parts.append(paragraph)
            written += len(paragraph)
    return "".join(parts)


def build_corpus(workload: Workload) -> dict[str, int]:
    """Write the corpus unless a complete one is there; its size and shape."""
    corpus = workload.corpus
    done = corpus.with_suffix(".done")
    if not done.is_file():
        if corpus.exists():
            shutil.rmtree(corpus)
        corpus.mkdir(parents=True)
        rng = random.Random(20261201)
        words = _vocabulary(rng)
        weights = [1 / rank for rank in range(1, len(words) + 1)]  # Zipf-like, as in prose
        for number in range(workload.pages):
            page = _page(rng, words, weights, f"Page {number}", workload.page_bytes)
            (corpus / f"page-{number:05d}.md").write_text(page, encoding="utf-8")
            if workload.large_bytes and number == workload.pages // 2:
                large = _page(rng, words, weights, "The large one", workload.large_bytes)
                (corpus / f"page-{number:05d}-large.md").write_text(large, encoding="utf-8")
        done.write_text("")
    sizes = [path.stat().st_size for path in corpus.iterdir()]
    return {"files": len(sizes), "bytes": sum(sizes), "largest_bytes": max(sizes)}


def _rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _child_env(server: EmbeddedWeaviate, data_dir: Path, workload: Workload) -> dict[str, str]:
    """The environment without any of the bot's settings, then only what this run sets."""
    names = {name.upper() for name in Settings.model_fields}
    env = {key: value for key, value in os.environ.items() if key.upper() not in names}
    assert server.api_key is not None
    env.update(
        DATA_DIR=str(data_dir),
        WEAVIATE_URL=server.url,
        WEAVIATE_GRPC_URL=server.grpc_url,
        WEAVIATE_API_KEY=server.api_key.get_secret_value(),
        WEAVIATE_COLLECTION="BenchIndexMemory",
        LOG_LEVEL="WARNING",
    )
    if workload.chunk_size is not None:
        env["CHUNK_SIZE"] = str(workload.chunk_size)
    return env


def _count(pattern: str, text: str) -> int | None:
    found = re.search(pattern, text)
    return int(found.group(1)) if found else None


def run_index(main: Path, server: EmbeddedWeaviate, workload: Workload) -> dict[str, Any]:
    """One `index --full` of the corpus: RSS samples, the peak, and what the summary says."""
    data_dir = HERE / "data"
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    log = data_dir / "index.log"
    with log.open("wb") as output:
        child = subprocess.Popen(
            [sys.executable, str(main), "index", "--full", str(workload.corpus)],
            cwd=data_dir,  # no stray .env
            env=_child_env(server, data_dir, workload),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        started = time.perf_counter()
        samples: list[tuple[float, float]] = []  # (seconds, MiB)
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if (rss := _rss_kib(child.pid)) is not None:
                samples.append((time.perf_counter() - started, rss / 1024))
            time.sleep(SAMPLE_SECONDS)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    summary = log.read_text(encoding="utf-8", errors="replace")
    if child.returncode not in (0, 3):
        raise RuntimeError(f"index exited with {child.returncode}; see {log}:\n{summary[-2000:]}")
    return {
        "main": str(main),
        "exit_code": child.returncode,
        "seconds": seconds,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "samples": samples,
        "documents": _count(r"(\d+) documents seen", summary),
        "added": _count(r"seen: (\d+) added", summary),
        "failed": _count(r"(\d+) failed\.", summary),
        "chunks": _count(r"(\d+) chunks written", summary),
        "weaviate_rss_mib": (_rss_kib(server._process.pid) or 0) / 1024 if server._process else None,
    }


async def measure(main: Path) -> dict[str, Any]:
    """Every workload, each on a fresh Weaviate (so its memory is this run's alone)."""
    out: dict[str, Any] = {}
    for workload in WORKLOADS:
        corpus = build_corpus(workload)
        data = HERE / "weaviate"
        if data.exists():
            shutil.rmtree(data)
        print(f"{workload.name}: {corpus['bytes'] / 1e6:.1f} MB in {corpus['files']} files", flush=True)
        async with EmbeddedWeaviate(DEFAULT_WEAVIATE_BINARY, data, startup_timeout=180) as server:
            run = await asyncio.to_thread(run_index, main, server, workload)
        print(f"  peak RSS {run['peak_rss_mib']:.0f} MiB, {run['chunks']} chunks in {run['seconds']:.0f} s")
        out[workload.name] = {"corpus": corpus, "chunk_size": workload.chunk_size, **run}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.index_memory", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--main", type=Path, default=ROOT / "main.py", help="the main.py to measure")
    parser.add_argument("--label", default="now", help="row label: now (this code) or before")
    args = parser.parse_args()
    machine = describe()
    result = asyncio.run(measure(args.main.resolve()))
    machine["load_average_at_end"] = os.getloadavg()
    saved = quality.load("index_memory") or {}
    saved[args.label] = {"workloads": result, "machine": machine}
    quality.save("index_memory", saved)
    print(f"wrote {write_section()}")


if __name__ == "__main__":
    main()
