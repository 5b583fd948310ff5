"""A local HTTP server speaking the OpenAI wire protocol, for tests of the LLM path.

It serves `POST /v1/chat/completions` and `POST /v1/responses` (streamed as SSE or as one JSON
body), validates requests the way real servers do (400 with an OpenAI error body for bad
messages) and replies from a script. Every request is recorded.

    async with FakeOpenAIServer([ToolCallReply("search_docs", {"query": "x"}), TextReply("A [1]")]) as llm:
        settings = make_settings(openai_base_url=llm.base_url, openai_api_key="test-key")

With `responder=docs_responder` it answers any number of turns: a `search_docs` call for each new
question, then a text citing [1] once the tool output is in the request.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import web


@dataclass(frozen=True)
class TextReply:
    text: str


@dataclass(frozen=True)
class ToolCallReply:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ErrorReply:
    status: int
    message: str


Reply = TextReply | ToolCallReply | ErrorReply


@dataclass(frozen=True)
class RecordedRequest:
    path: str  # "/v1/chat/completions" or "/v1/responses"
    body: dict[str, Any]
    authorized: bool  # an `Authorization: Bearer …` header was sent (its value is not kept)

    @property
    def api(self) -> str:
        return "responses" if self.path.endswith("/responses") else "chat_completions"

    def tool_outputs(self) -> list[str]:
        """Tool results the client sent back, in order (either API)."""
        if self.api == "responses":
            items = self.body.get("input") or []
            return [
                str(i.get("output"))
                for i in items
                if isinstance(i, dict) and i.get("type") == "function_call_output"
            ]
        return [_text(m.get("content")) for m in self.body.get("messages", []) if m.get("role") == "tool"]

    def user_texts(self) -> list[str]:
        """Texts of the user messages, in order (either API)."""
        if self.api == "responses":
            raw = self.body.get("input")
            items = [{"role": "user", "content": raw}] if isinstance(raw, str) else raw or []
        else:
            items = self.body.get("messages", [])
        return [_text(i.get("content")) for i in items if isinstance(i, dict) and i.get("role") == "user"]

    def last_is_tool_output(self) -> bool:
        if self.api == "responses":
            items = self.body.get("input") or []
            return bool(items) and isinstance(items, list) and items[-1].get("type") == "function_call_output"
        messages = self.body.get("messages", [])
        return bool(messages) and messages[-1].get("role") == "tool"


Responder = Callable[[RecordedRequest], Reply]


def docs_responder(request: RecordedRequest) -> Reply:
    """Search for the latest question; once the tool output is there, answer citing [1]."""
    if request.last_is_tool_output():
        found = request.tool_outputs()[-1]
        first_line = found.splitlines()[0] if found else ""
        return TextReply(f"From the documents: {first_line} [1]")
    return ToolCallReply("search_docs", {"query": request.user_texts()[-1]})


@dataclass
class FakeOpenAIServer:
    """Start with `async with`; `base_url` ends in `/v1`. Scripted replies are used first, in order."""

    replies: list[Reply] = field(default_factory=list)
    responder: Responder | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    model: str = "fake-model"
    _runner: web.AppRunner | None = None
    _port: int = 0
    _ids: Iterator[int] = field(default_factory=itertools.count)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    def enqueue(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_post("/v1/responses", self._responses)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- handlers ------------------------------------------------------------------------------
    async def _record(self, request: web.Request) -> RecordedRequest:
        body = await request.json()
        auth = request.headers.get("Authorization", "")
        recorded = RecordedRequest(request.path, body, auth.startswith("Bearer ") and len(auth) > 7)
        self.requests.append(recorded)
        return recorded

    def _next_reply(self, recorded: RecordedRequest) -> Reply:
        if self.replies:
            return self.replies.pop(0)
        if self.responder is not None:
            return self.responder(recorded)
        return ErrorReply(500, "FakeOpenAIServer: no scripted reply left for this request")

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):04d}"

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        if problem := _check_chat_request(recorded.body):
            return _error(400, *problem)
        reply = self._next_reply(recorded)
        if isinstance(reply, ErrorReply):
            return _error(reply.status, reply.message, None)
        completion_id = self._new_id("chatcmpl")
        if isinstance(reply, TextReply):
            message: dict[str, Any] = {"role": "assistant", "content": reply.text}
            finish = "stop"
        else:
            call = {
                "id": self._new_id("call"),
                "type": "function",
                "function": {"name": reply.name, "arguments": json.dumps(reply.arguments)},
            }
            message, finish = {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        head = {"id": completion_id, "created": int(time.time()), "model": recorded.body["model"]}
        if not recorded.body.get("stream"):
            choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
            return web.json_response(
                {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
            )
        chunks: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        if isinstance(reply, TextReply):
            chunks += [{"content": piece} for piece in _pieces(reply.text)]
        else:
            function = message["tool_calls"][0]["function"]
            start = {
                "index": 0,
                "id": message["tool_calls"][0]["id"],
                "type": "function",
                "function": {"name": function["name"], "arguments": ""},
            }
            chunks.append({"tool_calls": [start]})
            chunks += [
                {"tool_calls": [{"index": 0, "function": {"arguments": p}}]}
                for p in _pieces(function["arguments"])
            ]
        events = [
            {
                **head,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": d, "finish_reason": None}],
            }
            for d in chunks
        ]
        events.append(
            {
                **head,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {}, "finish_reason": finish}],
            }
        )
        if (recorded.body.get("stream_options") or {}).get("include_usage"):
            events.append({**head, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        return await _sse(request, [(None, e) for e in events], done_marker=True)

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        if problem := _check_responses_request(recorded.body):
            return _error(400, *problem)
        reply = self._next_reply(recorded)
        if isinstance(reply, ErrorReply):
            return _error(reply.status, reply.message, None)
        # fmt: off
        if isinstance(reply, TextReply):
            item: dict[str, Any] = {"id": self._new_id("msg"), "type": "message", "role": "assistant",
                                    "status": "completed", "content": [_output_text(reply.text)]}
        else:
            item = {"id": self._new_id("fc"), "type": "function_call", "call_id": self._new_id("call"),
                    "name": reply.name, "arguments": json.dumps(reply.arguments), "status": "completed"}
        usage = {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15,
                 "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens_details": {"reasoning_tokens": 0}}
        response = {"id": self._new_id("resp"), "object": "response", "created_at": int(time.time()),
                     "model": recorded.body["model"], "status": "completed", "output": [item],
                     "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "usage": usage}
        # fmt: on
        if not recorded.body.get("stream"):
            return web.json_response(response)
        return await _sse(
            request, [(e["type"], e) for e in _response_events(response, item)], done_marker=False
        )


def _response_events(response: dict[str, Any], item: dict[str, Any]) -> list[dict[str, Any]]:
    """The Responses API event sequence for one output item."""
    pending = {**response, "status": "in_progress", "output": [], "usage": None}
    at = {"item_id": item["id"], "output_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": pending},
        {"type": "response.in_progress", "response": pending},
    ]
    if item["type"] == "message":
        text = item["content"][0]["text"]
        events.append(
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {**item, "status": "in_progress", "content": []},
            }
        )
        events.append(
            {"type": "response.content_part.added", **at, "content_index": 0, "part": _output_text("")}
        )
        events += [
            {"type": "response.output_text.delta", **at, "content_index": 0, "delta": p, "logprobs": []}
            for p in _pieces(text)
        ]
        events.append(
            {"type": "response.output_text.done", **at, "content_index": 0, "text": text, "logprobs": []}
        )
        events.append(
            {"type": "response.content_part.done", **at, "content_index": 0, "part": _output_text(text)}
        )
    else:
        events.append(
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {**item, "status": "in_progress", "arguments": ""},
            }
        )
        events += [
            {"type": "response.function_call_arguments.delta", **at, "delta": p}
            for p in _pieces(item["arguments"])
        ]
        events.append(
            {
                "type": "response.function_call_arguments.done",
                **at,
                "arguments": item["arguments"],
                "name": item["name"],
            }
        )
    events.append({"type": "response.output_item.done", "output_index": 0, "item": item})
    events.append({"type": "response.completed", "response": response})
    for number, event in enumerate(events):
        event["sequence_number"] = number
    return events


# -- request validation, as strict as the real APIs on the parts the SDK sends ------------------
_CHAT_ROLES = {"system", "developer", "user", "assistant", "tool"}
_CHAT_PART_TYPES = {
    "user": {"text", "image_url", "input_audio", "file"},
    "assistant": {"text", "refusal"},
    "system": {"text"},
    "developer": {"text"},
    "tool": {"text"},
}


def _check_chat_request(body: dict[str, Any]) -> tuple[str, str] | None:
    if not isinstance(body.get("model"), str):
        return "you must provide a model parameter", "model"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array", "messages"
    call_ids: set[str] = set()
    for n, message in enumerate(messages):
        role = message.get("role")
        if role not in _CHAT_ROLES:
            return (
                f"Invalid value: '{role}'. Supported values are: {sorted(_CHAT_ROLES)}",
                f"messages[{n}].role",
            )
        content = message.get("content")
        if isinstance(content, list):
            for i, part in enumerate(content):
                kind = part.get("type") if isinstance(part, dict) else None
                if kind not in _CHAT_PART_TYPES[role]:
                    allowed = ", ".join(f"'{t}'" for t in sorted(_CHAT_PART_TYPES[role]))
                    return (
                        f"Invalid value: '{kind}'. Supported values are: {allowed}.",
                        f"messages[{n}].content[{i}].type",
                    )
        elif content is None and not (role == "assistant" and message.get("tool_calls")):
            return "Invalid value for 'content': expected a string, got null.", f"messages[{n}].content"
        for call in message.get("tool_calls") or []:
            call_ids.add(call.get("id"))
        if role == "tool" and message.get("tool_call_id") not in call_ids:
            return (
                "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                "message with 'tool_calls'.",
                f"messages[{n}].role",
            )
    return None


def _check_responses_request(body: dict[str, Any]) -> tuple[str, str] | None:
    if not isinstance(body.get("model"), str):
        return "Missing required parameter: 'model'.", "model"
    items = body.get("input")
    if isinstance(items, str):
        return None
    if not isinstance(items, list):
        return "Invalid type for 'input': expected a string or an array.", "input"
    call_ids: set[str] = set()
    for n, item in enumerate(items):
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            allowed = (
                {"output_text", "refusal"}
                if role == "assistant"
                else {"input_text", "input_image", "input_file"}
            )
            content = item.get("content")
            for i, part in enumerate(content if isinstance(content, list) else []):
                if part.get("type") not in allowed:
                    return (
                        f"Invalid value: '{part.get('type')}'. Supported values are: {sorted(allowed)}.",
                        f"input[{n}].content[{i}]",
                    )
        elif kind == "function_call":
            call_ids.add(item.get("call_id"))
        elif (
            kind == "function_call_output"
            and item.get("call_id") not in call_ids
            and not body.get("previous_response_id")
        ):
            return (
                f"No tool call found for function call output with call_id {item.get('call_id')}.",
                f"input[{n}]",
            )
    return None


def _error(status: int, message: str, param: str | None) -> web.Response:
    kind = "invalid_request_error" if status == 400 else "server_error"
    return web.json_response(
        {"error": {"message": message, "type": kind, "param": param, "code": None}}, status=status
    )


async def _sse(
    request: web.Request, events: Iterable[tuple[str | None, dict[str, Any]]], *, done_marker: bool
) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    for name, data in events:
        prefix = f"event: {name}\n" if name else ""
        await response.write(f"{prefix}data: {json.dumps(data)}\n\n".encode())
    if done_marker:
        await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _pieces(text: str, size: int = 12) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""
