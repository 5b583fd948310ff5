"""The console adapter: chat with the docs in a terminal, with conversation memory."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console

from configs.config import Settings
from data.cluster_health import ClusterHealth
from data.records import Passage
from services.chat.contract import Answer, AskFailed, AskService, Source, Status, TextDelta
from services.indexing.contract import describe_run
from services.indexing.schedule import ConfiguredSources, describe_source

if TYPE_CHECKING:
    from services.runtime import Runtime

EXIT_WORDS = {"exit", "quit", ":q", "/exit", "/quit"}
HELP = "Ask a question about your documents. /new starts a new conversation, /exit (or Ctrl-D) leaves."


def format_sources(sources: list[Source]) -> str:
    """Plain-text source list: `[1] Title — path/or/url (Heading > Path)`."""
    lines = []
    for source in sources:
        where = source.url or source.location
        heading = f" ({source.heading_path})" if source.heading_path else ""
        lines.append(f"[{source.number}] {source.title} — {where}{heading}")
    return "\n".join(lines)


async def answer_once(
    chat: AskService,
    conversation_key: str,
    question: str,
    write: Callable[[str], None],
    *,
    sources: Sequence[str] | None = None,
) -> Answer | AskFailed:
    """Stream one answer to `write`; returns the final event. `sources`: only these (a space's)."""
    async for event in chat.ask(conversation_key, question, user_id="console", sources=sources):
        if isinstance(event, Status):
            continue
        if isinstance(event, TextDelta):
            write(event.text)
        else:
            return event
    return AskFailed("The answer stopped before it was complete.")


async def run_console_chat(chat: AskService, *, console: Console | None = None) -> None:
    """Read questions from stdin until EOF or /exit; print streamed answers with their sources."""
    console = console or Console()
    conversation = f"console:{uuid.uuid4().hex}"
    console.print(f"[bold]Docs chat[/bold] — {HELP}")
    while True:
        try:
            question = await asyncio.to_thread(console.input, "[bold cyan]you>[/bold cyan] ")
        except (EOFError, KeyboardInterrupt):
            console.print()
            return
        question = question.strip()
        if not question:
            continue
        if question.lower() in EXIT_WORDS:
            return
        if question == "/new":
            conversation = f"console:{uuid.uuid4().hex}"
            console.print("[dim]New conversation.[/dim]")
            continue
        console.print("[bold green]bot>[/bold green] ", end="")
        result = await answer_once(chat, conversation, question, _stdout_writer(console))
        console.print()
        if isinstance(result, AskFailed):
            console.print(f"[red]{result.message}[/red]")
        elif result.sources:
            console.print("[bold]Sources[/bold]")
            console.print(format_sources(result.sources), markup=False, highlight=False, soft_wrap=True)


def _stdout_writer(console: Console) -> Callable[[str], None]:
    def write(text: str) -> None:
        console.file.write(text)
        console.file.flush()

    return write if console.file is not None else sys.stdout.write


def search_lines(query: str, passages: Sequence[Passage], *, as_json: bool) -> list[str]:
    """`main.py search` output: one JSON line per query, or numbered passages for a person."""
    results = [
        {
            "text": p.text,
            "title": p.title,
            "source": p.source,
            "heading_path": p.heading_path,
            "score": round(p.score, 6),
        }
        for p in passages
    ]
    if as_json:
        return [json.dumps({"query": query, "results": results}, ensure_ascii=False)]
    if not results:
        return ["No matching passages."]
    lines = []
    for number, item in enumerate(results, 1):
        heading = f" ({item['heading_path']})" if item["heading_path"] else ""
        lines.append(f"[{number}] {item['title']} — {item['source']}{heading}  score={item['score']:.3f}")
        lines.append("    " + str(item["text"])[:400].replace("\n", "\n    ") + "\n")
    return lines


async def _space_report(runtime: Runtime) -> list[dict[str, Any]]:
    """Each space with its sources (None: every source); only when the sources file names spaces."""
    file = await runtime.spaces.file()
    if file is None or not file.spaces:
        return []
    return [
        {"name": name, "sources": await runtime.spaces.sources_of(name)}
        for name in await runtime.spaces.names()
    ]


async def status_report(runtime: Runtime) -> tuple[dict[str, Any], ClusterHealth]:
    """What `main.py status` shows (as JSON-ready data): the index, the embedder, the model, the last
    run, and the Weaviate nodes."""
    settings = runtime.settings
    stats = await runtime.store.stats()
    cluster = await runtime.store.cluster_health()
    sources = ConfiguredSources(settings, runtime.database.index_runs)
    info = {
        "index": None
        if stats is None
        else {
            "collection": stats.collection,
            "documents": stats.documents,
            "chunks": stats.chunks,
            "embedder": stats.embedder_model_id,
            "dimension": stats.dimension,
        },
        "configured_embedder": runtime.embedder.model_id,
        "language_model": settings.chat_model if settings.llm_configured else None,
        "last_run": await runtime.database.index_runs.last_run(),
        "sources": [status.to_dict() for status in await sources.statuses()],
        "spaces": await _space_report(runtime),
        "weaviate": {
            **cluster.to_dict(),
            "new_index_replication_factor": settings.weaviate_replication_factor,
        },
    }
    return info, cluster


def status_lines(info: dict[str, Any], cluster: ClusterHealth, settings: Settings) -> list[str]:
    """`status_report` as the lines a person reads."""
    index = info["index"]
    if index is None:
        lines = ["Index: empty — run `python main.py index`."]
    else:
        lines = [
            f"Index: {index['documents']} documents, {index['chunks']} chunks in {index['collection']}",
            f"Embedder: {index['embedder']} ({index['dimension']} dimensions)",
        ]
    lines.append(f"Language model: {info['language_model'] or 'none (answers quote the best passages)'}")
    lines.append(f"Last run: {describe_run(info['last_run'])}")
    if len(info["sources"]) > 1 or settings.sources_file is not None:
        lines.append("Sources:")
        now = datetime.now(UTC)
        lines.extend(f"  {describe_source(source, now)}" for source in info["sources"])
    documents = {
        source["name"]: (source.get("last_run") or {}).get("documents", 0) for source in info["sources"]
    }
    if info["spaces"]:
        lines.append("Spaces:")
    for space in info["spaces"]:
        names = space["sources"] if space["sources"] is not None else list(documents)
        count = sum(documents.get(name, 0) for name in names)
        lines.append(f"  {space['name']}: {', '.join(names) or 'no sources'} — {count} documents")
    lines.extend(cluster.describe(settings.weaviate_replication_factor))
    return lines
