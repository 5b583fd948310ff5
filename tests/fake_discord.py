"""A local Discord for the transport smoke test: gateway websocket + REST over real HTTP (aiohttp).

It speaks the wire protocol discord.py expects (HELLO → IDENTIFY → READY → GUILD_CREATE, JSON REST
with a bare `application/json` content type), for one guild with one text channel (more with
`add_guild`). Every REST call is recorded with its arrival time so a test can assert on what the bot
sent, and how fast. Only the routes the bot uses are served; anything else answers 404 and is
recorded, so a gap shows.

Sharding works as Discord's does: each gateway connection IDENTIFYs with `shard: [id, count]`
(none means [0, 1]), and gets READY, GUILD_CREATE and every later event only for the guilds with
`(guild_id >> 22) % count == id`; events outside a guild (DMs) go to shard 0. Two connections on one
shard both get its events, as on Discord. GET /gateway/bot recommends `recommended_shards`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

OP_DISPATCH, OP_HEARTBEAT, OP_IDENTIFY, OP_HELLO, OP_HEARTBEAT_ACK = 0, 1, 2, 10, 11
CLOSE_INVALID_SHARD = 4010
TIMESTAMP = "2026-01-01T00:00:00.000000+00:00"
# VIEW_CHANNEL, SEND_MESSAGES, SEND_MESSAGES_IN_THREADS, CREATE_PUBLIC_THREADS, READ_MESSAGE_HISTORY, ...
EVERYONE_PERMISSIONS = str((1 << 10) | (1 << 11) | (1 << 38) | (1 << 35) | (1 << 16) | (1 << 14) | (1 << 31))


@dataclass
class RecordedRequest:
    method: str
    path: str  # without the /api/v10 prefix
    query: dict[str, str]
    body: Any
    at: float  # time.perf_counter() on arrival


@dataclass
class GatewaySession:
    """One identified gateway connection and the shard it holds."""

    socket: web.WebSocketResponse
    shard_id: int
    shard_count: int

    def holds(self, guild_id: int | None) -> bool:
        """Whether Discord sends this connection the events of `guild_id` (None: not in a guild)."""
        if guild_id is None:
            return self.shard_id == 0
        return shard_of(guild_id, self.shard_count) == self.shard_id


def shard_of(guild_id: int, shard_count: int) -> int:
    """The shard Discord delivers a guild's events on."""
    return (guild_id >> 22) % shard_count


@dataclass
class FakeDiscord:
    """One guild (`guild_id`) with one text channel (`channel_id`), a bot user (with its managed
    role `bot_role_id`) and a human user; `add_guild` adds guilds with a channel each."""

    application_id: int = 1100000000000000001
    bot_id: int = 1100000000000000002
    guild_id: int = 1100000000000000003
    channel_id: int = 1100000000000000004
    human_id: int = 1100000000000000005
    bot_role_id: int = 1100000000000000006  # the role Discord creates for the bot on invite
    requests: list[RecordedRequest] = field(default_factory=list)
    identify: dict[str, Any] | None = None
    gateway_events: list[str] = field(default_factory=list)
    unrouted: list[str] = field(default_factory=list)  # requests this fake could not serve
    recommended_shards: int = 1  # what GET /gateway/bot tells a bot without a shard count
    identifies: list[dict[str, Any]] = field(default_factory=list)  # every IDENTIFY, in order
    sessions: list[GatewaySession] = field(default_factory=list)  # the identified connections

    def __post_init__(self) -> None:
        self._ids = itertools.count(1200000000000000000)
        self._sequence = itertools.count(1)
        self.channels: dict[int, int] = {self.guild_id: self.channel_id}  # guild id → its text channel
        self._runner: web.AppRunner | None = None
        self._request_arrived = asyncio.Event()
        self.port = 0

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        for session in self.sessions:
            if not session.socket.closed:
                await session.socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    # --- payloads --------------------------------------------------------------------------
    def user(self, user_id: int, name: str, *, bot: bool = False) -> dict[str, Any]:
        return {
            "id": str(user_id),
            "username": name,
            "discriminator": "0",
            "global_name": name,
            "avatar": None,
            "bot": bot,
            "public_flags": 0,
        }

    def member(self, user_id: int, name: str, *, bot: bool = False) -> dict[str, Any]:
        return {
            "user": self.user(user_id, name, bot=bot),
            "roles": [],
            "joined_at": TIMESTAMP,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "nick": None,
        }

    def add_guild(self, guild_id: int, channel_id: int) -> None:
        """Another guild the bot is in, with one text channel, sent to the shard that holds it."""
        self.channels[guild_id] = channel_id

    def guild_payload(self, guild_id: int | None = None) -> dict[str, Any]:
        guild_id = self.guild_id if guild_id is None else guild_id
        everyone = {
            "id": str(guild_id),
            "name": "@everyone",
            "permissions": EVERYONE_PERMISSIONS,
            "position": 0,
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }
        bot_role = {
            **everyone,
            "id": str(self.bot_role_id),
            "name": "docsbot",
            "position": 1,
            "managed": True,
            "tags": {"bot_id": str(self.bot_id)},
        }
        channel = {
            "id": str(self.channels[guild_id]),
            "type": 0,
            "guild_id": str(guild_id),
            "name": "general",
            "position": 0,
            "permission_overwrites": [],
            "nsfw": False,
            "topic": None,
            "rate_limit_per_user": 0,
            "parent_id": None,
            "last_message_id": None,
        }
        return {
            "id": str(guild_id),
            "name": "Smoke Test",
            "owner_id": str(self.human_id),
            "roles": [everyone, bot_role],
            "channels": [channel],
            "threads": [],
            "emojis": [],
            "stickers": [],
            "members": [
                {**self.member(self.bot_id, "docsbot", bot=True), "roles": [str(self.bot_role_id)]},
                self.member(self.human_id, "alice"),
            ],
            "member_count": 2,
            "features": [],
            "voice_states": [],
            "presences": [],
            "large": False,
            "unavailable": False,
            "joined_at": TIMESTAMP,
            "verification_level": 0,
            "mfa_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "nsfw_level": 0,
            "afk_timeout": 300,
            "system_channel_flags": 0,
        }

    def message_payload(
        self, channel_id: int, author: dict[str, Any], content: str, **extra: Any
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": str(next(self._ids)),
            "channel_id": str(channel_id),
            "author": author,
            "content": content,
            "timestamp": TIMESTAMP,
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "pinned": False,
            "type": 0,
            "flags": 0,
            "components": [],
        }
        payload.update(extra)
        return payload

    def mention_payload(self, guild_id: int, question: str) -> dict[str, Any]:
        """A MESSAGE_CREATE from the human in `guild_id`'s channel, mentioning the bot."""
        member = self.member(self.human_id, "alice")
        author = member.pop("user")
        return self.message_payload(
            self.channels[guild_id],
            author,
            f"<@{self.bot_id}> {question}",
            guild_id=str(guild_id),
            member=member,
            mentions=[self.user(self.bot_id, "docsbot", bot=True)],
        )

    def component_click_payload(
        self, message: dict[str, Any], custom_id: str, *, user_id: int, name: str
    ) -> dict[str, Any]:
        """An INTERACTION_CREATE of type 3 (MESSAGE_COMPONENT): `user_id` clicked a button."""
        return {
            "id": str(next(self._ids)),
            "application_id": str(self.application_id),
            "type": 3,
            "token": f"interaction-token-{custom_id}",
            "version": 1,
            "guild_id": str(self.guild_id),
            "channel_id": message["channel_id"],
            "member": {**self.member(user_id, name), "permissions": EVERYONE_PERMISSIONS},
            "message": message,
            "data": {"custom_id": custom_id, "component_type": 2},
            "app_permissions": EVERYONE_PERMISSIONS,
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(self.guild_id)},
            "context": 0,
            "attachment_size_limit": 10485760,
        }

    # --- gateway ---------------------------------------------------------------------------
    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.send_str(json.dumps({"op": OP_HELLO, "d": {"heartbeat_interval": 41250}}))
        async for message in socket:
            if message.type != WSMsgType.TEXT:
                continue
            payload = json.loads(message.data)
            if payload["op"] == OP_HEARTBEAT:
                await socket.send_str(json.dumps({"op": OP_HEARTBEAT_ACK}))
            elif payload["op"] == OP_IDENTIFY:
                await self._identified(socket, payload["d"])
        self.sessions = [session for session in self.sessions if session.socket is not socket]
        return socket

    async def _identified(self, socket: web.WebSocketResponse, identify: dict[str, Any]) -> None:
        """READY and a GUILD_CREATE per guild, for the guilds on the shard this connection named."""
        self.identify = identify
        self.identifies.append(identify)
        shard_id, shard_count = identify.get("shard") or [0, 1]
        if not 0 <= shard_id < shard_count:
            await socket.close(code=CLOSE_INVALID_SHARD, message=b"Invalid shard.")
            return
        session = GatewaySession(socket, shard_id, shard_count)
        self.sessions.append(session)
        guilds = [guild_id for guild_id in self.channels if session.holds(guild_id)]
        ready = {
            "v": 10,
            "user": self.user(self.bot_id, "docsbot", bot=True),
            "session_id": f"smoke-{shard_id}-{len(self.identifies)}",
            "resume_gateway_url": self.gateway_url,
            "private_channels": [],
            "relationships": [],
            "guilds": [{"id": str(guild_id), "unavailable": True} for guild_id in guilds],
            "application": {"id": str(self.application_id), "flags": 0},
            "shard": [shard_id, shard_count],
        }
        await self._send(session, "READY", ready)
        for guild_id in guilds:
            await self._send(session, "GUILD_CREATE", self.guild_payload(guild_id))

    async def dispatch(self, event: str, data: dict[str, Any]) -> int:
        """Send one gateway event (op 0) to the connections holding its guild's shard (a message's
        `guild_id`); returns how many got it."""
        if not self.sessions:
            raise RuntimeError("the bot has not connected to the fake gateway")
        guild_id = int(data["guild_id"]) if data.get("guild_id") else None
        receivers = [session for session in self.sessions if session.holds(guild_id)]
        for session in receivers:
            await self._send(session, event, data)
        return len(receivers)

    async def _send(self, session: GatewaySession, event: str, data: dict[str, Any]) -> None:
        self.gateway_events.append(event)
        payload = {"op": OP_DISPATCH, "t": event, "s": next(self._sequence), "d": data}
        await session.socket.send_str(json.dumps(payload))

    # --- REST ------------------------------------------------------------------------------
    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        is_json = request.can_read_body and request.content_type == "application/json"
        body = await request.json() if is_json else None
        arrived = time.perf_counter()
        self.requests.append(RecordedRequest(request.method, path, dict(request.query), body, arrived))
        self._request_arrived.set()
        parts = path.strip("/").split("/")
        match request.method, parts:
            case "GET", ["users", "@me"]:
                return _json(self.user(self.bot_id, "docsbot", bot=True))
            case "GET", ["gateway", "bot"]:
                limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
                return _json(
                    {"url": self.gateway_url, "shards": self.recommended_shards, "session_start_limit": limit}
                )
            case "GET", ["oauth2", "applications", "@me"]:
                return _json(
                    {
                        "id": str(self.application_id),
                        "name": "docsbot",
                        "description": "",
                        "icon": None,
                        "bot_public": True,
                        "bot_require_code_grant": False,
                        "owner": self.user(self.human_id, "alice"),
                        "verify_key": "00",
                        "flags": 0,
                    }
                )
            case "PUT", ["applications", _, "commands"] | ["applications", _, "guilds", _, "commands"]:
                return _json([self._registered(command) for command in body or []])
            case "POST", ["channels", _, "typing"]:
                return web.Response(status=204)
            case "POST", ["channels", channel_id, "messages", message_id, "threads"]:
                return _json(self._thread(int(channel_id), int(message_id), (body or {}).get("name", "")))
            case "POST", ["channels", channel_id, "messages"]:
                bot = self.user(self.bot_id, "docsbot", bot=True)
                return _json(self.message_payload(int(channel_id), bot, (body or {}).get("content", "")))
            case "POST", ["interactions", interaction_id, _, "callback"]:
                ephemeral = bool(((body or {}).get("data") or {}).get("flags", 0) & 64)
                response = {"id": interaction_id, "type": 3, "response_message_ephemeral": ephemeral}
                return _json({"interaction": response})
            case "PATCH", ["channels", channel_id, "messages", message_id]:
                bot = self.user(self.bot_id, "docsbot", bot=True)
                edited = self.message_payload(int(channel_id), bot, (body or {}).get("content", ""))
                edited.update(id=message_id, edited_timestamp=TIMESTAMP)
                return _json(edited)
        self.unrouted.append(f"{request.method} {path}")
        error = {"message": f"fake_discord: no route for {request.method} {path}", "code": 0}
        return _json(error, status=404)

    def _registered(self, command: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": str(next(self._ids)),
            "application_id": str(self.application_id),
            "version": "1",
            "type": 1,
            "default_member_permissions": None,
            "dm_permission": True,
            "nsfw": False,
            "options": [],
            **command,
        }

    def _thread(self, channel_id: int, message_id: int, name: str) -> dict[str, Any]:
        guild_id = next(
            (guild for guild, channel in self.channels.items() if channel == channel_id), self.guild_id
        )
        return {
            "id": str(message_id),
            "type": 11,
            "guild_id": str(guild_id),
            "parent_id": str(channel_id),
            "owner_id": str(self.bot_id),
            "name": name,
            "last_message_id": None,
            "message_count": 0,
            "member_count": 1,
            "rate_limit_per_user": 0,
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": 1440,
                "archive_timestamp": TIMESTAMP,
                "locked": False,
            },
        }

    async def wait_for_request(
        self, method: str, path: str, *, prefix: bool = False, within: float = 10.0
    ) -> RecordedRequest:
        """The first recorded `method path` request (or path prefix), waiting for it to arrive."""
        async with asyncio.timeout(within):
            while True:
                for recorded in self.requests:
                    matches = recorded.path.startswith(path) if prefix else recorded.path == path
                    if recorded.method == method and matches:
                        return recorded
                self._request_arrived.clear()
                await self._request_arrived.wait()


def _json(data: Any, *, status: int = 200) -> web.Response:
    # discord.py parses a body as JSON only when the content type is exactly `application/json`.
    headers = {"Content-Type": "application/json"}
    return web.Response(body=json.dumps(data).encode(), status=status, headers=headers)
