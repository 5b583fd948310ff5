"""The Slack adapter over real HTTP: signed events into Bolt, Web API calls out to `FakeSlack`.

Answers come from `ScriptedAsk` (our own AskService contract), so these tests pin the adapter's
behaviour: threading, streaming, fallbacks, filtering, deduplication, limits, feedback.
"""

from __future__ import annotations

import asyncio
import time

from fake_slack import BOT_USER_ID, MEMBER_USER_ID, TEAM_ID, FakeSlack, button_click, event_body
from slack_harness import (  # noqa: F401 (fixtures)
    ScriptedAsk,
    answer_script,
    block_texts,
    indexer_fixture,
    running_bot,
    stream_text,
)

from services.chat.contract import AskEvent, AskFailed, Status
from services.slack.blocks import FEEDBACK_DOWN, FEEDBACK_UP, MESSAGE_BLOCK_LIMIT, SECTION_LIMIT

CHANNEL = "C0CHAN"


def mention(ts: str, text: str = "how do I install it?", **extra: str) -> dict[str, str]:
    return {
        "type": "app_mention",
        "user": MEMBER_USER_ID,
        "text": f"<@{BOT_USER_ID}> {text}",
        "ts": ts,
        "channel": CHANNEL,
        "event_ts": ts,
        **extra,
    }


def message(ts: str, text: str, **extra: str) -> dict[str, str]:
    return {
        "type": "message",
        "user": MEMBER_USER_ID,
        "text": text,
        "ts": ts,
        "channel": CHANNEL,
        "channel_type": "channel",
        "event_ts": ts,
        **extra,
    }


async def wait_answered(fake: FakeSlack, thread_ts: str, count: int = 1) -> None:
    await fake.wait_for(
        lambda: (
            sum(c.args.get("thread_ts") == thread_ts for c in fake.calls_to("chat.startStream")) >= count
            and len([s for s in fake.streams(thread_ts) if s[-1].method == "chat.stopStream"]) >= count
        )
    )


def words(text: str) -> str:
    """Text without whitespace and code fences: what must survive splitting."""
    return "".join(text.replace("```", "").split())


async def settle(seconds: float = 0.6) -> None:
    """Give the bot time to (wrongly) act on an event it should ignore."""
    await asyncio.sleep(seconds)


async def test_mention_gets_a_threaded_streamed_answer_with_sources(make_plain_settings, indexer) -> None:
    chat = ScriptedAsk()
    async with running_bot(make_plain_settings, chat, indexer) as h:
        sent = time.monotonic()
        status, _ = await h.sender.event(event_body(mention("100.1")))
        acked = time.monotonic() - sent
        assert status == 200
        await wait_answered(h.fake, "100.1")

        assert chat.asks == [(f"slack:{TEAM_ID}:{CHANNEL}:100.1", "how do I install it?", MEMBER_USER_ID)]
        working = h.fake.calls_to("assistant.threads.setStatus")[0]
        assert working.args["thread_ts"] == "100.1" and working.args["status"] == "is thinking…"
        [stream] = h.fake.streams("100.1")
        start, *_, stop = stream
        assert start.args["channel"] == CHANNEL and start.args["recipient_user_id"] == MEMBER_USER_ID
        assert start.args["recipient_team_id"] == TEAM_ID
        assert len(stream) >= 2 and start.at < stop.at
        assert stream_text(stream) == "You asked: **how do I install it?**. See [1] and [2]."
        footer = stop.args["blocks"]
        sources = "\n".join(block_texts(footer))
        assert "<https://docs.example.com/install?x=1&amp;y=2|Install guide>" in sources
        assert "Operations `/srv/docs/ops.md` · Backups &gt; Restore" in sources
        buttons = footer[-1]["elements"]
        assert [(b["action_id"], b["value"]) for b in buttons] == [
            (FEEDBACK_UP, "ans-1"),
            (FEEDBACK_DOWN, "ans-1"),
        ]
        first_text = start.at - sent
        print(f"\nack {acked * 1000:.0f} ms; event -> first streamed text {first_text * 1000:.0f} ms")
        assert acked < 3.0 and first_text < 3.0
        [own_measure] = await h.fake.wait_for(lambda: h.bot.first_text_seconds)
        assert own_measure < 3.0


async def test_followup_in_thread_without_mention_and_mention_copy_ignored(
    make_plain_settings, indexer
) -> None:
    chat = ScriptedAsk()
    async with running_bot(make_plain_settings, chat, indexer) as h:
        await h.sender.event(event_body(mention("200.1")))
        # The channel copy of the same mention must not be answered a second time.
        await h.sender.event(event_body(message("200.1", f"<@{BOT_USER_ID}> how do I install it?")))
        await wait_answered(h.fake, "200.1")
        await h.sender.event(event_body(message("200.5", "and on Windows?", thread_ts="200.1")))
        await wait_answered(h.fake, "200.1", count=2)
        # A thread the bot never answered in stays quiet.
        await h.sender.event(event_body(message("300.5", "unrelated chatter", thread_ts="300.1")))
        await h.sender.event(event_body(message("400.1", "a top-level message without a mention")))
        await settle()
        key = f"slack:{TEAM_ID}:{CHANNEL}:200.1"
        assert chat.asks == [
            (key, "how do I install it?", MEMBER_USER_ID),
            (key, "and on Windows?", MEMBER_USER_ID),
        ]
        assert stream_text(h.fake.streams("200.1")[1]).startswith("You asked: **and on Windows?**")


async def test_direct_message_is_answered_in_its_thread(make_plain_settings, indexer) -> None:
    chat = ScriptedAsk()
    async with running_bot(make_plain_settings, chat, indexer) as h:
        dm = {**message("500.1", "where are the backups?"), "channel": "D0DM", "channel_type": "im"}
        await h.sender.event(event_body(dm))
        await wait_answered(h.fake, "500.1")
        assert chat.asks == [(f"slack:{TEAM_ID}:D0DM:500.1", "where are the backups?", MEMBER_USER_ID)]
        assert h.fake.streams("500.1")[0][0].args["channel"] == "D0DM"


async def test_own_bot_edited_and_subtype_messages_are_ignored(make_plain_settings, indexer) -> None:
    chat = ScriptedAsk()
    async with running_bot(make_plain_settings, chat, indexer) as h:
        dm = {"channel": "D0DM", "channel_type": "im"}
        ignored = [
            {**message("600.1", "my own answer"), **dm, "user": BOT_USER_ID},
            {**message("600.2", "beep"), **dm, "subtype": "bot_message", "bot_id": "B0OTHER", "user": ""},
            {**message("600.3", "edited"), **dm, "subtype": "message_changed"},
            {**message("600.4", "joined"), **dm, "subtype": "channel_join"},
            {**mention("600.5"), "bot_id": "B0OTHER"},
        ]
        for event in ignored:
            assert (await h.sender.event(event_body(event)))[0] == 200
        await settle()
        assert chat.asks == []
        assert h.fake.calls_to("chat.startStream", "chat.postMessage") == []

    async with running_bot(make_plain_settings, chat, indexer, slack_answer_bots=True) as h:
        other_bot = {
            **message("700.1", "status report?"),
            **dm,
            "subtype": "bot_message",
            "bot_id": "B0OTHER",
        }
        await h.sender.event(event_body(other_bot))
        await wait_answered(h.fake, "700.1")
        assert [text for _, text, _ in chat.asks] == ["status report?"]


async def test_redelivered_event_is_answered_once(make_plain_settings, indexer) -> None:
    chat = ScriptedAsk(delay=0.05)
    async with running_bot(make_plain_settings, chat, indexer) as h:
        body = event_body(mention("800.1"))
        statuses = await asyncio.gather(*(h.sender.event(body, retry_num=n or None) for n in range(3)))
        assert [status for status, _ in statuses] == [200, 200, 200]
        await wait_answered(h.fake, "800.1")
        await settle()
        assert len(chat.asks) == 1
        assert len(h.fake.streams("800.1")) == 1


async def test_bad_or_stale_signature_is_rejected(make_plain_settings, indexer) -> None:
    chat = ScriptedAsk()
    async with running_bot(make_plain_settings, chat, indexer) as h:
        body = event_body(mention("900.1"))
        assert (await h.sender.event(body, secret="not-the-secret"))[0] == 401
        assert (await h.sender.event(body, timestamp=int(time.time()) - 600))[0] == 401
        await settle()
        assert chat.asks == [] and h.fake.calls_to("chat.startStream", "chat.postMessage") == []


async def test_fallback_when_streaming_and_status_are_refused(make_plain_settings, indexer) -> None:
    chat = ScriptedAsk(delay=0.2)  # slow enough for at least one throttled chat.update
    async with running_bot(make_plain_settings, chat, indexer) as h:
        h.fake.refuse |= {
            "chat.startStream": "feature_not_enabled",
            "assistant.threads.setStatus": "not_allowed",
        }
        h.fake.rate_limit_once.add("chat.update")  # the SDK's retry handler must absorb a 429
        text = "Step one. " * 40
        chat.script = lambda key, question: answer_script(text)
        await h.sender.event(event_body(mention("1000.1")))
        await h.fake.wait_for(
            lambda: any(
                "actions" in [b["type"] for b in c.args.get("blocks", [])]
                for c in h.fake.calls_to("chat.update")
            )
        )
        [reaction] = h.fake.calls_to("reactions.add")
        assert reaction.args == {"channel": CHANNEL, "timestamp": "1000.1", "name": "eyes"}
        await h.fake.wait_for(lambda: h.fake.calls_to("reactions.remove"))  # cleared when done
        [post] = h.fake.calls_to("chat.postMessage")
        updates = h.fake.calls_to("chat.update")
        assert post.args["thread_ts"] == "1000.1" and len(updates) >= 2
        assert all(u.args["ts"] == post.result["ts"] for u in updates)
        assert h.fake.rate_limited == ["chat.update"]
        final = updates[-1].args["blocks"]
        assert "".join(block_texts(final[:1])) == text.strip()
        assert any("Install guide" in t for t in block_texts(final))


async def test_long_answer_is_split_within_slack_limits(make_plain_settings, indexer) -> None:
    paragraph = "A *long* paragraph with words & symbols < > that goes on. " * 30
    code = "```\n" + "\n".join(f"line {i} = value" for i in range(400)) + "\n```\n"
    text = "\n\n".join([paragraph] * 60) + "\n\n" + code  # ~115,000 characters
    chat = ScriptedAsk(delay=0, script=lambda key, question: answer_script(text))
    async with running_bot(make_plain_settings, chat, indexer) as h:
        await h.sender.event(event_body(mention("1100.1")))
        await wait_answered(h.fake, "1100.1", count=2)
        await h.fake.wait_for(lambda: h.fake.streams("1100.1")[-1][-1].args.get("blocks"))
        streams = h.fake.streams("1100.1")
        assert len(streams) >= 10
        assert all(len(stream_text(s)) <= 12000 for s in streams)
        assert "".join(stream_text(s) for s in streams) == text  # nothing lost, nothing repeated

        h.fake.refuse["chat.startStream"] = "feature_not_enabled"
        await h.sender.event(event_body(mention("1200.1")))
        await h.fake.wait_for(
            lambda: any(
                c.args.get("blocks", [{}])[-1].get("type") == "actions"
                for c in h.fake.calls_to("chat.update", "chat.postMessage")
            )
        )
        messages = [
            c for c in h.fake.thread_calls("1200.1") if c.method in ("chat.postMessage", "chat.update")
        ]
        for call in messages:
            assert len(call.args["blocks"]) <= MESSAGE_BLOCK_LIMIT
            assert all(len(t) <= SECTION_LIMIT for t in block_texts(call.args["blocks"]))
        final = next(c for c in reversed(messages) if c.method == "chat.update")
        extra = [c for c in messages if c.method == "chat.postMessage" and c.at > final.at]
        assert len(extra) >= 1  # 115k characters need more than one 50-block message
        shown = "".join("".join(block_texts(c.args["blocks"])) for c in [final, *extra])
        assert words("line 399 = value") in words(shown)
        assert words(shown).count(words("that goes on.")) == 60 * 30


async def test_every_failure_ends_in_a_message_in_the_thread(make_plain_settings, indexer) -> None:
    scripts: dict[str, list[AskEvent] | Exception] = {
        "model down": [Status("Searching…"), AskFailed("The language model did not answer (HTTP 502).")],
        "crash": RuntimeError("boom"),
        "silent": [Status("Searching…")],
    }
    chat = ScriptedAsk(script=lambda key, question: scripts[question])
    async with running_bot(make_plain_settings, chat, indexer) as h:
        for n, question in enumerate(scripts):
            await h.sender.event(event_body(mention(f"13{n}0.1", question)))
        posts = await h.fake.wait_for(
            lambda: len(h.fake.calls_to("chat.postMessage")) >= 3 and h.fake.calls_to("chat.postMessage")
        )
        by_thread = {c.args["thread_ts"]: c.args["text"] for c in posts}
        assert "The language model did not answer (HTTP 502)." in by_thread["1300.1"]
        assert "RuntimeError: boom" in by_thread["1310.1"]
        assert "ended without a result" in by_thread["1320.1"]
        assert all(t.startswith(":warning: Sorry, I could not answer") for t in by_thread.values())


async def test_feedback_click_is_stored_and_acknowledged(make_plain_settings, indexer) -> None:
    chat = ScriptedAsk()
    async with running_bot(make_plain_settings, chat, indexer) as h:
        await h.sender.event(event_body(mention("1400.1")))
        await wait_answered(h.fake, "1400.1")
        button = h.fake.streams("1400.1")[0][-1].args["blocks"][-1]["elements"][1]
        url = h.fake.response_url("click")
        click = button_click(
            button["action_id"], button["value"], user_id=MEMBER_USER_ID, response_url=url, channel=CHANNEL
        )
        status, _ = await h.sender.interaction(click)
        assert status == 200
        await h.fake.wait_for(lambda: h.fake.responses)
        assert chat.feedback == [("ans-1", False, MEMBER_USER_ID)]
        [(name, body, _)] = h.fake.responses
        assert name == "click" and body["response_type"] == "ephemeral" and "Thanks" in body["text"]
