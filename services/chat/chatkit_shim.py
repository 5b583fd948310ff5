"""The one place that calls openai-chatkit's private methods, checked when the server is built.

chatkit's public `ChatKitServer.process` parses the request with a pydantic `TypeAdapter` it
builds anew for every request (~12 ms of schema building per message) and serializes every event
for HTTP. We parse once with a prebuilt adapter and hand chat adapters the events as objects, which
needs the three private methods below. openai-chatkit is pinned (<1.7), and `require_private_api`
fails loudly, naming the method, when an upgrade renames or reshapes one of them;
tests/test_chatkit_shim.py runs that check against the installed version. `TrappedRun` lets
chatkit finish its bookkeeping when the agent run fails.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any

from agents import RunResultStreaming, StreamEvent
from chatkit.server import ChatKitServer, NonStreamingResult, StreamingResult
from chatkit.types import ChatKitReq, ThreadStreamEvent, is_streaming_req

# name -> the parameters (after `self`) this module passes.
PRIVATE_API: dict[str, tuple[str, ...]] = {
    "_process_streaming": ("request", "context"),
    "_process_non_streaming": ("request", "context"),
    "_process_streaming_impl": ("request", "context"),
}


class ChatKitPrivateApiChanged(RuntimeError):
    """The installed openai-chatkit no longer has a private method this project relies on."""


def require_private_api(server_class: type[ChatKitServer[Any]] = ChatKitServer) -> None:
    """Raise `ChatKitPrivateApiChanged` unless every method in `PRIVATE_API` exists as expected."""
    for name, parameters in PRIVATE_API.items():
        method = getattr(server_class, name, None)
        if method is None or not callable(method):
            raise ChatKitPrivateApiChanged(
                f"openai-chatkit has no ChatKitServer.{name} any more; update services/chat/chatkit_shim.py"
            )
        found = tuple(inspect.signature(method).parameters)[1:]
        if found != parameters:
            raise ChatKitPrivateApiChanged(
                f"openai-chatkit's ChatKitServer.{name} takes {found}, not {parameters}; "
                "update services/chat/chatkit_shim.py"
            )


async def route(
    server: ChatKitServer[Any], request: ChatKitReq, context: Any
) -> StreamingResult | NonStreamingResult:
    """What chatkit's `process` does after parsing: stream or answer at once, by request type."""
    if is_streaming_req(request):
        return StreamingResult(server._process_streaming(request, context))
    return NonStreamingResult(await server._process_non_streaming(request, context))


def stream_events(
    server: ChatKitServer[Any], request: ChatKitReq, context: Any
) -> AsyncIterator[ThreadStreamEvent]:
    """The events of a streaming request as objects, stored exactly as `process` stores them."""
    return server._process_streaming_impl(request, context)  # type: ignore[arg-type]


class TrappedRun:
    """Stands in for the run result in `stream_agent_response`: its stream ends instead of raising.

    chatkit then finishes its own bookkeeping (and its internal event-queue task) normally, and
    `respond` reports the kept error as a chatkit error event.
    """

    def __init__(self, result: RunResultStreaming) -> None:
        self.result = result
        self.error: Exception | None = None

    async def stream_events(self) -> AsyncIterator[StreamEvent]:
        try:
            async for event in self.result.stream_events():
                yield event
        except Exception as exc:
            self.error = exc
