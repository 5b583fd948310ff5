"""The model used when no language model is configured: it searches, then quotes the documents.

It speaks the Agents SDK `Model` interface, so the bot runs the same agent, tool and chatkit
streaming path with or without an LLM. It never writes prose of its own: every answer says that
no language model is configured and shows the most relevant excerpts with their [n] numbers.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from bisect import bisect_right
from collections.abc import AsyncIterator, Iterable, Mapping
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

SEARCH_TOOL_NAME = "search_docs"
NO_LLM_NOTICE = (
    "_No language model is configured, so this is not a written answer: "
    "here are the most relevant excerpts from the documents._"
)
NOT_COVERED = "The indexed documents don't seem to cover this: no passage matched"
MODEL_NAME = "offline-quotes"

_MAX_PASSAGES = 3
_EXCERPT_CHARS = 500
# Messages chatkit adds on the user's behalf; they are context, not the question.
_CONTEXT_PREFIXES = (
    "Hidden context for the agent",
    "The user is referring to this in particular",
    "A message was displayed to the user",
    "The following graphical UI widget",
    "A structured input request",
    "# User-provided context",
)
_FOLLOW_UP_WORDS = frozenset(
    "it its that this these those they them their there he she his her one ones same more else "
    "why how what and also so then about".split()
)
_BLOCK_START = re.compile(r"(?:^|\n\n)(?=\[\d+\] )")
_BLOCK_END = re.compile(r"(?<=\n\n)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"\w+")


class OfflineQuoteModel(Model):
    """Turn 1: call `search_docs` with the question. Turn 2: quote the passages the tool returned."""

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
        item = _next_output(input)
        return ModelResponse(output=[item], usage=Usage(requests=1), response_id=_new_id("resp"))

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
        for event in stream_events(_new_id("resp"), _next_output(input)):
            yield event


def _next_output(input: str | list[TResponseInputItem]) -> TResponseOutputItem:
    """Search when the latest question has no tool output yet; otherwise quote what was found."""
    items = [
        _as_dict(item) for item in ([{"role": "user", "content": input}] if isinstance(input, str) else input)
    ]
    questions = [(index, text) for index, text in _user_questions(items)]
    last_index = questions[-1][0] if questions else -1
    outputs = [
        _output_text(item.get("output"))
        for item in items[last_index + 1 :]
        if item.get("type") == "function_call_output"
    ]
    question = questions[-1][1] if questions else ""
    if not outputs and question:
        previous = questions[-2][1] if len(questions) > 1 else ""
        query = build_query(question, previous)
        return ResponseFunctionToolCall(
            id=_new_id("fc"),
            call_id=_new_id("call"),
            type="function_call",
            name=SEARCH_TOOL_NAME,
            arguments=json.dumps({"query": query}, ensure_ascii=False),
            status="completed",
        )
    return _message(quote_answer(question, outputs))


def build_query(question: str, previous_question: str = "") -> str:
    """The search query: the question, plus the previous one when this is a bare follow-up."""
    words = [word.lower() for word in _WORD.findall(question)]
    bare = len(words) <= 3 or (
        len(words) <= 8 and sum(w in _FOLLOW_UP_WORDS for w in words) * 2 >= len(words)
    )
    if previous_question and bare:
        return f"{previous_question.strip()} {question.strip()}"
    return question.strip()


def quote_answer(question: str, tool_outputs: Iterable[str]) -> str:
    """Markdown: the no-LLM notice, then the best passages trimmed around the question's words."""
    blocks: list[tuple[str, str]] = []
    for output in tool_outputs:
        for block in _BLOCK_START.split(output):
            header, _, text = block.strip().partition("\n")
            if re.match(r"\[\d+\] ", header) and text.strip() and all(header != h for h, _ in blocks):
                blocks.append((header, text.strip()))
    if not blocks:
        shown = question.strip() or "your question"
        return f"{NO_LLM_NOTICE}\n\n{NOT_COVERED} “{shown}”. Try other words, or index more documents."
    terms = {word.lower() for word in _WORD.findall(question) if len(word) > 2}
    parts = [NO_LLM_NOTICE]
    for header, text in blocks[:_MAX_PASSAGES]:
        quoted = "\n".join(f"> {line}" if line else ">" for line in excerpt(text, terms).splitlines())
        parts.append(f"**{header}**\n{quoted}")
    return "\n\n".join(parts)


def excerpt(text: str, terms: set[str], limit: int = _EXCERPT_CHARS) -> str:
    """About `limit` characters of `text`, starting near the sentence that best matches `terms`.

    The excerpt is a slice of the original text, so line breaks (lists, code) survive.
    """
    if len(text) <= limit:
        return text
    starts = [0, *(match.end() for match in _SENTENCE_END.finditer(text))]
    spans = [(a, b) for a, b in zip(starts, [*starts[1:], len(text)], strict=True) if text[a:b].strip()]
    found: list[set[str]] = [set() for _ in spans]  # the question's terms in each span, one regex pass
    span_starts = [a for a, _ in spans]
    if terms:
        lowered = text.lower()
        same_offsets = len(lowered) == len(text)  # lower() can lengthen a few letters (e.g. "İ")
        flags = 0 if same_offsets else re.IGNORECASE  # matching lower-cased text is ~2× faster
        wanted = re.compile(r"\b(?:" + "|".join(map(re.escape, sorted(terms))) + r")\b", flags)
        for match in wanted.finditer(lowered if same_offsets else text):
            if (index := bisect_right(span_starts, match.start()) - 1) >= 0:
                found[index].add(match.group().lower())
    scores = [len(words) for words in found]
    best = max(range(len(spans)), key=lambda i: (scores[i], -i)) if spans else 0
    first = max(0, best - 1) if scores and scores[best] else 0
    begin = spans[first][0] if spans else 0
    end = begin
    for _, span_end in spans[first:]:
        if end > begin and span_end - begin > limit:
            break
        end = span_end
    result = text[begin:end].rstrip()
    if len(result) > limit:
        result = result[:limit].rsplit(" ", 1)[0]
    prefix = "… " if begin > 0 else ""
    suffix = " …" if begin + len(result) < len(text.rstrip()) else ""
    return prefix + result + suffix


def stream_events(response_id: str, item: TResponseOutputItem) -> list[TResponseStreamEvent]:
    """The Responses API event sequence for one output item, as OpenAI would stream it."""
    base = _response(response_id, [], "in_progress")
    events: list[Any] = [
        ResponseCreatedEvent(type="response.created", response=base, sequence_number=0),
        ResponseInProgressEvent(type="response.in_progress", response=base, sequence_number=0),
    ]
    if isinstance(item, ResponseFunctionToolCall):
        events += _function_call_events(item)
    elif isinstance(item, ResponseOutputMessage):
        events += _message_events(item)
    events.append(
        ResponseOutputItemDoneEvent(
            type="response.output_item.done", item=item, output_index=0, sequence_number=0
        )
    )
    events.append(
        ResponseCompletedEvent(
            type="response.completed", response=_response(response_id, [item], "completed"), sequence_number=0
        )
    )
    for number, event in enumerate(events):
        event.sequence_number = number
    return cast(list[TResponseStreamEvent], events)


def _function_call_events(call: ResponseFunctionToolCall) -> list[Any]:
    """The call appears with empty arguments, which then arrive whole in one delta."""
    item_id = call.id or call.call_id
    return [
        _added(call.model_copy(update={"arguments": "", "status": "in_progress"})),
        ResponseFunctionCallArgumentsDeltaEvent(
            type="response.function_call_arguments.delta",
            item_id=item_id,
            output_index=0,
            delta=call.arguments,
            sequence_number=0,
        ),
        ResponseFunctionCallArgumentsDoneEvent.model_validate(
            {
                "type": "response.function_call_arguments.done",
                "item_id": item_id,
                "output_index": 0,
                "arguments": call.arguments,
                "name": call.name,
                "sequence_number": 0,
            }
        ),
    ]


def _message_events(message: ResponseOutputMessage) -> list[Any]:
    """The message appears empty, then its one text part opens, streams by `_pieces` and closes."""
    text = cast(ResponseOutputText, message.content[0]).text
    where: dict[str, Any] = {
        "item_id": message.id,
        "output_index": 0,
        "content_index": 0,
        "sequence_number": 0,
    }
    empty = ResponseOutputText(type="output_text", text="", annotations=[], logprobs=[])
    return [
        _added(message.model_copy(update={"content": [], "status": "in_progress"})),
        ResponseContentPartAddedEvent(type="response.content_part.added", part=empty, **where),
        *(
            ResponseTextDeltaEvent(type="response.output_text.delta", delta=piece, logprobs=[], **where)
            for piece in _pieces(text)
        ),
        ResponseTextDoneEvent(type="response.output_text.done", text=text, logprobs=[], **where),
        ResponseContentPartDoneEvent(type="response.content_part.done", part=message.content[0], **where),
    ]


def _added(item: TResponseOutputItem) -> ResponseOutputItemAddedEvent:
    return ResponseOutputItemAddedEvent(
        type="response.output_item.added", item=item, output_index=0, sequence_number=0
    )


def _response(response_id: str, output: list[TResponseOutputItem], status: ResponseStatus) -> Response:
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
