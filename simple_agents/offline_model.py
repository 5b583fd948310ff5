"""The model used when no language model is configured: it searches, then quotes the documents.

It speaks the Agents SDK `Model` interface, so the bot runs the same agent, tool and chatkit
streaming path with or without an LLM. It never writes prose of its own: every answer says that
no language model is configured, then shows the documents' sentences that best answer the
question and short quotes of their passages, with their [n] numbers (simple_agents/offline_answer.py).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any, cast

from agents.agent_output import AgentOutputSchemaBase
from agents.handoffs import Handoff
from agents.items import ModelResponse, TResponseInputItem, TResponseOutputItem, TResponseStreamEvent
from agents.model_settings import ModelSettings
from agents.models.interface import Model, ModelTracing
from agents.tool import Tool
from agents.usage import Usage
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseFunctionToolCall,
    ResponseInProgressEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
)
from openai.types.responses.response_prompt_param import ResponsePromptParam
from openai.types.responses.response_status import ResponseStatus

from simple_agents.conversation import search_queries
from simple_agents.offline_answer import NO_LLM_NOTICE, NOT_COVERED, SentenceScorer, offline_answer

__all__ = ["NOT_COVERED", "NO_LLM_NOTICE", "SEARCH_TOOL_NAME", "OfflineQuoteModel", "stream_events"]

SEARCH_TOOL_NAME = "search_docs"
MODEL_NAME = "offline-quotes"

# Messages chatkit adds on the user's behalf; they are context, not the question.
_CONTEXT_PREFIXES = (
    "Hidden context for the agent",
    "The user is referring to this in particular",
    "A message was displayed to the user",
    "The following graphical UI widget",
    "A structured input request",
    "# User-provided context",
)
# How many earlier questions lend their terms to a follow-up's second search: a chain of
# follow-ups ("any examples?", then "and the configuration?") keeps the subject the first named.
_CARRIED_QUESTIONS = 2
_BLOCK_END = re.compile(r"(?<=\n\n)")


class OfflineQuoteModel(Model):
    """Turn 1: call `search_docs` with the question (twice for a follow-up, see `search_queries`).
    Turn 2: answer from the passages the tool returned (`offline_answer`), its sentences scored
    by `scorer`."""

    def __init__(self, scorer: SentenceScorer) -> None:
        self.scorer = scorer

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> ModelResponse:
        output = await self._next_output(input)
        return ModelResponse(output=output, usage=Usage(requests=1), response_id=_new_id("resp"))

    async def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> AsyncIterator[TResponseStreamEvent]:
        for event in stream_events(_new_id("resp"), await self._next_output(input)):
            yield event

    async def _next_output(self, input: str | list[TResponseInputItem]) -> list[TResponseOutputItem]:
        """Search when the latest question has no tool output yet; otherwise quote what was found."""
        items = [
            _as_dict(item)
            for item in ([{"role": "user", "content": input}] if isinstance(input, str) else input)
        ]
        questions = [(index, text) for index, text in _user_questions(items)]
        last_index = questions[-1][0] if questions else -1
        searches = _searches_in_call_order(items[last_index + 1 :])
        question = questions[-1][1] if questions else ""
        if not searches and question:
            earlier = [text for _, text in reversed(questions[:-1])][:_CARRIED_QUESTIONS]
            previous_answer = _last_assistant_text(items[:last_index])
            return [_search_call(query) for query in search_queries(question, earlier, previous_answer)]
        return [_message(await offline_answer(question, searches, self.scorer))]


def _searches_in_call_order(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(query, output) of the searches among `items`, in the order their calls were made (the
    message-alone search first, see `search_queries`)."""
    queries = {
        item.get("call_id"): _call_query(item.get("arguments"))
        for item in items
        if item.get("type") == "function_call"
    }
    outputs = {
        item.get("call_id"): _output_text(item.get("output"))
        for item in items
        if item.get("type") == "function_call_output"
    }
    ordered = [(query, outputs.pop(call)) for call, query in queries.items() if call in outputs]
    return ordered + [("", output) for output in outputs.values()]  # calls not in the input


def _call_query(arguments: object) -> str:
    try:
        query = json.loads(arguments).get("query", "") if isinstance(arguments, str) else ""
    except (ValueError, AttributeError):
        return ""
    return query if isinstance(query, str) else ""


def _last_assistant_text(items: list[dict[str, Any]]) -> str:
    for item in reversed(items):
        if item.get("role") == "assistant" and item.get("type", "message") == "message":
            return _output_text(item.get("content"))
    return ""


def _search_call(query: str) -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(
        id=_new_id("fc"),
        call_id=_new_id("call"),
        type="function_call",
        name=SEARCH_TOOL_NAME,
        arguments=json.dumps({"query": query}, ensure_ascii=False),
        status="completed",
    )


def stream_events(response_id: str, items: Sequence[TResponseOutputItem]) -> list[TResponseStreamEvent]:
    """The Responses API event sequence for the output items, as OpenAI would stream them."""
    base = _response(response_id, [], "in_progress")
    events: list[Any] = [
        ResponseCreatedEvent(type="response.created", response=base, sequence_number=0),
        ResponseInProgressEvent(type="response.in_progress", response=base, sequence_number=0),
    ]
    for index, item in enumerate(items):
        if isinstance(item, ResponseFunctionToolCall):
            events += _function_call_events(item, index)
        elif isinstance(item, ResponseOutputMessage):
            events += _message_events(item, index)
        events.append(
            ResponseOutputItemDoneEvent(
                type="response.output_item.done", item=item, output_index=index, sequence_number=0
            )
        )
    events.append(
        ResponseCompletedEvent(
            type="response.completed", response=_response(response_id, items, "completed"), sequence_number=0
        )
    )
    for number, event in enumerate(events):
        event.sequence_number = number
    return cast(list[TResponseStreamEvent], events)


def _function_call_events(call: ResponseFunctionToolCall, index: int) -> list[Any]:
    """The call appears with empty arguments, which then arrive whole in one delta."""
    item_id = call.id or call.call_id
    return [
        _added(call.model_copy(update={"arguments": "", "status": "in_progress"}), index),
        ResponseFunctionCallArgumentsDeltaEvent(
            type="response.function_call_arguments.delta",
            item_id=item_id,
            output_index=index,
            delta=call.arguments,
            sequence_number=0,
        ),
        ResponseFunctionCallArgumentsDoneEvent.model_validate(
            {
                "type": "response.function_call_arguments.done",
                "item_id": item_id,
                "output_index": index,
                "arguments": call.arguments,
                "name": call.name,
                "sequence_number": 0,
            }
        ),
    ]


def _message_events(message: ResponseOutputMessage, index: int) -> list[Any]:
    """The message appears empty, then its one text part opens, streams by `_pieces` and closes."""
    text = cast(ResponseOutputText, message.content[0]).text
    where: dict[str, Any] = {
        "item_id": message.id,
        "output_index": index,
        "content_index": 0,
        "sequence_number": 0,
    }
    empty = ResponseOutputText(type="output_text", text="", annotations=[], logprobs=[])
    return [
        _added(message.model_copy(update={"content": [], "status": "in_progress"}), index),
        ResponseContentPartAddedEvent(type="response.content_part.added", part=empty, **where),
        *(
            ResponseTextDeltaEvent(type="response.output_text.delta", delta=piece, logprobs=[], **where)
            for piece in _pieces(text)
        ),
        ResponseTextDoneEvent(type="response.output_text.done", text=text, logprobs=[], **where),
        ResponseContentPartDoneEvent(type="response.content_part.done", part=message.content[0], **where),
    ]


def _added(item: TResponseOutputItem, index: int) -> ResponseOutputItemAddedEvent:
    return ResponseOutputItemAddedEvent(
        type="response.output_item.added", item=item, output_index=index, sequence_number=0
    )


def _response(response_id: str, output: Sequence[TResponseOutputItem], status: ResponseStatus) -> Response:
    # Keyword construction keeps the given (already valid) items as they are: ~5 µs, where
    # model_validate of dumped items takes ~90 µs and openai's recursive construct() ~180 µs.
    return Response(
        id=response_id,
        object="response",
        created_at=time.time(),
        model=MODEL_NAME,
        output=list(output),
        status=status,
        tool_choice="auto",
        tools=[],
        parallel_tool_calls=False,
    )


def _message(text: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id=_new_id("msg"),
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[], logprobs=[])],
    )


def _pieces(text: str) -> list[str]:
    """One piece per block (the notice, then each quoted passage): the whole answer exists at once,
    so cutting it into token-sized deltas would only pretend to be a model and cost events."""
    return [piece for piece in _BLOCK_END.split(text) if piece]


def _user_questions(items: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """(position, text) of real user messages, skipping context chatkit adds as user messages."""
    found = []
    for index, item in enumerate(items):
        if item.get("role") != "user" or item.get("type", "message") != "message":
            continue
        text = _output_text(item.get("content")).strip()
        if text and not text.startswith(_CONTEXT_PREFIXES):
            found.append((index, text))
    return found


def _output_text(content: object) -> str:
    """Text of a message content or tool output: a string or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, Iterable):
        texts = [
            part.get("text", "")
            for part in (_as_dict(p) for p in content)
            if isinstance(part.get("text"), str)
        ]
        return "\n".join(texts)
    return ""


def _as_dict(item: object) -> dict[str, Any]:
    if isinstance(item, Mapping):
        return dict(item)
    dump = getattr(item, "model_dump", None)
    return cast(dict[str, Any], dump()) if callable(dump) else {}


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"
