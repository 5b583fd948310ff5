"""The `sources` part: websites and Git repositories through the project's sources, and the peers'
web loaders on the same site in the same run.

Website: Debian's Flask and Werkzeug manuals (`bench.doc_site`, aiohttp's static handler with
ETag/Last-Modified) crawled from their start pages by `Indexer.index([url, ...])`: a full first
run, an unchanged re-run with WEB_DELAY_SECONDS=0, and one at the default politeness delay.
Git: a bare copy of this project's repository, the branch `bench` at HEAD~N, indexed in full,
moved to HEAD (incremental), and indexed again unchanged. Peers: LangChain's RecursiveUrlLoader
and LlamaIndex's SimpleWebPageReader fetch the same site twice (`bench/peer_web.py`, in their
virtualenvs); the server counts what each pass cost it.

Speed is measured with the bare `LocalOnnxEmbedder` (no vector cache), as in `bench.ingest`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath
from typing import Any

from bench.dataset import WORK_DIR
from bench.doc_site import DocSite, html_pages, manual_dirs
from bench.engine import bench_settings
from bench.ingest import StopwatchEmbedder
from bench.venvs import installed_versions, peer_python
from configs.config import Settings
from data.embeddings import LocalOnnxEmbedder
from data.vector_store import WeaviateVectorStore
from data.weaviate_server import EmbeddedWeaviate
from services.indexer import Indexer, IndexResult
from services.indexing.loader import DOCUMENT_SUFFIXES

ROOT = Path(__file__).resolve().parent.parent
SOURCES_DIR = WORK_DIR / "sources"
SITES = ["flask", "werkzeug"]
COMMITS_BACK = 30
DEFAULT_DELAY = 0.25  # WEB_DELAY_SECONDS' default (configs.config)
# What each peer needs on top of bench.venvs' requirements to read a website.
WEB_PACKAGES = {
    "langchain": ["langchain-community==0.4.2"],
    "llamaindex": ["llama-index-readers-web==0.7.0"],
}
WEB_LOADERS = {
    "langchain": "langchain_community.document_loaders.RecursiveUrlLoader",
    "llamaindex": "llama_index.readers.web.SimpleWebPageReader",
}


def _git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _outcome(result: IndexResult, served: dict[str, Any] | None = None) -> dict[str, Any]:
    """The numbers the report shows of one run (and, for websites, what the server answered)."""
    row: dict[str, Any] = {
        "seconds": result.seconds,
        "seen": result.seen,
        "added": result.added,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "deleted": result.deleted,
        "failed": result.failed,
        "chunks": result.chunks_written,
        "embeddings": result.embeddings_computed,
        "failures": [f"{f.path}: {f.reason}" for f in result.failures[:10]],
        "notes": result.notes,
        "sources": [
            {"name": s.name, "documents": s.documents, "seen": s.seen, "complete": s.complete}
            | {"error": s.error}
            for s in result.sources
        ],
    }
    if served is not None:
        row["served"] = served
    return row


class _Runner:
    """Indexes into one collection with its own DATA_DIR (so the sources' state starts empty)."""

    def __init__(self, server: EmbeddedWeaviate, collection: str, embedder: LocalOnnxEmbedder) -> None:
        self.server = server
        self.collection = collection
        self.embedder = embedder
        self.data_dir = SOURCES_DIR / collection
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        self.store: WeaviateVectorStore | None = None

    def settings(self, **overrides: Any) -> Settings:
        return bench_settings(self.server, self.collection, data_dir=self.data_dir, **overrides)

    async def index(self, locations: list[str], *, full: bool = False, **overrides: Any) -> IndexResult:
        settings = self.settings(**overrides)
        if self.store is None:
            self.store = WeaviateVectorStore(settings)
            await self.store.connect()
        stopwatch = StopwatchEmbedder(self.embedder)
        result = await Indexer(settings, self.store, stopwatch).index(locations, full=full)
        if stopwatch.texts != result.embeddings_computed:  # the run's count is what the embedder saw
            raise RuntimeError(f"embedder saw {stopwatch.texts}, run says {result.embeddings_computed}")
        return result

    async def close(self) -> None:
        if self.store is not None:
            await self.store.close()


async def website(server: EmbeddedWeaviate, site: DocSite, embedder: LocalOnnxEmbedder) -> dict[str, Any]:
    """Full crawl, unchanged re-crawl without delay, unchanged re-crawl at the default delay."""
    starts = [site.start_url(name) for name in site.manuals]
    runner = _Runner(server, "BenchSourcesWeb", embedder)
    rows: dict[str, Any] = {"starts": starts}
    try:
        site.reset()
        full = await runner.index(starts, full=True, web_delay_seconds=0.0)
        rows["full"] = _outcome(full, site.reset().to_dict())
        print(f"  website full: {json.dumps(rows['full'])}", flush=True)
        again = await runner.index(starts, web_delay_seconds=0.0)
        rows["unchanged"] = _outcome(again, site.reset().to_dict())
        print(f"  website unchanged: {json.dumps(rows['unchanged'])}", flush=True)
        polite = await runner.index(starts, web_delay_seconds=DEFAULT_DELAY)
        rows["unchanged_polite"] = _outcome(polite, site.reset().to_dict())
        print(f"  website unchanged, delay {DEFAULT_DELAY}: {json.dumps(rows['unchanged_polite'])}")
    finally:
        await runner.close()
    return rows


def _bare_copy(back: int) -> tuple[Path, str, str]:
    """A bare clone of this repository with `bench` at HEAD~back (the work tree is left alone)."""
    repo = SOURCES_DIR / "repo.git"
    if repo.exists():
        shutil.rmtree(repo)
    repo.parent.mkdir(parents=True, exist_ok=True)
    _git("clone", "--bare", "--quiet", str(ROOT), str(repo))
    old, head = _git("rev-parse", f"HEAD~{back}"), _git("rev-parse", "HEAD")
    _git("update-ref", "refs/heads/bench", old, cwd=repo)
    return repo, old, head


def _changed_files(repo: Path, old: str, head: str, documents_only: bool) -> dict[str, int]:
    """What `git diff` says changed between the commits: A/M/D/R counts, of all files or of the
    kinds the index reads (to check the incremental run against)."""
    status = _git("diff", "--name-status", "-M", old, head, cwd=repo).splitlines()
    counts: dict[str, int] = {}
    for line in status:
        kind, *paths = line.split("\t")
        if not documents_only or any(PurePosixPath(p).suffix.lower() in DOCUMENT_SUFFIXES for p in paths):
            counts[kind[:1]] = counts.get(kind[:1], 0) + 1
    return counts


async def git(server: EmbeddedWeaviate, embedder: LocalOnnxEmbedder) -> dict[str, Any]:
    """Full index at HEAD~N, incremental to HEAD, then unchanged."""
    repo, old, head = await asyncio.to_thread(_bare_copy, COMMITS_BACK)
    location = f"git+file://{repo}@bench"
    runner = _Runner(server, "BenchSourcesGit", embedder)
    rows: dict[str, Any] = {
        "location": location,
        "old": old[:12],
        "head": head[:12],
        "commits": COMMITS_BACK,
        "diff": await asyncio.to_thread(_changed_files, repo, old, head, False),
        "document_diff": await asyncio.to_thread(_changed_files, repo, old, head, True),
    }
    try:
        rows["full"] = _outcome(await runner.index([location], full=True))
        print(f"  git full at HEAD~{COMMITS_BACK}: {json.dumps(rows['full'])}", flush=True)
        await asyncio.to_thread(_git, "update-ref", "refs/heads/bench", head, cwd=repo)
        rows["incremental"] = _outcome(await runner.index([location]))
        print(f"  git HEAD~{COMMITS_BACK} -> HEAD: {json.dumps(rows['incremental'])}", flush=True)
        rows["unchanged"] = _outcome(await runner.index([location]))
        print(f"  git unchanged: {json.dumps(rows['unchanged'])}", flush=True)
    finally:
        await runner.close()
    return rows


def web_peer_python(name: str) -> Path:
    """The peer's interpreter with its web loader installed (once, from PyPI)."""
    python = peer_python(name)
    module = WEB_LOADERS[name].rsplit(".", 1)[0]
    probe = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True)
    if probe.returncode != 0:
        print(f"Installing {' '.join(WEB_PACKAGES[name])} into the {name} virtualenv…", file=sys.stderr)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, *WEB_PACKAGES[name]], check=True)
    return python


def _run_peer(name: str, site: DocSite) -> dict[str, Any]:
    """One peer fetching the site twice, in its own virtualenv (the server keeps serving here)."""
    python = web_peer_python(name)
    out = WORK_DIR / "results" / f"peer-web-{name}-raw.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    args = {
        "peer": name,
        "sites": [
            {
                "start": site.start_url(n),
                "folder": site.folder_url(n),
                "pages": [site.folder_url(n) + page for page in html_pages(folder)],
            }
            for n, folder in site.manuals.items()
        ],
        "control": site.control_url,
        "chunk_size": 1000,  # characters (LangChain), as ours
        "chunk_overlap": 150,
        "tokens": 250,  # LlamaIndex splits by tokens: ~1,000 characters of English
        "overlap_tokens": 40,
        "out": str(out),
    }
    started = time.perf_counter()
    command = [str(python), str(ROOT / "bench" / "peer_web.py"), json.dumps(args)]
    subprocess.run(command, check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": ""})
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    result["wall_seconds"] = time.perf_counter() - started
    result["loader"] = WEB_LOADERS[name]
    packages = [p.split("==")[0] for p in WEB_PACKAGES[name]]
    result["versions"] = installed_versions(name, packages)
    return result


async def peers(site: DocSite) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in WEB_PACKAGES:
        print(f"  peer {name} (web loader)…", flush=True)
        results[name] = await asyncio.to_thread(_run_peer, name, site)
        print(f"  peer {name}: {json.dumps(results[name])}", flush=True)
    return results


async def measure(server: EmbeddedWeaviate, machine: dict[str, Any]) -> dict[str, Any]:
    """Everything, on one site served for the whole part; `machine` gets the load at the end."""
    started = time.perf_counter()
    embedder = LocalOnnxEmbedder()
    await embedder.warm_up()
    await embedder.embed_documents(["warm-up"] * 8)
    manuals = manual_dirs(SITES)
    result: dict[str, Any] = {
        "sites": {n: {"folder": str(p), "html_files": len(html_pages(p))} for n, p in manuals.items()},
        "delay_seconds": 0.0,
        "default_delay_seconds": DEFAULT_DELAY,
    }
    try:
        async with DocSite(manuals) as site:
            result["website"] = await website(server, site, embedder)
            result["peers"] = await peers(site)
        result["git"] = await git(server, embedder)
    finally:
        await embedder.aclose()
    machine["load_average_at_end"] = os.getloadavg()
    machine["run_minutes"] = round((time.perf_counter() - started) / 60, 1)
    result["machine"] = machine
    return result
