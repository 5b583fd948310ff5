"""The "Sources" section of docs/benchmarks.md, from bench/.work/results/sources.json.

`sources_section` renders it; `write_section` puts it into the page as it is, replacing an older
copy, so `python -m bench --parts sources` updates only its part.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import report_text
from bench.quality import load

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADING = "## Sources: websites and Git repositories"
_BEFORE = "## How the query sets are built"  # the section goes before the method notes
COMMAND = "nice -n 10 .venv/bin/python -m bench --parts sources"


def _load(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def _mb(count: int) -> str:
    return f"{count / 1e6:.2f} MB"


def _served(row: dict[str, Any]) -> str:
    s = row["served"]
    statuses = ", ".join(f"{n}× {code}" for code, n in s["statuses"].items())
    return f"{s['requests']} ({statuses}) | {s['bodies']} | {_mb(s['body_bytes'])}"


def _website(data: dict[str, Any]) -> list[str]:
    web = data["website"]
    full = web["full"]
    pages = full["seen"]
    sites = ", ".join(f"{n} ({s['html_files']} HTML files)" for n, s in data["sites"].items())
    starts = ", ".join(f"`/{url.split('/', 3)[-1]}`" for url in web["starts"])
    lines = [
        "### Website\n",
        f"Debian's HTML manuals {sites} from `/usr/share/doc`, served on 127.0.0.1 by aiohttp's static "
        "handler (ETag and Last-Modified, 304 to a conditional request), each crawled from its start "
        f"page ({starts}) by "
        "`Indexer.index([start pages])`; every request is counted by the server. WEB_DELAY_SECONDS=0 "
        f"in the first two rows (a local server needs no politeness), the default "
        f"{data['default_delay_seconds']} s in the third; WEB_CONCURRENCY_PER_HOST is the default 2.\n",
        "| run | pages | seconds | pages/s | chunks written | embeddings | requests served | bodies sent | "
        "body bytes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    labels = {
        "full": "full (first) run",
        "unchanged": "unchanged re-run, delay 0",
        "unchanged_polite": f"unchanged re-run, delay {data['default_delay_seconds']} s",
    }
    for key, label in labels.items():
        row = web[key]
        rate = row["seen"] / row["seconds"] if row["seconds"] else 0.0
        lines.append(
            f"| {label} | {row['seen']} | {row['seconds']:.1f} | {rate:.1f} | {row['chunks']} | "
            f"{row['embeddings']} | {_served(row)} |"
        )
    again = web["unchanged"]
    lines += [
        "",
        f"The full run read {pages} pages at {pages / full['seconds']:.1f} pages/s, most of it embedding "
        f"({full['embeddings']} chunks with the local MiniLM on 2 cores); the unchanged re-run took "
        f"{again['seconds']:.1f} s ({full['seconds'] / max(again['seconds'], 1e-9):.0f}× faster) and "
        f"computed {again['embeddings']} embeddings: {again['served']['statuses'].get('304', 0)} pages "
        f"were answered 304 Not Modified (no body) to {again['served']['conditional']} conditional "
        "requests. The 404s: robots.txt, asked once per source, and `flask/license.html`, a link "
        "that Debian's package leaves dangling (reported as a failed page, the rest indexed).\n",
    ]
    return lines


def _peers(data: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    lines = [
        "### Peers' web loaders on the same site (same run)\n",
        "Each loader fetched the site twice in its own virtualenv (`bench/peer_web.py`); the server "
        "counted the requests. Their embedders were not run: *chunks* is what a rebuild embeds "
        "(`add_documents` / `VectorStoreIndex.from_documents` on the loaded documents: all of them, "
        "every time), *after de-dup* is what each framework's own change detection passes on to the "
        "embedder (LangChain's `index()` with an `InMemoryRecordManager`, cleanup='incremental'; "
        "LlamaIndex's `IngestionPipeline` with a `SimpleDocumentStore`), counted by a stand-in "
        "embedder. LangChain: `RecursiveUrlLoader` from each start page (base_url the manual's "
        "folder, max_depth 8 like WEB_MAX_DEPTH, BeautifulSoup text). LlamaIndex has no crawler "
        "without a browser (WholeSiteReader drives Selenium), so `SimpleWebPageReader(html_to_text="
        "True)` was given every HTML file of the manuals.\n",
        "*seconds*: ours, the whole run (with embedding); the peers, fetching and parsing only.\n",
        "| system | pass | documents | seconds | requests | bodies sent | body bytes | chunks | "
        "after de-dup |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    full, again = ours["full"], ours["unchanged"]
    for label, row in (("ours, first run", full), ("ours, unchanged re-run", again)):
        s = row["served"]
        lines.append(
            f"| ours (website source) | {label.split(', ')[1]} | {row['seen']} | {row['seconds']:.1f} | "
            f"{s['requests']} | {s['bodies']} | {_mb(s['body_bytes'])} | {row['chunks']} | "
            f"{row['embeddings']} |"
        )
    for name, result in data["peers"].items():
        version = ", ".join(f"{p} {v}" for p, v in result["versions"].items())
        loader = result["loader"].rsplit(".", 1)[-1]
        for row in result["passes"]:
            s = row["served"]
            label = "first" if row["pass"] == 1 else "second (unchanged)"
            lines.append(
                f"| {name} ({loader}, {version}) | {label} | {row['documents']} | "
                f"{row['fetch_seconds']:.1f} | {s['requests']} | {s['bodies']} | {_mb(s['body_bytes'])} | "
                f"{row['chunks']} | {row['dedup_embedded']} |"
            )
    lines += ["", _peer_reading(data, ours), ""]
    return lines


def _peer_reading(data: dict[str, Any], ours: dict[str, Any]) -> str:
    again = ours["unchanged"]["served"]
    parts = []
    for name, result in data["peers"].items():
        second = result["passes"][1]
        parts.append(
            f"{name} sent {second['served']['requests']} requests and downloaded "
            f"{_mb(second['served']['body_bytes'])} again, with {second['chunks']} chunks to embed on a "
            f"rebuild and {second['dedup_embedded']} after its de-duplication"
        )
    text = (
        f"On the unchanged second pass ours sent {again['requests']} requests and received "
        f"{again['bodies']} bodies ({_mb(again['body_bytes'])}); " + "; ".join(parts) + ". "
        "Neither peer sends a conditional request, so every page is downloaded and parsed again; "
        "LlamaIndex's docstore then skips all of it by content hash."
    )
    langchain = data["peers"].get("langchain")
    if langchain and langchain["passes"][1]["dedup_embedded"]:
        outcome = langchain["passes"][1]["dedup_outcome"]
        text += (
            f" LangChain's `index()` re-embedded {outcome['num_added']} chunks it had just deleted "
            f"({outcome['num_deleted']} deleted, {outcome['num_skipped']} skipped): with "
            "cleanup='incremental' it deletes, after each batch of 100 chunks, the older chunks of the "
            "batch's pages, so a page longer than one batch loses (and re-embeds) its chunks "
            "in the later batches. How many varies from run to run: the crawl order, which decides "
            "where the batches cut the pages, follows Python's per-process hash seed."
        )
    return text


def _git(data: dict[str, Any]) -> list[str]:
    git = data["git"]
    diff = ", ".join(f"{n} {kind}" for kind, n in sorted(git["diff"].items()))
    documents = ", ".join(f"{n} {kind}" for kind, n in sorted(git["document_diff"].items()))
    lines = [
        "### Git repository\n",
        f"This project's own repository (a bare clone; the branch `bench` moved by `git update-ref`) as "
        f"`git+file://…/repo.git@bench`, every supported file (Markdown, reST, HTML, text …): a full index "
        f"at {git['old']} ({git['commits']} commits before HEAD), then the branch moved to {git['head']} "
        f"(HEAD; `git diff --name-status -M` over all files: {diff}, where A added, M modified, "
        f"D deleted, R renamed; of the kinds the index reads: {documents}), then a run with nothing "
        "changed. The 3 failures in every row are the repository's deliberately broken test fixtures "
        "(`tests/fixtures/corpus/broken/`: binary .txt, empty .md, corrupt .pdf), read again each run "
        "because a failed file has no memo.\n",
        "| run | files seen | added | updated | unchanged | deleted | failed | chunks written | embeddings | "
        "seconds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    labels = {
        "full": f"full at HEAD~{git['commits']}",
        "incremental": f"HEAD~{git['commits']} → HEAD",
        "unchanged": "unchanged",
    }
    for key, label in labels.items():
        r = git[key]
        lines.append(
            f"| {label} | {r['seen']} | {r['added']} | {r['updated']} | {r['unchanged']} | {r['deleted']} | "
            f"{r['failed']} | {r['chunks']} | {r['embeddings']} | {r['seconds']:.2f} |"
        )
    inc, same = git["incremental"], git["unchanged"]
    lines += [
        "",
        f"Moving {git['commits']} commits re-embedded only the {inc['added'] + inc['updated']} files whose "
        f"blob changed ({inc['embeddings']} embeddings, {inc['unchanged']} files not even read); the "
        f"unchanged run computed {same['embeddings']} embeddings in {same['seconds']:.2f} s (a `git fetch` "
        "and a tree listing). This history has no deleted or renamed document, so those paths of the "
        "Git source are exercised by its tests (tests with a bare repository), not measured here.\n",
    ]
    return lines


def sources_section(out: list[str]) -> None:
    data = load("sources")
    if not data:
        out.append(f"_No sources results yet: run `{COMMAND}`._\n")
        return
    m = data["machine"]
    out += [
        f"Measured {data['saved_utc']} with `{COMMAND}` ({m['run_minutes']} min) on {m['cpu_model']}, "
        f"{m['cores']} cores, {m['memory_gib']} GiB, load average {_load(m['load_average_at_start'])} at "
        f"start and {_load(m['load_average_at_end'])} at the end, Python {m['python']}, onnxruntime "
        f"{m['onnxruntime']}, commit {m['git_commit']} (with the work tree's changes). The bare "
        "local embedder (MiniLM, no vector cache), the bench's Weaviate, the default CHUNK_SIZE=1000/150.\n",
        *_website(data),
        *_peers(data, data["website"]),
        *_git(data),
    ]


def write_section(doc: Path = DOC) -> Path:
    """Replace (or add) this section in docs/benchmarks.md, leaving the rest of the page alone."""
    return report_text.write_section(HEADING, sources_section, before=_BEFORE, doc=doc)
