"""Command line: index, search, ask, chat, serve (the default) and status.

Run `python main.py --help`. Every command reads `Settings` from the environment and `.env`.
Exit codes: 0 done; 1 failed (one line says why); 2 the settings or DATA_DIR cannot be used;
3 `index` finished but some paths or files were not indexed (listed, each with its reason);
130 Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import signal
import sys
import tempfile
import warnings
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

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

EXIT_FAILED = 1  # the command could not do its job; one line says why
EXIT_BAD_SETTINGS = 2  # a setting (or DATA_DIR) cannot be used; the line names it
EXIT_INDEXED_WITH_FAILURES = 3  # `index` finished, but some paths or files were not indexed


def _print_error(message: str) -> None:
    """An error in red, printed as written: rich markup would eat `[a-z0-9_-]` in a pattern or a path."""
    console.print(message, style="red", markup=False, highlight=False, soft_wrap=True)


def _settings(*, quiet: bool = True) -> Settings:
    """Load settings or stop with one line. `quiet` commands log warnings only, unless LOG_LEVEL=DEBUG."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        _print_error(str(exc))
        raise typer.Exit(EXIT_BAD_SETTINGS) from None
    _check_data_dir(settings.data_dir)
    level = settings.log_level if not quiet or settings.log_level == "DEBUG" else "WARNING"
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "openai", "weaviate", "chatkit", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # chatkit warns about its own widget classes on import; nothing a user can act on. weaviate's
    # import resets the warning filters (simplefilter("default")), so import it before filtering.
    import weaviate  # noqa: F401

    warnings.filterwarnings("ignore", message="Direct usage of named widget classes is deprecated")
    return settings


def _check_data_dir(folder: Path) -> None:
    """Create DATA_DIR and prove it writable now: a bad one is then one line naming it, not a
    traceback from whichever part writes there first (the embedded Weaviate, SQLite)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        problem = "it is a broken symbolic link" if folder.is_symlink() else _os_problem(exc)
    else:
        try:
            with tempfile.TemporaryFile(dir=folder):
                return
        except OSError as exc:
            problem = f"no file can be created in it ({_os_problem(exc)})"
    _print_error(f"DATA_DIR={folder} cannot be used: {problem}. Point DATA_DIR at a writable folder.")
    raise typer.Exit(EXIT_BAD_SETTINGS)


def _os_problem(exc: OSError) -> str:
    problems = {
        errno.EEXIST: "it exists and is not a folder",
        errno.ENOTDIR: "a part of its path is a file, not a folder",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EROFS: "read-only file system",
    }
    return problems.get(exc.errno or 0, exc.strerror or str(exc))


def _run(coro: Coroutine[Any, Any, T], settings: Settings) -> T:
    """Run a command; known failures end in one clear line and exit code 1, not a traceback.

    SIGTERM stops a command the way Ctrl-C does: it is cancelled, so what it started (the embedded
    Weaviate, the database) is shut down, and it exits 143 (Ctrl-C: 130). `serve` handles both
    signals itself and exits 0 once stopped.
    """
    from services.errors import user_message

    runner = asyncio.Runner()
    terminated: list[bool] = []
    try:
        return runner.run(_cancelled_by_sigterm(coro, terminated))
    except KeyboardInterrupt:
        _exit_after_signal(130)
    except asyncio.CancelledError:
        if not terminated:
            raise
        _exit_after_signal(143)
    except Exception as exc:
        message = user_message(exc, settings)
        if message is None:
            raise
        _print_error(message)
        raise typer.Exit(EXIT_FAILED) from None
    finally:
        runner.close()


async def _cancelled_by_sigterm(coro: Coroutine[Any, Any, T], terminated: list[bool]) -> T:
    """Await `coro`; SIGTERM cancels it (its clean-up runs) and is noted in `terminated`."""
    task = asyncio.current_task()
    assert task is not None

    def terminate() -> None:
        terminated.append(True)
        task.cancel()

    with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows' loop
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, terminate)  # removed by loop.close()
    return await coro


def _exit_after_signal(code: int) -> NoReturn:
    """Exit now: the command's clean-up has run, but a worker thread blocked reading stdin (the
    console chat) would keep the process alive until Enter; the event loop's shutdown waits for it."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@cli.callback(invoke_without_command=True)
def default(ctx: typer.Context) -> None:
    """With no command: `serve`."""
    if ctx.invoked_subcommand is None:
        serve()


@cli.command()
def index(
    locations: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[SOURCE]...",
            help="Paths, https:// URLs (a site or its sitemap) or git+https://… URLs, or names from "
            "SOURCES_FILE (default: every configured source).",
        ),
    ] = None,
    source: Annotated[
        list[str] | None, typer.Option("--source", help="A source named in SOURCES_FILE (repeatable).")
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="Rebuild into a new collection, then swap.")] = False,
) -> None:
    """Index documents into Weaviate (incremental unless --full).

    Exits 0 when everything was indexed, 3 when the run finished but some paths, pages or files were
    not (each is listed with its reason), 1 when the run failed, 2 for an unknown source name.
    """
    settings = _settings()
    names = [*(locations or []), *_configured(settings, source or [])]
    result = _run(_index(settings, names or None, full), settings)
    typer.echo(result.summary())
    if result.failures:
        raise typer.Exit(EXIT_INDEXED_WITH_FAILURES)


def _configured(settings: Settings, names: list[str]) -> list[str]:
    """`--source` names, checked against the sources file (exit 2 naming the known ones)."""
    from configs.errors import UserFacingError
    from services.sources.catalog import load_catalog

    try:
        return load_catalog(settings).require(names) if names else []
    except UserFacingError as exc:
        _print_error(str(exc))
        raise typer.Exit(EXIT_BAD_SETTINGS) from None


async def _index(settings: Settings, paths: list[str] | None, full: bool) -> Any:
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
    space: Annotated[str | None, typer.Option("--space", help="Only this space's sources.")] = None,
) -> None:
    """Retrieval only: the passages a question would be answered from."""
    settings = _settings()
    _run(_search(settings, query, k, as_json, space), settings)


async def _search(
    settings: Settings, query: str | None, k: int | None, as_json: bool, space: str | None
) -> None:
    from services.console import search_lines
    from services.runtime import open_runtime

    async with open_runtime(settings) as runtime:
        sources = await runtime.spaces.sources_of(space) if space else None
        queries = [query] if query is not None else None
        if queries is None:
            queries = [line.strip() for line in await asyncio.to_thread(sys.stdin.readlines) if line.strip()]
            as_json = True
        for text in queries:
            passages = await runtime.retriever.search(text, k, sources=sources)
            for line in search_lines(text, passages, as_json=as_json):
                typer.echo(line)


@cli.command()
def ask(
    question: Annotated[str, typer.Argument(help="Your question.")],
    as_json: Annotated[bool, typer.Option("--json", help='{"answer": ..., "sources": [...]}')] = False,
    space: Annotated[str | None, typer.Option("--space", help="Answer from this space's sources.")] = None,
) -> None:
    """Answer one question from the documents, with sources."""
    settings = _settings()
    _run(_ask(settings, question, as_json, space), settings)


async def _ask(settings: Settings, question: str, as_json: bool, space: str | None) -> None:
    import uuid

    from services.chat.contract import AskFailed
    from services.console import answer_once, format_sources
    from services.runtime import open_runtime

    async with open_runtime(settings) as runtime:
        key = f"cli:{uuid.uuid4().hex}"
        write = (lambda _text: None) if as_json else (lambda text: print(text, end="", flush=True))
        sources = await runtime.spaces.sources_of(space) if space else None
        result = await answer_once(runtime.chat, key, question, write, sources=sources)
        if isinstance(result, AskFailed):
            if as_json:
                typer.echo(json.dumps({"error": result.message}))
            else:
                console.print()
                _print_error(result.message)
            raise typer.Exit(EXIT_FAILED)
        if as_json:
            cited = [
                {
                    "number": s.number,
                    "title": s.title,
                    "source": s.url or s.location,
                    "heading_path": s.heading_path,
                }
                for s in result.sources
            ]
            typer.echo(json.dumps({"answer": result.text, "sources": cited}, ensure_ascii=False))
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
    from services.console import run_console_chat
    from services.runtime import open_runtime
    from services.server.serve import answering

    async with open_runtime(settings) as runtime:
        if index_first:
            console.print("[dim]Indexing DOCS_PATHS (only changed files are re-embedded)…[/dim]")
            result = await runtime.indexer.index()
            console.print(result.summary(), style="dim", markup=False, highlight=False)
        await run_console_chat(answering(runtime, "console"))


@cli.command()
def report(
    since: Annotated[str, typer.Option("--since", help="Period: 7d, 24h, 4w or an ISO date.")] = "7d",
    space: Annotated[str | None, typer.Option("--space", help="Only this space.")] = None,
    channel: Annotated[str | None, typer.Option("--channel", help="Only this channel.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV output.")] = False,
) -> None:
    """What the docs miss: coverage gaps, feedback, usage and index health (docs/insights.md)."""
    settings = _settings()
    output = "json" if as_json else "csv" if as_csv else "text"
    typer.echo(_run(_report(settings, since, space, channel, output), settings), nl=False)


async def _report(settings: Settings, since: str, space: str | None, channel: str | None, output: Any) -> str:
    from services.insights.report_format import render_report
    from services.insights.service import insights_for
    from services.runtime import open_runtime

    async with open_runtime(settings) as runtime:
        insights = insights_for(runtime)
        return await render_report(insights, since=since, space=space, channel=channel, output=output)


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
    from services.console import status_lines, status_report
    from services.runtime import open_runtime

    async with open_runtime(settings) as runtime:
        info, cluster = await status_report(runtime)
        if as_json:
            typer.echo(json.dumps(info, ensure_ascii=False, default=str))
            return
        for line in status_lines(info, cluster, settings):
            typer.echo(line)


if __name__ == "__main__":
    cli()
