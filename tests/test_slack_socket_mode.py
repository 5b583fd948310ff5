"""Socket Mode: the bot opens a websocket via `apps.connections.open`, acks envelopes and answers."""

from __future__ import annotations

import asyncio

from fake_slack import ADMIN_USER_ID, BOT_USER_ID, MEMBER_USER_ID, TEAM_ID, event_body
from slack_harness import APP_TOKEN, ScriptedAsk, indexer_fixture, running_bot, stream_text  # noqa: F401 (fixtures)


async def test_socket_mode_receives_acks_and_answers(make_plain_settings, indexer) -> None:
    chat = ScriptedAsk()
    async with running_bot(
        make_plain_settings, chat, indexer, slack_app_token=APP_TOKEN, slack_signing_secret=None
    ) as h:
        connection = asyncio.create_task(h.bot.start_socket_mode())
        [opened] = await h.fake.wait_for(lambda: h.fake.calls_to("apps.connections.open"))
        assert opened.token == APP_TOKEN  # the app-level token, not the bot token

        event = {
            "type": "app_mention",
            "user": MEMBER_USER_ID,
            "text": f"<@{BOT_USER_ID}> what is Socket Mode?",
            "ts": "1500.1",
            "channel": "C0CHAN",
            "event_ts": "1500.1",
        }
        envelope_id = await h.fake.send_envelope("events_api", event_body(event))
        await h.fake.wait_for(
            lambda: any(ack.get("envelope_id") == envelope_id for ack in h.fake.socket_acks)
        )
        await h.fake.wait_for(
            lambda: [s for s in h.fake.streams("1500.1") if s[-1].method == "chat.stopStream"]
        )
        assert chat.asks == [(f"slack:{TEAM_ID}:C0CHAN:1500.1", "what is Socket Mode?", MEMBER_USER_ID)]
        assert stream_text(h.fake.streams("1500.1")[0]).startswith("You asked: **what is Socket Mode?**")

        # Slash commands travel the same socket; the answer rides in the envelope's ack.
        command = {
            "command": "/reindex",
            "text": "help",
            "user_id": ADMIN_USER_ID,
            "team_id": TEAM_ID,
            "channel_id": "C0CHAN",
            "response_url": h.fake.response_url(),
            "trigger_id": "1.2.3",
        }
        command_id = await h.fake.send_envelope("slash_commands", command)
        [ack] = await h.fake.wait_for(
            lambda: [a for a in h.fake.socket_acks if a.get("envelope_id") == command_id]
        )
        assert "/reindex full" in ack["payload"]["text"]

        # Without a signing secret, HTTP events are refused: Socket Mode only.
        assert (await h.sender.event(event_body({**event, "ts": "1600.1"})))[0] == 401

        await h.bot.close()
        await asyncio.wait_for(connection, 5)
        assert chat.asks[-1][1] == "what is Socket Mode?"
