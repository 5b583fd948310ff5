"""Bad input to the two HTTP endpoints gets a 4xx with a short JSON error, never a 500.

Each case is sent over a real socket to the real handlers (Bolt's app for `/slack/events`, the
chatkit server over SQLite for `/chatkit`); none of them reaches a model. A refusal is one log
line without a traceback, and a rejected Slack request's body is never logged.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from chatkit_support import TOKEN, add_message_request, chatkit_http
from slack_harness import SIGNING_SECRET, ScriptedAsk, indexer_fixture, running_bot  # noqa: F401 (fixtures)
from slack_sdk.signature import SignatureVerifier

from configs.config import Settings
from data.embeddings import Embedder
from data.vector_store import WeaviateVectorStore

MakeSettings = Callable[..., Settings]
SECRET_TEXT = "do-not-log-this-question"


@dataclass(frozen=True)
class Case:
    """One request: its body, its headers (over the valid defaults; None removes one), the answer."""

    name: str
    body: str | bytes
    status: int
    error: str  # a fragment of the JSON error's text
    headers: dict[str, str | None] = field(default_factory=dict)


def signed_headers(body: str | bytes) -> dict[str, str]:
    """The headers Slack signs a request with (v0 HMAC-SHA256 over `v0:timestamp:body`)."""
    ts = str(int(time.time()))
    signed = body.decode(errors="replace") if isinstance(body, bytes) else body
    signature = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=ts, body=signed)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": str(signature)}


def merged(defaults: dict[str, str], overrides: dict[str, str | None]) -> dict[str, str]:
    headers = {**defaults}
    for name, value in overrides.items():
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return headers


def check_refusal(case: Case, status: int, text: str, caplog: pytest.LogCaptureFixture) -> None:
    assert status == case.status, (case.name, status, text)
    error = json.loads(text)["error"]
    assert case.error in error and len(error) < 300, error
    assert not [r for r in caplog.records if r.exc_info], caplog.text
    assert "Traceback" not in caplog.text
    refusals = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert len(refusals) == 1, [r.getMessage() for r in refusals]
    assert SECRET_TEXT not in caplog.text


EVENT = json.dumps({"type": "event_callback", "event": {"type": "app_mention", "text": SECRET_TEXT}})
FORM = "application/x-www-form-urlencoded"

SLACK_CASES = [
    Case("no signature", EVENT, 401, "signature", {"X-Slack-Signature": None}),
    Case("wrong signature", EVENT, 401, "signature", {"X-Slack-Signature": "v0=00"}),
    Case("non-numeric timestamp", EVENT, 401, "signature", {"X-Slack-Request-Timestamp": "soon"}),
    Case("a non-ASCII signature", EVENT, 401, "signature", {"X-Slack-Signature": "v0=\u00e9"}),
    Case("a body that isn't UTF-8", b'{"type": "\xff"}', 401, "signature"),
    Case("malformed JSON", "{not json", 400, "JSON"),
    Case("a JSON list", "[]", 400, "JSON object"),
    Case("JSON null", "null", 400, "JSON object"),
    Case("a JSON string", '"hello"', 400, "JSON object"),
    Case("event: null", '{"type": "event_callback", "event": null}', 400, "event"),
    Case("event: a string", '{"type": "event_callback", "event": "x"}', 400, "event"),
    Case("authorizations: a number", '{"type": "event_callback", "authorizations": 5}', 400, "malformed"),
    Case("form payload not JSON", "payload=%7Bnot", 400, "payload", {"Content-Type": FORM}),
    Case("form payload a list", "payload=%5B%5D", 400, "payload", {"Content-Type": FORM}),
]


@pytest.mark.parametrize("case", SLACK_CASES, ids=lambda case: case.name)
async def test_slack_events_bad_requests(
    case: Case, make_plain_settings: MakeSettings, indexer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    chat = ScriptedAsk()
    async with running_bot(make_plain_settings, chat, indexer) as h:
        headers = merged({"Content-Type": "application/json", **signed_headers(case.body)}, case.headers)
        caplog.set_level(logging.INFO)
        caplog.clear()
        async with aiohttp.ClientSession() as http:
            body = case.body if isinstance(case.body, bytes) else case.body.encode()
            async with http.post(h.sender.url, data=body, headers=headers) as response:
                status, text = response.status, await response.text()
        check_refusal(case, status, text, caplog)
        assert chat.asks == []


def chatkit_body(request: dict[str, Any]) -> str:
    return json.dumps(request)


UNKNOWN = "thr_0123abcd"
CHATKIT_DEFAULTS = {
    "Authorization": f"Bearer {TOKEN}",
    "X-User-Id": "alice",
    "Content-Type": "application/json",
}
LIST = chatkit_body({"type": "threads.list", "params": {}})

CHATKIT_CASES = [
    Case("no token", LIST, 401, "bearer token", {"Authorization": None}),
    Case("wrong token", LIST, 401, "bearer token", {"Authorization": "Bearer not-the-token"}),
    Case("token without the Bearer scheme", LIST, 401, "bearer token", {"Authorization": TOKEN}),
    Case("another scheme", LIST, 401, "bearer token", {"Authorization": f"Basic {TOKEN}"}),
    Case("no user", LIST, 400, "X-User-Id", {"X-User-Id": None}),
    Case("blank user", LIST, 400, "X-User-Id", {"X-User-Id": "  "}),
    Case("text/plain body", LIST, 415, "application/json", {"Content-Type": "text/plain"}),
    Case("malformed JSON", "{not json", 400, "invalid ChatKit request"),
    Case("unknown request type", '{"type": "threads.explode", "params": {}}', 400, "invalid ChatKit request"),
    Case(
        "get an unknown thread",
        chatkit_body({"type": "threads.get_by_id", "params": {"thread_id": UNKNOWN}}),
        404,
        UNKNOWN,
    ),
    Case("add to an unknown thread", chatkit_body(add_message_request(UNKNOWN, SECRET_TEXT)), 404, UNKNOWN),
    Case(
        "items of an unknown thread",
        chatkit_body({"type": "items.list", "params": {"thread_id": UNKNOWN}}),
        404,
        UNKNOWN,
    ),
    Case(
        "delete an unknown thread",
        chatkit_body({"type": "threads.delete", "params": {"thread_id": UNKNOWN}}),
        404,
        UNKNOWN,
    ),
    Case(
        "feedback in an unknown thread",
        chatkit_body(
            {
                "type": "items.feedback",
                "params": {"thread_id": UNKNOWN, "item_ids": ["m"], "kind": "positive"},
            }
        ),
        404,
        UNKNOWN,
    ),
    Case(
        "list after an unknown thread",
        chatkit_body({"type": "threads.list", "params": {"after": UNKNOWN}}),
        404,
        UNKNOWN,
    ),
    Case(
        "attachments (not supported)",
        chatkit_body(
            {
                "type": "attachments.create",
                "params": {"name": "a.pdf", "size": 3, "mime_type": "application/pdf"},
            }
        ),
        400,
        "not supported",
    ),
    Case(
        "a message with attachments",
        chatkit_body(
            {
                "type": "threads.create",
                "params": {
                    "input": {
                        "content": [{"type": "input_text", "text": SECRET_TEXT}],
                        "attachments": ["atc_1"],
                        "inference_options": {},
                    }
                },
            }
        ),
        400,
        "attachments",
    ),
]


@pytest.mark.parametrize("case", CHATKIT_CASES, ids=lambda case: case.name)
async def test_chatkit_bad_requests(
    case: Case, plain_settings: Settings, embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    async with chatkit_http(plain_settings, WeaviateVectorStore(plain_settings), embedder) as client:
        caplog.set_level(logging.INFO)
        caplog.clear()
        headers = merged(CHATKIT_DEFAULTS, case.headers)
        async with client.http.post(
            f"{client.url}/chatkit", data=case.body.encode(), headers=headers
        ) as response:
            status, text = response.status, await response.text()
            assert response.content_type == "application/json"
            if status == 401:
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
        check_refusal(case, status, text, caplog)


async def test_chatkit_is_off_without_a_token(plain_settings: Settings, embedder: Embedder) -> None:
    """No CHATKIT_API_TOKEN: nothing is served, whatever the request, and the answer says what to set."""
    async with chatkit_http(
        plain_settings, WeaviateVectorStore(plain_settings), embedder, token=None
    ) as client:
        for headers in ({}, {"X-User-Id": "alice"}, {"Authorization": "Bearer anything"}):
            async with client.http.post(f"{client.url}/chatkit", data=LIST, headers=headers) as response:
                assert response.status == 403
                assert "CHATKIT_API_TOKEN" in (await response.json())["error"]
