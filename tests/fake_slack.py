"""A local Slack for tests: the Web API over HTTP, a Socket Mode websocket, and signed requests to a bot.

`FakeSlack` speaks Slack's wire protocol (form or JSON requests, `{"ok": ...}` answers, 429 with
Retry-After, `apps.connections.open` handing out a ws:// URL, envelopes acknowledged by id) and
records every call, so tests assert what the real bot sent. `SlackSender` signs events, slash
commands and interactions exactly as Slack does (v0 HMAC-SHA256 over `v0:timestamp:body`).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

TEAM_ID = "T0TEAM"
BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"
ADMIN_USER_ID = "U0ADMIN"
MEMBER_USER_ID = "U0MEMBER"
CHANNEL_ID = "C0CHAN"


@dataclass
class Call:
    """One Web API call as the fake received it."""

    method: str
    args: dict[str, Any]
    token: str | None
    at: float = field(default_factory=time.monotonic)
    result: dict[str, Any] = field(default_factory=dict)


class FakeSlack:
    """The Slack Web API and Socket Mode endpoint on 127.0.0.1, recording calls."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.refuse: dict[str, str] = {}  # method -> Slack error code returned with ok=false
        self.rate_limit_once: set[str] = set()  # methods answered 429 (Retry-After: 0) once
        self.rate_limited: list[str] = []
        self.users: dict[str, dict[str, Any]] = {
            ADMIN_USER_ID: {"id": ADMIN_USER_ID, "name": "ada", "is_admin": True, "is_owner": False},
            MEMBER_USER_ID: {"id": MEMBER_USER_ID, "name": "mel", "is_admin": False, "is_owner": False},
        }
        self.usergroups: dict[str, list[str]] = {}  # user group id (S...) -> member user ids
        self.responses: list[tuple[str, dict[str, Any], float]] = []  # response_url posts
        self.socket_acks: list[dict[str, Any]] = []
        self._socket: web.WebSocketResponse | None = None
        self._socket_ready = asyncio.Event()
        self._changed = asyncio.Event()
        self._ts = 1_700_000_000.0
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- Lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/response/{name}", self._response_url)
        app.router.add_get("/socket", self._websocket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self, name: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/response/{name or uuid.uuid4().hex}"

    # --- Queries -------------------------------------------------------------------------------
    def calls_to(self, *methods: str) -> list[Call]:
        return [call for call in self.calls if call.method in methods]

    def thread_calls(self, thread_ts: str) -> list[Call]:
        """Calls that write into a thread: posts and streams in it, and updates of those messages."""
        posted = {thread_ts}
        found = []
        for call in self.calls:
            if call.args.get("thread_ts") == thread_ts or call.args.get("ts") in posted:
                found.append(call)
                if call.result.get("ts"):
                    posted.add(str(call.result["ts"]))
        return found

    def ephemerals(self, user: str) -> list[Call]:
        """The `chat.postEphemeral` calls that showed a message to `user`."""
        return [call for call in self.calls_to("chat.postEphemeral") if call.args.get("user") == user]

    def streams(self, thread_ts: str) -> list[list[Call]]:
        """The streamed messages in a thread, each as its startStream/appendStream/stopStream calls."""
        streams: dict[str, list[Call]] = {}
        for call in self.calls_to("chat.startStream", "chat.appendStream", "chat.stopStream"):
            if (
                call.method == "chat.startStream"
                and call.args.get("thread_ts") == thread_ts
                and call.result.get("ok")
            ):
                streams[str(call.result["ts"])] = [call]
            elif str(call.args.get("ts")) in streams:
                streams[str(call.args["ts"])].append(call)
        return list(streams.values())

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 20.0) -> Any:  # noqa: ASYNC109
        """Wait until `predicate()` is truthy (re-checked after every call); its value is returned."""
        deadline = time.monotonic() + timeout
        while not (value := predicate()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                methods = [c.method for c in self.calls]
                raise AssertionError(f"timed out after {timeout}s; calls so far: {methods}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))
            except TimeoutError:
                pass
        return value

    # --- Web API -------------------------------------------------------------------------------
    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            args.update(await request.json())
        elif request.can_read_body:
            args.update(dict(await request.post()))
        for key in ("blocks", "chunks", "loading_messages"):
            if isinstance(args.get(key), str):
                args[key] = json.loads(args[key])
        token = request.headers.get("Authorization", "").removeprefix("Bearer ") or args.get("token")
        if method in self.rate_limit_once:
            self.rate_limit_once.discard(method)
            self.rate_limited.append(method)
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "0"}
            )
        call = Call(method, args, token)
        self.calls.append(call)
        self._changed.set()
        if method in self.refuse:
            call.result = {"ok": False, "error": self.refuse[method]}
        else:
            call.result = {"ok": True, **self._result(method, args)}
        return web.json_response(call.result)

    def _next_ts(self) -> str:
        self._ts += 1
        return f"{self._ts:.6f}"

    def _result(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {
                "url": "https://fake.slack/",
                "team": "Fake",
                "user": "docsbot",
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
                "is_enterprise_install": False,
            }
        if method in ("chat.postMessage", "chat.startStream"):
            return {"channel": args.get("channel"), "ts": self._next_ts()}
        if method == "chat.postEphemeral":
            return {"message_ts": self._next_ts()}
        if method == "usergroups.users.list":
            members = self.usergroups.get(str(args.get("usergroup")))
            return {"users": members} if members is not None else {"ok": False, "error": "no_such_subteam"}
        if method in ("chat.update", "chat.appendStream", "chat.stopStream"):
            return {"channel": args.get("channel"), "ts": args.get("ts")}
        if method == "users.info":
            user = self.users.get(str(args.get("user")))
            return {"user": user} if user else {"ok": False, "error": "user_not_found"}
        if method == "apps.connections.open":
            return {"url": f"ws://127.0.0.1:{self.port}/socket"}
        return {}

    async def _response_url(self, request: web.Request) -> web.Response:
        self.responses.append((request.match_info["name"], await request.json(), time.monotonic()))
        self._changed.set()
        return web.Response(text="ok")

    # --- Socket Mode ------------------------------------------------------------------------------
    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._socket = socket
        await socket.send_json(
            {"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0APP"}}
        )
        self._socket_ready.set()
        async for message in socket:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.socket_acks.append(json.loads(message.data))
                self._changed.set()
        return socket

    async def send_envelope(self, kind: str, payload: dict[str, Any]) -> str:
        """Push an envelope (`events_api`, `slash_commands`, `interactive`) to the connected bot."""
        await asyncio.wait_for(self._socket_ready.wait(), 10.0)
        assert self._socket is not None
        envelope_id = uuid.uuid4().hex
        await self._socket.send_json(
            {
                "envelope_id": envelope_id,
                "type": kind,
                "payload": payload,
                "accepts_response_payload": kind != "events_api",
                "retry_attempt": 0,
            }
        )
        return envelope_id


def event_body(event: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    """An Events API `event_callback` body as Slack sends it."""
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM_ID,
        "api_app_id": "A0APP",
        "event": event,
        "type": "event_callback",
        "event_id": event_id or "Ev" + uuid.uuid4().hex[:10].upper(),
        "event_time": int(time.time()),
        "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
    }


class SlackSender:
    """Sends signed HTTP requests to a bot's `/slack/events`, as Slack would."""

    def __init__(self, url: str, signing_secret: str) -> None:
        self.url = url
        self.signing_secret = signing_secret
        self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        await self._session.close()

    async def post(
        self,
        body: str,
        content_type: str,
        *,
        retry_num: int | None = None,
        timestamp: int | None = None,
        secret: str | None = None,
    ) -> tuple[int, str]:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        signature = SignatureVerifier(secret or self.signing_secret).generate_signature(
            timestamp=ts, body=body
        )
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": str(signature),
        }
        if retry_num is not None:
            headers |= {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"}
        async with self._session.post(self.url, data=body.encode(), headers=headers) as response:
            return response.status, await response.text()

    async def event(self, body: dict[str, Any], **kwargs: Any) -> tuple[int, str]:
        return await self.post(json.dumps(body), "application/json", **kwargs)

    async def command(
        self, command: str, text: str, *, user_id: str, response_url: str, channel: str = CHANNEL_ID
    ) -> tuple[int, str]:
        form = {
            "token": "legacy",
            "team_id": TEAM_ID,
            "team_domain": "fake",
            "channel_id": channel,
            "channel_name": "general",
            "user_id": user_id,
            "user_name": user_id.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A0APP",
            "response_url": response_url,
            "trigger_id": "1.2.3",
        }
        return await self.post(urlencode(form), "application/x-www-form-urlencoded")

    async def interaction(self, payload: dict[str, Any]) -> tuple[int, str]:
        return await self.post(
            urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded"
        )


def button_click(
    action_id: str,
    value: str,
    *,
    user_id: str,
    response_url: str,
    channel: str,
    block_id: str = "answer_feedback",
    thread_ts: str | None = None,
) -> dict[str, Any]:
    """A `block_actions` payload for a click on one of our buttons."""
    container: dict[str, Any] = {
        "type": "message",
        "channel_id": channel,
        "message_ts": "1.0",
        "is_ephemeral": False,
    }
    if thread_ts is not None:
        container["thread_ts"] = thread_ts
    return {
        "type": "block_actions",
        "team": {"id": TEAM_ID, "domain": "fake"},
        "user": {"id": user_id, "username": user_id.lower(), "team_id": TEAM_ID},
        "api_app_id": "A0APP",
        "token": "legacy",
        "container": container,
        "trigger_id": "1.2.3",
        "channel": {"id": channel, "name": "general"},
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": block_id,
                "value": value,
                "action_ts": str(time.time()),
            }
        ],
    }
