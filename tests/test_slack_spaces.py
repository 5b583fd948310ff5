"""Spaces in Slack, end to end: two channels mapped to two spaces with different documents, through
the real Bolt app, ChatService (offline model), Indexer, Weaviate and SQLite database.

What a channel may search, who may ask there, how often, in which mode, `/docs-bot` changing the
mapping (seen by a second bot instance on the same database), and "Ask a human" with the expert's
reply stored.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from database_support import votes_on
from fake_slack import (
    ADMIN_USER_ID,
    BOT_USER_ID,
    MEMBER_USER_ID,
    TEAM_ID,
    Call,
    FakeSlack,
    button_click,
    event_body,
)
from slack_harness import running_bot, stream_text

from configs.config import PROJECT_ROOT, Settings
from data.database import Database
from data.embeddings import Embedder
from data.vector_store import WeaviateVectorStore
from services.chatkit_service import ChatService, create_chat_service
from services.indexer import Indexer
from services.rag import Retriever
from services.slack.blocks import (
    ASK_HUMAN,
    BUTTON_VALUE_LIMIT,
    FEEDBACK_DOWN,
    HumanRequest,
    human_request_value,
    parse_human_request,
)
from services.spaces.directory import Spaces
from services.spaces.policy import Place
from simple_agents.offline_model import NOT_COVERED

ALPHA, BETA, QUIET = "C0ALPHA", "C0BETA", "C0QUIET"
EXPERT, GROUP_EXPERT, GROUPIE, STRANGER = "U0EXPERT", "U0GEXPERT", "U0GROUPIE", "U0STRANGER"
RESTORE = "how do I restore a backup?"
REFUND = "how do I refund a payment?"

BACKUPS_DOC = """# Backups

## Restoring a backup

To restore a backup, stop the server and run `restore.sh` with the snapshot name. Restores take
about ten minutes for a 50 GB snapshot.
"""
REFUNDS_DOC = """# Payments

## Refunding a payment

To refund a payment, open the payments console, find the charge and press Refund. The money
reaches the customer's card within five business days.
"""


def sources_toml(root: Path) -> str:
    return f"""
[sources.alpha-docs]
location = "{root / "alpha"}"
[sources.beta-docs]
location = "{root / "beta"}"

[spaces.alpha]
sources = ["alpha-docs"]
experts = ["{EXPERT}", "S0EXPERTS", "role:4242"]  # the Discord role is not Slack's to mention

[spaces.beta]
sources = ["beta-docs"]
allowed_users = ["{MEMBER_USER_ID}", "{ADMIN_USER_ID}"]
allowed_groups = ["S0PAYTEAM"]
rate_limit_per_minute = 2

[places]
"slack:{ALPHA}" = {{ spaces = ["alpha"], mode = "auto" }}
"slack:{BETA}" = {{ spaces = ["beta"] }}
"slack:{QUIET}" = {{ spaces = ["alpha"], ephemeral = true }}
"""


@dataclass
class Engine:
    settings: Settings
    chat: ChatService
    database: Database
    indexer: Indexer
    spaces: Spaces


@pytest.fixture
async def engine(
    make_settings: Callable[..., Settings], embedder: Embedder, tmp_path: Path
) -> AsyncIterator[Engine]:
    """The real runtime pieces, with the alpha and beta documents indexed as two sources."""
    for name, doc in (("alpha", BACKUPS_DOC), ("beta", REFUNDS_DOC)):
        (tmp_path / name).mkdir()
        (tmp_path / name / ("backups.md" if name == "alpha" else "refunds.md")).write_text(
            doc, encoding="utf-8"
        )
    sources = tmp_path / "sources.toml"
    sources.write_text(sources_toml(tmp_path), encoding="utf-8")
    settings = make_settings(sources_file=sources, data_dir=tmp_path / "data")
    store = WeaviateVectorStore(settings)
    await store.connect()
    database = Database(settings.database_dsn)
    await database.create()
    indexer = Indexer(settings, store, embedder, run_log=database.index_runs)
    await indexer.index()
    chat = await create_chat_service(settings, Retriever(settings, store, embedder), database)
    try:
        yield Engine(settings, chat, database, indexer, Spaces(settings, database.spaces))
    finally:
        await database.dispose()
        await store.close()


def bot(make_settings: Callable[..., Settings], engine: Engine, spaces: Spaces | None = None) -> Any:
    return running_bot(
        make_settings,
        engine.chat,
        engine.indexer,
        claim_event=engine.database.claim_event,
        spaces=spaces or engine.spaces,
        sources_file=engine.settings.sources_file,
        data_dir=engine.settings.data_dir,
    )


def mention(channel: str, ts: str, text: str, user: str = MEMBER_USER_ID, **extra: str) -> dict[str, Any]:
    return event_body(
        {
            "type": "app_mention",
            "user": user,
            "text": f"<@{BOT_USER_ID}> {text}",
            "ts": ts,
            "channel": channel,
            "event_ts": ts,
            **extra,
        }
    )


def message(channel: str, ts: str, text: str, user: str = MEMBER_USER_ID, **extra: str) -> dict[str, Any]:
    event = {"type": "message", "user": user, "text": text, "ts": ts, "channel": channel}
    return event_body({**event, "channel_type": "channel", "event_ts": ts, **extra})


async def answered(fake: FakeSlack, thread_ts: str, count: int = 1) -> list[list[Call]]:
    """The finished streamed answers in a thread, once there are `count` of them."""

    def finished() -> list[list[Call]]:
        done = [s for s in fake.streams(thread_ts) if s[-1].method == "chat.stopStream"]
        return done if len(done) >= count else []

    return list(await fake.wait_for(finished, timeout=30))


def footer_buttons(stream: list[Call]) -> dict[str, dict[str, Any]]:
    blocks = stream[-1].args.get("blocks") or []
    return {e["action_id"]: e for b in blocks if b["type"] == "actions" for e in b["elements"]}


def ack_text(body: str) -> str:
    return str(json.loads(body)["text"]) if body.startswith("{") else body


async def settle(seconds: float = 0.8) -> None:
    """Time for the bot to (wrongly) act on an event it should ignore."""
    await asyncio.sleep(seconds)


async def test_each_channel_answers_from_its_own_documents_only(make_settings, engine) -> None:
    async with bot(make_settings, engine) as h:
        for channel, ts, question in ((ALPHA, "10.1", RESTORE), (BETA, "10.2", REFUND)):
            await h.sender.event(mention(channel, ts, question))
        for channel, ts, question in ((ALPHA, "10.3", REFUND), (BETA, "10.4", RESTORE)):
            await h.sender.event(mention(channel, ts, question))
        [alpha] = await answered(h.fake, "10.1")
        [beta] = await answered(h.fake, "10.2")
        assert "restore.sh" in stream_text(alpha) and "five business days" not in stream_text(alpha)
        assert "five business days" in stream_text(beta) and "restore.sh" not in stream_text(beta)
        # The other space's document is not found: "not covered", from the Weaviate filter itself.
        [alpha_on_refunds] = await answered(h.fake, "10.3")
        [beta_on_backups] = await answered(h.fake, "10.4")
        assert NOT_COVERED in stream_text(alpha_on_refunds) and "five business days" not in stream_text(
            alpha_on_refunds
        )
        assert NOT_COVERED in stream_text(beta_on_backups) and "restore.sh" not in stream_text(
            beta_on_backups
        )
        # Alpha has experts: its "not covered" answer offers a person at once; beta has none.
        assert ASK_HUMAN in footer_buttons(alpha_on_refunds)
        assert ASK_HUMAN not in footer_buttons(beta_on_backups)
        assert ASK_HUMAN not in footer_buttons(alpha)  # covered: offered only after a 👎

        # An `ephemeral` place: the answer only the asker sees, posted once, never streamed.
        await h.sender.event(mention(QUIET, "10.5", RESTORE))
        [private] = await h.fake.wait_for(lambda: h.fake.ephemerals(MEMBER_USER_ID), timeout=30)
        assert private.args["channel"] == QUIET and "thread_ts" not in private.args
        assert "restore.sh" in json.dumps(private.args["blocks"])
        assert not h.fake.streams("10.5") and not h.fake.calls_to("reactions.add")


async def test_auto_mode_answers_questions_without_a_mention_and_ignores_chatter(
    make_settings, engine
) -> None:
    async with bot(make_settings, engine) as h:
        await h.sender.event(message(ALPHA, "20.1", "Deployed the new release, thanks everyone"))
        await h.sender.event(message(BETA, "20.2", "how do I refund a payment?"))  # beta: mention mode
        await h.sender.event(message(ALPHA, "20.3", "How long does a restore take"))
        [done] = await answered(h.fake, "20.3")
        assert "ten minutes" in stream_text(done)
        await settle()
        assert not h.fake.streams("20.1") and not h.fake.streams("20.2")
        assert [c.args["thread_ts"] for c in h.fake.calls_to("chat.startStream")] == ["20.3"]


async def test_a_user_outside_the_allowed_list_gets_one_polite_refusal(make_settings, engine) -> None:
    async with bot(make_settings, engine) as h:
        h.fake.usergroups["S0PAYTEAM"] = [GROUPIE]
        body = mention(BETA, "30.1", REFUND, user=STRANGER)
        await h.sender.event(body)
        await h.sender.event(body, retry_num=1)  # a redelivery: still one refusal
        [refusal] = await h.fake.wait_for(lambda: h.fake.ephemerals(STRANGER))
        assert refusal.args["channel"] == BETA and "limited to certain people" in refusal.args["text"]
        await h.sender.event(mention(BETA, "30.2", REFUND, user=GROUPIE))  # allowed through S0PAYTEAM
        [done] = await answered(h.fake, "30.2")
        assert "five business days" in stream_text(done)
        assert len(h.fake.ephemerals(STRANGER)) == 1 and not h.fake.streams("30.1")
        assert [c.args["usergroup"] for c in h.fake.calls_to("usergroups.users.list")] == ["S0PAYTEAM"]


async def test_the_rate_limit_says_so(make_settings, engine) -> None:
    async with bot(make_settings, engine) as h:
        for n in (1, 2):
            await h.sender.event(mention(BETA, f"40.{n}", REFUND))
            await answered(h.fake, f"40.{n}")
        await h.sender.event(mention(BETA, "40.3", REFUND))
        [limited] = await h.fake.wait_for(lambda: h.fake.ephemerals(MEMBER_USER_ID))
        assert "asked 2 questions in the last minute" in limited.args["text"]
        await settle(0.3)
        assert not h.fake.streams("40.3")


async def test_docs_bot_use_changes_the_mapping_for_every_instance(make_settings, engine) -> None:
    async with bot(make_settings, engine) as h:
        command = h.sender.command
        _, body = await command("/docs-bot", "show", user_id=MEMBER_USER_ID, response_url="", channel=ALPHA)
        assert "Spaces: alpha (sources file, places.slack:C0ALPHA)" in ack_text(body)
        assert "Answer mode: auto (sources file, places.slack:C0ALPHA)" in ack_text(body)
        _, body = await command(
            "/docs-bot", "use beta", user_id=MEMBER_USER_ID, response_url="", channel=ALPHA
        )
        assert "only admins" in ack_text(body)
        _, body = await command(
            "/docs-bot", "use gamma", user_id=ADMIN_USER_ID, response_url="", channel=ALPHA
        )
        assert "No space called gamma" in ack_text(body)
        _, body = await command(
            "/docs-bot", "use beta", user_id=ADMIN_USER_ID, response_url="", channel=ALPHA
        )
        assert f"Spaces: beta (set in the chat by {ADMIN_USER_ID}" in ack_text(body)

    # A second bot with its own Spaces on the same database (another replica) sees the change.
    database = Database(engine.settings.database_dsn)
    try:
        other = Spaces(engine.settings, database.spaces)
        async with bot(make_settings, engine, spaces=other) as h:
            command = h.sender.command
            _, body = await command("/docs-bot", "", user_id=MEMBER_USER_ID, response_url="", channel=ALPHA)
            assert f"Spaces: beta (set in the chat by {ADMIN_USER_ID}" in ack_text(body)
            await h.sender.event(mention(ALPHA, "50.1", REFUND))
            [done] = await answered(h.fake, "50.1")
            assert "five business days" in stream_text(done)  # alpha's channel now searches beta's docs

            _, body = await command(
                "/docs-bot", "mode thread-only", user_id=ADMIN_USER_ID, response_url="", channel=ALPHA
            )
            assert "Answer mode: thread-only (set in the chat" in ack_text(body)
            await h.sender.event(mention(ALPHA, "50.2", REFUND))
            [hint] = await h.fake.wait_for(lambda: h.fake.ephemerals(MEMBER_USER_ID))
            assert "answer inside threads" in hint.args["text"] and not h.fake.streams("50.2")

            _, body = await command(
                "/docs-bot", "reset", user_id=ADMIN_USER_ID, response_url="", channel=ALPHA
            )
            assert "Spaces: alpha (sources file, places.slack:C0ALPHA)" in ack_text(body)
        assert (await engine.spaces.policy(Place("slack", TEAM_ID, ALPHA))).spaces == ("alpha",)
    finally:
        await database.dispose()


async def test_reindex_without_names_refreshes_the_channels_spaces(make_settings, engine) -> None:
    async with bot(make_settings, engine) as h:
        _, body = await h.sender.command(
            "/reindex", "", user_id=ADMIN_USER_ID, response_url=h.fake.response_url(), channel=BETA
        )
        assert ack_text(body).startswith("Incremental reindex started for `beta-docs`.")
        await h.fake.wait_for(
            lambda: any("documents seen" in str(b.get("text")) for _, b, _ in h.fake.responses)
        )


async def test_ask_a_human_mentions_the_experts_and_stores_the_reply(make_settings, engine) -> None:
    async with bot(make_settings, engine) as h:
        h.fake.usergroups["S0EXPERTS"] = [GROUP_EXPERT]
        await h.sender.event(mention(ALPHA, "60.1", REFUND))
        [done] = await answered(h.fake, "60.1")
        button = footer_buttons(done)[ASK_HUMAN]
        click = button_click(
            ASK_HUMAN,
            button["value"],
            user_id=MEMBER_USER_ID,
            response_url=h.fake.response_url(),
            channel=ALPHA,
        )
        assert (await h.sender.interaction(click))[0] == 200
        [handover] = await h.fake.wait_for(
            lambda: [c for c in h.fake.calls_to("chat.postMessage") if c.args.get("thread_ts") == "60.1"]
        )
        assert f"<@{EXPERT}>" in handover.args["text"] and "<!subteam^S0EXPERTS>" in handover.args["text"]
        assert "refund a payment" in handover.args["text"] and "4242" not in handover.args["text"]
        await h.fake.wait_for(lambda: h.fake.responses)
        assert "I asked the experts" in h.fake.responses[-1][1]["text"]
        await h.sender.interaction(click)  # a second click asks nobody twice
        await h.fake.wait_for(lambda: len(h.fake.responses) == 2)
        assert "already asked" in h.fake.responses[-1][1]["text"]

        reply = "Refunds: payments console, press Refund; five business days."
        await h.sender.event(message(ALPHA, "60.5", reply, user=GROUP_EXPERT, thread_ts="60.1"))
        [thanks] = await h.fake.wait_for(lambda: h.fake.ephemerals(GROUP_EXPERT))
        assert "saved your reply" in thanks.args["text"] and thanks.args["thread_ts"] == "60.1"
        [stored] = await engine.database.spaces.human_answers()
        assert stored.space == "alpha" and stored.question == REFUND and NOT_COVERED in stored.bot_answer
        assert (stored.expert, stored.reply) == (GROUP_EXPERT, reply)
        await settle(0.5)
        assert len(h.fake.streams("60.1")) == 1  # the expert's reply was not answered as a question

        # A covered answer offers a person after a 👎 (the vote is stored on the answer all the same).
        await h.sender.event(mention(ALPHA, "61.1", RESTORE))
        [covered] = await answered(h.fake, "61.1")
        down = footer_buttons(covered)[FEEDBACK_DOWN]
        await h.sender.interaction(
            button_click(
                FEEDBACK_DOWN,
                down["value"],
                user_id=MEMBER_USER_ID,
                response_url=h.fake.response_url(),
                channel=ALPHA,
            )
        )
        await h.fake.wait_for(lambda: len(h.fake.responses) == 3)
        offer = h.fake.responses[-1][1]
        assert [e["action_id"] for b in offer["blocks"] if b["type"] == "actions" for e in b["elements"]] == [
            ASK_HUMAN
        ]
        answer_id = footer_buttons(covered)["answer_feedback_up"]["value"]
        [vote] = await votes_on(engine.database, answer_id)
        assert not vote.positive


def test_the_ask_a_human_button_carries_its_request_within_slacks_limit() -> None:
    long = HumanRequest("answer-1", 'a "quoted" question\n' * 60, 'answer \\ with "escapes"\n' * 400, "70.1")
    value = human_request_value(long)
    parsed = parse_human_request(value)
    assert len(value) <= BUTTON_VALUE_LIMIT and parsed is not None
    assert (parsed.answer_id, parsed.thread_ts) == ("answer-1", "70.1")
    assert long.question.startswith(parsed.question) and len(parsed.question) == 500
    assert (
        parsed.answer.endswith("…")
        and long.answer.startswith(parsed.answer[:-1])
        and len(parsed.answer) > 300
    )
    assert parse_human_request("answer-1") is None  # a plain 👎 value is an answer id


def test_manifest_declares_the_spaces_command_and_the_group_scope() -> None:
    manifest = yaml.safe_load((PROJECT_ROOT / "slack" / "manifest.yml").read_text(encoding="utf-8"))
    commands = {c["command"]: c for c in manifest["features"]["slash_commands"]}
    assert (
        "mode mention|auto|thread-only"
        in commands[Settings.model_fields["slack_spaces_command"].default]["usage_hint"]
    )
    assert "usergroups:read" in manifest["oauth_config"]["scopes"]["bot"]
