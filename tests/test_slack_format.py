"""Slack formatting: mrkdwn conversion, escaping, splitting within limits; and the app manifest."""

from __future__ import annotations

from pathlib import Path

import yaml

from configs.config import PROJECT_ROOT, Settings
from services.chat.contract import Answer, Source
from services.slack.blocks import (
    FEEDBACK_DOWN,
    FEEDBACK_UP,
    MESSAGE_BLOCK_LIMIT,
    SECTION_LIMIT,
    answer_messages,
    source_line,
    split_text,
    to_mrkdwn,
)


def test_markdown_becomes_mrkdwn_with_escaping() -> None:
    text = to_mrkdwn(
        "## Setup\n\nUse **bold**, *italic* and [the guide](https://x.test/a?b=1&c=2).\n\n"
        "> a quote\n\n```\nif a < b && c > d:\n```"
    )
    assert text.startswith("*Setup*")
    assert "*bold*" in text and "_italic_" in text
    assert "<https://x.test/a?b=1&amp;c=2|the guide>" in text
    assert "\n> a quote" in text
    assert "if a &lt; b &amp;&amp; c &gt; d:" in text  # Slack shows them as <, &, >
    assert (
        to_mrkdwn("See <https://x.test/p> or <b>") == "See <https://x.test/p|https://x.test/p> or &lt;b&gt;"
    )


def test_split_keeps_limits_code_blocks_and_every_character() -> None:
    code = "```\n" + "\n".join(f"print({i})" for i in range(900)) + "\n```"
    prose = " ".join(f"word{i}" for i in range(2000))  # one 15,000-character line
    pieces = split_text(prose + "\n\n" + code)
    assert all(len(piece) <= SECTION_LIMIT for piece in pieces)
    code_pieces = [p for p in pieces if "print(" in p]
    assert len(code_pieces) >= 3
    assert all(p.count("```") % 2 == 0 for p in code_pieces)  # each piece opens and closes its block
    joined = "".join(pieces).replace("```", "")
    assert "".join(joined.split()) == "".join((prose + code).replace("```", "").split())


def test_answer_messages_respect_block_limits_and_end_with_sources_and_buttons() -> None:
    text = "\n\n".join(f"Paragraph {i}. " + "detail " * 400 for i in range(100))  # ~280,000 characters
    sources = [Source(i, f"Doc {i}", f"/docs/{i}.md") for i in range(1, 6)]
    messages = answer_messages(Answer(text, sources, "answer-42"))
    assert len(messages) >= 2
    for blocks in messages:
        assert 0 < len(blocks) <= MESSAGE_BLOCK_LIMIT
        assert all(len(b["text"]["text"]) <= SECTION_LIMIT for b in blocks if b["type"] == "section")
    last = messages[-1]
    assert last[-2]["text"]["text"].startswith("*Sources*\n[1] Doc 1 `/docs/1.md`")
    assert [e["action_id"] for e in last[-1]["elements"]] == [FEEDBACK_UP, FEEDBACK_DOWN]
    assert {e["value"] for e in last[-1]["elements"]} == {"answer-42"}


def test_source_lines_link_urls_and_show_paths() -> None:
    assert source_line(Source(1, "A & B", "https://w.test/x", "https://w.test/x", "Intro > Setup")) == (
        "[1] <https://w.test/x|A &amp; B> · Intro &gt; Setup"
    )
    assert source_line(Source(2, "Ops", "docs/ops.md")) == "[2] Ops `docs/ops.md`"
    assert source_line(Source(3, "", "https://w.test/y")) == "[3] <https://w.test/y|https://w.test/y>"


def test_manifest_has_what_the_bot_uses() -> None:
    manifest = yaml.safe_load(Path(PROJECT_ROOT / "slack" / "manifest.yml").read_text(encoding="utf-8"))
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {
        "app_mentions:read",
        "chat:write",
        "im:history",
        "channels:history",
        "groups:history",
        "assistant:write",
        "reactions:write",
        "commands",
        "users:read",
        "usergroups:read",
    } <= scopes
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert {"app_mention", "message.channels", "message.groups", "message.im"} <= events
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["settings"]["socket_mode_enabled"] is True
    commands = [c["command"] for c in manifest["features"]["slash_commands"]]
    assert commands == [
        Settings.model_fields["slack_reindex_command"].default,
        Settings.model_fields["slack_spaces_command"].default,
    ]
