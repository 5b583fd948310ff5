"""Splitting at Discord's 2000-character limit, source lists, and throttled edit streaming."""

from __future__ import annotations

import re

from services.chat.contract import Answer, Source
from services.discord.messages import (
    DISCORD_LIMIT,
    MessageStream,
    format_sources,
    render_answer,
    split_message,
)


def test_short_text_is_one_message_and_empty_text_none() -> None:
    assert split_message("hello") == ["hello"]
    assert split_message("\n\n") == []


def test_long_prose_splits_between_lines_under_the_limit() -> None:
    text = "\n".join(f"Line {i}: " + "x" * 60 for i in range(100))
    chunks = split_message(text)
    assert len(chunks) == 4
    assert all(len(chunk) <= DISCORD_LIMIT for chunk in chunks)
    assert "\n".join(chunks) == text  # cut only at newlines: nothing lost or changed


def test_a_code_block_across_a_cut_is_closed_and_reopened() -> None:
    code = "\n".join(f"    value_{i} = compute({i})" for i in range(150))
    text = f"Intro\n```python\n{code}\n```\nOutro"
    chunks = split_message(text)
    assert len(chunks) >= 3
    assert all(len(chunk) <= DISCORD_LIMIT for chunk in chunks)
    assert all(chunk.count("```") % 2 == 0 for chunk in chunks)
    assert all(chunk.startswith("```python\n") for chunk in chunks[1:])
    lines = [line for chunk in chunks for line in chunk.split("\n") if line.startswith("    value_")]
    assert lines == code.split("\n")


def test_links_are_never_cut() -> None:
    link = "[the configuration reference](https://docs.example.com/reference/configuration#tokens)"
    text = " ".join(["word"] * 380 + [link] + ["word"] * 50 + ["https://example.com/" + "a" * 80])
    chunks = split_message(text, limit=500)
    assert all(len(chunk) <= 500 for chunk in chunks)
    assert sum(link in chunk for chunk in chunks) == 1
    assert sum(("https://example.com/" + "a" * 80) in chunk for chunk in chunks) == 1


def test_sources_are_numbered_with_links_and_paths() -> None:
    sources = [
        Source(
            1, "Install [beta]", "https://docs.example.com/install", url="https://docs.example.com/install"
        ),
        Source(3, "Ops_guide", "/srv/docs/ops.md", heading_path="Backups"),
    ]
    assert format_sources(sources) == (
        "**Sources**\n"
        "\\[1\\] [Install (beta)](<https://docs.example.com/install>)\n"
        "\\[3\\] Ops\\_guide · Backups (`/srv/docs/ops.md`)"
    )
    assert render_answer(Answer("Text [1]", sources)).startswith("Text [1]\n\n**Sources**\n")
    assert render_answer(Answer("No sources")) == "No sources"


class Recorder:
    """Collects what a stream sends and edits (message handles are ints)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, str]] = []

    async def send(self, text: str) -> int:
        self.calls.append(("send", len(self.calls), text))
        return len(self.calls) - 1

    async def edit(self, message: int, text: str) -> None:
        self.calls.append(("edit", message, text))


async def test_streaming_edits_at_most_once_per_interval() -> None:
    now = [0.0]
    recorder = Recorder()
    stream: MessageStream[int] = MessageStream(
        recorder.send, recorder.edit, interval=1.0, clock=lambda: now[0]
    )
    text = ""
    for step in range(30):  # 30 deltas over 3 seconds
        text += f"part{step} "
        now[0] = step * 0.1
        await stream.update(text)
    await stream.finish(text + "done")

    kinds = [kind for kind, _, _ in recorder.calls]
    assert kinds == ["send", "edit", "edit", "edit"]  # t=0, 1.0, 2.0, then the final text
    assert recorder.calls[-1] == ("edit", 0, text + "done")


async def test_streaming_grows_into_more_messages_past_the_limit() -> None:
    now = [0.0]
    recorder = Recorder()
    stream: MessageStream[int] = MessageStream(
        recorder.send, recorder.edit, interval=1.0, clock=lambda: now[0]
    )
    await stream.update("start")
    final = "\n".join("y" * 99 for _ in range(50))  # ~5,000 characters
    await stream.finish(final)
    sent = [text for kind, _, text in recorder.calls if kind == "send"]
    assert len(stream.messages) == 3 and len(sent) == 3
    assert all(len(text) <= DISCORD_LIMIT for _, _, text in recorder.calls)
    assert re.sub(r"\s", "", "".join(split_message(final))) == re.sub(r"\s", "", final)


async def test_finish_returns_the_message_holding_the_last_chunk() -> None:
    recorder = Recorder()
    stream: MessageStream[int] = MessageStream(recorder.send, recorder.edit, interval=0.0)
    await stream.update("\n".join("z" * 99 for _ in range(50)))  # three messages
    assert len(stream.messages) == 3

    last = await stream.finish("short now")  # the text shrank: messages 2 and 3 are blanked

    assert last == stream.messages[0]  # the buttons go under the text, not under a blanked "…"
    assert recorder.calls[-1][2] == "…"
