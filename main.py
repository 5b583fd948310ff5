"""Command line: index, search, ask, chat, serve (the default) and status.

Run `python main.py --help`. Every command reads `Settings` from the environment and `.env`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import warnings
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from configs.config import ConfigError, Settings, load_settings

T = TypeVar("T")
cli = typer.Typer(
    help="Chat with your team's documents from Slack, Discord and the console.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


def _settings(*, quiet: bool = True) -> Settings:
    """Load settings or stop with one line. `quiet` commands log warnings only, unless LOG_LEVEL=DEBUG."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    level = settings.log_level if not quiet or settings.log_level == "DEBUG" else "WARNING"
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "openai", "weaviate", "chatkit", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # chatkit warns about its own widget classes on import; nothing a user can act on. weaviate's
    # import resets the warning filters (simplefilter("default")), so import it before filtering.
    import weaviate  # noqa: F401

    warnings.filterwarnings("ignore", message="Direct usage of named widget classes is deprecated")
    return settings


def _run(coro: Coroutine[Any, Any, T], settings: Settings) -> T:
    """Run a command; known failures end in one clear line and exit code 1, not a traceback."""
    from services.errors import user_message

    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except Exception as exc:
        message = user_message(exc, settings)
        if message is None:
            raise
        console.print(f"[red]{message}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


@cli.callback(invoke_without_command=True)
def default(ctx: typer.Context) -> None:
    """With no command: `serve`."""
    if ctx.invoked_subcommand is None:
        serve()


@cli.command()
def index(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files or folders (default: DOCS_PATHS).")
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="Rebuild into a new collection, then swap.")] = False,
) -> None:
    """Index documents into Weaviate (incremental unless --full)."""
    settings = _settings()
    result = _run(_index(settings, paths or None, full), settings)
    typer.echo(result.summary())


async def _index(settings: Settings, paths: list[Path] | None, full: bool) -> Any:
    from services.indexer import IndexProgress
    from services.runtime import open_runtime

    async with open_runtime(settings) as runtime:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task("scanning", total=None)

            def on_progress(progress: IndexProgress) -> None:
                bar.update(
                    task,
                    description=f"{progress.phase} ({progress.chunks_written} chunks)",
                    total=progress.documents_total,
                    completed=progress.documents_done,
                )

            return await runtime.indexer.index(
                paths, full=full, on_progress=on_progress, progress_interval=0.2
            )


@cli.command()
def search(
    query: Annotated[
        str | None, typer.Argument(help="The query; without it, one query per line from stdin.")
    ] = None,
    k: Annotated[int | None, typer.Option("-k", help="Passages to return (default: SEARCH_TOP_K).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Retrieval only: the passages a question would be answered from."""
    settings = _settings()
    _run(_search(settings, query, k, as_json), settings)


async def _search(settings: Settings, query: str | None, k: int | None, as_json: bool) -> None:
    from services.runtime import open_runtime

    async with open_runtime(settings) as runtime:
        queries = [query] if query is not None else None
        if queries is None:
            queries = [line.strip() for line in await asyncio.to_thread(sys.stdin.readlines) if line.strip()]
            as_json = True
        for text in queries:
            passages = await runtime.retriever.search(text, k)
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
                typer.echo(json.dumps({"query": text, "results": results}, ensure_ascii=False))
                continue
            if not results:
                typer.echo("No matching passages.")
            for number, item in enumerate(results, 1):
                heading = f" ({item['heading_path']})" if item["heading_path"] else ""
                typer.echo(
                    f"[{number}] {item['title']} — {item['source']}{heading}  score={item['score']:.3f}"
                )
                typer.echo("    " + str(item["text"])[:400].replace("\n", "\n    ") + "\n")


@cli.command()
def ask(
    question: Annotated[str, typer.Argument(help="Your question.")],
    as_json: Annotated[bool, typer.Option("--json", help='{"answer": ..., "sources": [...]}')] = False,
) -> None:
    """Answer one question from the documents, with sources."""
    settings = _settings()
    _run(_ask(settings, question, as_json), settings)


async def _ask(settings: Settings, question: str, as_json: bool) -> None:
    import uuid

    from services.chat.contract import AskFailed
    from services.console import answer_once, format_sources
    from services.runtime import open_runtime

    async with open_runtime(settings) as runtime:
        key = f"cli:{uuid.uuid4().hex}"
        write = (lambda _text: None) if as_json else (lambda text: print(text, end="", flush=True))
        result = await answer_once(runtime.chat, key, question, write)
        if isinstance(result, AskFailed):
            if as_json:
                typer.echo(json.dumps({"error": result.message}))
            else:
                console.print(f"\n[red]{result.message}[/red]", highlight=False)
            raise typer.Exit(1)
        if as_json:
            sources = [
                {
                    "number": s.number,
                    "title": s.title,
                    "source": s.url or s.location,
                    "heading_path": s.heading_path,
                }
                for s in result.sources
            ]
            typer.echo(json.dumps({"answer": result.text, "sources": sources}, ensure_ascii=False))
        else:
            print()
            if result.sources:
                print("\nSources:\n" + format_sources(result.sources))


@cli.command()
def chat(
    index_first: Annotated[
        bool, typer.Option("--index-first", help="Index DOCS_PATHS before chatting.")
    ] = False,
) -> None:
    """A console chat with conversation memory."""
    settings = _settings()
    _run(_chat(settings, index_first), settings)


async def _chat(settings: Settings, index_first: bool) -> None:
    from services.chat.metrics import MeteredAskService
    from services.console import run_console_chat
    from services.runtime import open_runtime

    async with open_runtime(settings) as runtime:
        if index_first:
            console.print("[dim]Indexing DOCS_PATHS (only changed files are re-embedded)…[/dim]")
            result = await runtime.indexer.index()
            console.print(f"[dim]{result.summary()}[/dim]", highlight=False)
        await run_console_chat(MeteredAskService(runtime.chat, "console"))


@cli.command()
def serve() -> None:
    """Start every configured adapter (Slack, Discord) and the HTTP server."""
    from services.server.serve import run_server

    settings = _settings(quiet=False)
    _run(run_server(settings), settings)


@cli.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False) -> None:
    """Index statistics: documents, chunks, embedder, last run and its result."""
    settings = _settings()
    _run(_status(settings, as_json), settings)


async def _status(settings: Settings, as_json: bool) -> None:
    from services.runtime import open_runtime

    async with open_runtime(settings) as runtime:
        stats = await runtime.store.stats()
        last = await runtime.database.index_runs.last_run()
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
            "last_run": last,
        }
        if as_json:
            typer.echo(json.dumps(info, ensure_ascii=False, default=str))
            return
        if stats is None:
            typer.echo("Index: empty — run `python main.py index`.")
        else:
            typer.echo(f"Index: {stats.documents} documents, {stats.chunks} chunks in {stats.collection}")
            typer.echo(f"Embedder: {stats.embedder_model_id} ({stats.dimension} dimensions)")
        typer.echo(f"Language model: {info['language_model'] or 'none (answers quote the best passages)'}")
        typer.echo(f"Last run: {_describe_run(last)}")


def _describe_run(run: dict[str, Any] | None) -> str:
    """One line for `status`: when, what kind, the counts, and an error if it failed."""
    if not run:
        return "never"
    kind = "full rebuild" if run.get("full") else "incremental"
    counts = ", ".join(
        f"{run.get(name, 0)} {name}" for name in ("added", "updated", "unchanged", "deleted", "failed")
    )
    took = float(run.get("seconds", 0))
    line = f"{run.get('recorded_at', '?')} ({kind}, {took:.1f}s): {run.get('seen', 0)} seen — {counts}"
    return line + (f"; failed: {run['error']}" if run.get("error") else "")


if __name__ == "__main__":
    cli()
