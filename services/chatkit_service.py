"""The conversation service: a chatkit server that answers from the docs, and the `AskService` on top.

`DocsChatKitServer` serves POST /chatkit and owns how a turn runs: thread history -> agent input,
`Runner.run_streamed`, chatkit events. `ChatService` (what Slack, Discord and the console use)
sends each message through that same server, so every conversation is an ordinary chatkit thread
stored by chatkit's own machinery, whichever way it came in.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, cast

from agents import Agent, RunConfig, Runner, RunResultStreaming
from chatkit.agents import stream_agent_response
from chatkit.errors import CustomStreamError
from chatkit.server import ChatKitServer, NonStreamingResult, StreamingResult
from chatkit.store import NotFoundError
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageContentPartAdded,
    AssistantMessageContentPartTextDelta,
    AssistantMessageItem,
    ChatKitReq,
    ErrorEvent,
    FeedbackKind,
    InferenceOptions,
    ProgressUpdateEvent,
    StreamingReq,
    ThreadAddUserMessageParams,
    ThreadCreatedEvent,
    ThreadCreateParams,
    ThreadItem,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemUpdatedEvent,
    ThreadMetadata,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadStreamEvent,
    UserMessageInput,
    UserMessageItem,
    UserMessageTextContent,
)
from pydantic import TypeAdapter
from sqlalchemy.exc import SQLAlchemyError

from configs.config import Settings
from data.database import Database
from data.errors import DatabaseUnavailable
from services.chat import chatkit_shim
from services.chat.citations import annotated_sources, checked_answers
from services.chat.contract import Answer, AskEvent, AskFailed, Status, TextDelta
from services.chat.metrics import FEEDBACK
from services.chat.store import RequestContext, SqlStore, as_request_context
from services.errors import describe_failure
from services.rag import Retriever
from simple_agents.aagents import DocsAgentContext, DocsThreadItemConverter, build_agent, build_run_config

log = logging.getLogger(__name__)

STATUS_TEXT = "Searching the docs…"
HISTORY_ITEMS = 40  # the latest items sent to the model; older turns are kept but not replayed
TITLE_CHARS = 80
INTERNAL_ERROR = (
    "The answer could not be produced because of an internal error (see the server log). Try again."
)
NO_ANSWER = "The language model ended without an answer. Try asking again."
_REQUEST = TypeAdapter[ChatKitReq](ChatKitReq)


class DocsChatKitServer(ChatKitServer[RequestContext]):
    """chatkit server answering from the docs with the agent; also serves POST /chatkit."""

    def __init__(self, settings: Settings, store: SqlStore, database: Database, agent: Agent[Any]) -> None:
        chatkit_shim.require_private_api(type(self))
        super().__init__(store)
        self.settings = settings
        self.database = database
        self.agent = agent
        self.run_config: RunConfig = build_run_config(settings)
        self.converter = DocsThreadItemConverter()

    async def process(
        self, request: str | bytes | bytearray, context: RequestContext | Mapping[str, Any] | None = None
    ) -> StreamingResult | NonStreamingResult:
        """Like chatkit's, also accepting a plain mapping (e.g. `{"user_id": ...}`) as context.

        chatkit's own `process` builds a pydantic `TypeAdapter` for every request (~12 ms of schema
        building per message); this parses with one built once, then routes exactly as chatkit does.
        """
        return await chatkit_shim.route(self, parse_request(request), as_request_context(context))

    def stream(self, request: StreamingReq, context: RequestContext) -> AsyncIterator[ThreadStreamEvent]:
        """The events of a streaming request as objects, stored exactly as for `process`.

        `process` serializes each event (and logs a traceback for a request that fails); the chat
        adapters and POST /chatkit read events and handle failures themselves (chatkit has no
        public entry point for that).
        """
        return chatkit_shim.stream_events(self, request, context)

    async def respond(
        self, thread: ThreadMetadata, input_user_message: UserMessageItem | None, context: RequestContext
    ) -> AsyncIterator[ThreadStreamEvent]:
        """Run the agent over the thread history and stream its answer as chatkit events.

        Failures become a `CustomStreamError` whose message says what went wrong and what to do;
        chatkit turns it into an `error` event.
        """
        if thread.title is None and input_user_message is not None:
            thread.title = _title(input_user_message)
        agent_context = DocsAgentContext[RequestContext](
            thread=thread, store=self.store, request_context=context
        )
        try:
            agent_input = await self.converter.to_agent_input(await self._history(thread, context))
        except Exception as exc:
            raise self._stream_error(exc, thread) from exc
        result = Runner.run_streamed(
            self.agent, agent_input, context=agent_context, run_config=self.run_config
        )
        run = chatkit_shim.TrappedRun(result)
        timed_out = False

        def expire() -> None:
            nonlocal timed_out
            timed_out = True
            result.cancel()

        timer = asyncio.get_running_loop().call_later(self.settings.llm_timeout_seconds, expire)
        answered = False
        try:
            events = stream_agent_response(agent_context, cast(RunResultStreaming, run))
            policy = self.settings.unverified_answers
            async for event in checked_answers(events, agent_context.passages, input_user_message, policy):
                if isinstance(event, ThreadItemDoneEvent) and isinstance(event.item, AssistantMessageItem):
                    answered = True
                yield event
        finally:
            timer.cancel()
        if run.error is not None:
            raise self._stream_error(run.error, thread) from run.error
        if timed_out:
            raise CustomStreamError(self.timeout_message, allow_retry=True)
        if not answered:
            raise CustomStreamError(NO_ANSWER, allow_retry=True)

    def _stream_error(self, exc: Exception, thread: ThreadMetadata) -> CustomStreamError:
        """The chatkit error event for `exc` (logged with its traceback when it looks like a bug)."""
        failure = describe_failure(exc, self.settings)
        if not failure.expected:
            log.error("Answering in thread %s failed", thread.id, exc_info=exc)
        return CustomStreamError(failure.message, allow_retry=True)

    @property
    def timeout_message(self) -> str:
        seconds = self.settings.llm_timeout_seconds
        return (
            f"The language model did not finish within {seconds:g} seconds (LLM_TIMEOUT_SECONDS). "
            "Try again, ask a narrower question, or raise LLM_TIMEOUT_SECONDS."
        )

    async def _history(self, thread: ThreadMetadata, context: RequestContext) -> list[ThreadItem]:
        """The latest `HISTORY_ITEMS` items, oldest first (the new user message is already stored)."""
        page = await self.store.load_thread_items(thread.id, None, HISTORY_ITEMS, "desc", context)
        return list(reversed(page.data))

    async def add_feedback(
        self, thread_id: str, item_ids: list[str], feedback: FeedbackKind, context: RequestContext
    ) -> None:
        """👍/👎 from a ChatKit client on answers in its own thread, stored like the adapters' votes."""
        for item_id in item_ids:  # NotFoundError unless the thread is the asker's and holds the item
            await self.store.load_item(thread_id, item_id, context)
        for item_id in item_ids:
            FEEDBACK.labels("chatkit", "up" if feedback == "positive" else "down").inc()
            await self.database.add_feedback(
                item_id, positive=feedback == "positive", user_id=context.user_id, thread_id=thread_id
            )


class ChatService:
    """The `AskService` for the chat adapters, on top of `DocsChatKitServer`."""

    def __init__(self, settings: Settings, database: Database, server: DocsChatKitServer) -> None:
        self.settings = settings
        self.database = database
        self.server = server
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def ask(
        self,
        conversation_key: str,
        text: str,
        *,
        user_id: str | None = None,
        sources: Sequence[str] | None = None,
        space: str | None = None,  # recorded by `RecordingAskService`; the search needs `sources`
    ) -> AsyncIterator[AskEvent]:
        """Status at once, then text deltas, then `Answer`; any failure ends in `AskFailed`."""
        yield Status(STATUS_TEXT)
        if not text.strip():
            yield AskFailed("The message is empty: type a question about the documents.")
            return
        scope = None if sources is None else tuple(sources)
        context = RequestContext(user_id=user_id, conversation_key=conversation_key, sources=scope)
        lock = self._locks.setdefault(conversation_key, asyncio.Lock())
        async with lock:  # one turn at a time per conversation keeps the history in order
            async for event in self._turn(conversation_key, text.strip(), context):
                yield event

    async def _turn(self, key: str, text: str, context: RequestContext) -> AsyncIterator[AskEvent]:
        """Run the message in a producer task and translate its chatkit events as they come.

        The producer is a task so a slow store, database or model is bounded by one deadline here.
        """
        queue: asyncio.Queue[ThreadStreamEvent | BaseException | None] = asyncio.Queue()
        producer = asyncio.create_task(self._pump(key, text, context, queue))
        loop = asyncio.get_running_loop()
        # The server enforces LLM_TIMEOUT_SECONDS on the model; this also bounds store and database.
        deadline = loop.time() + self.settings.llm_timeout_seconds + 30
        reader = _TurnReader()
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    yield AskFailed(self.server.timeout_message)
                    return
                if item is None:
                    break
                if isinstance(item, BaseException):
                    yield AskFailed(describe_failure(item, self.settings).message)
                    return
                for event in reader.read(item):
                    yield event
            yield reader.finish(from_language_model=self.settings.llm_configured)
        finally:
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)

    async def _pump(
        self,
        key: str,
        text: str,
        context: RequestContext,
        queue: asyncio.Queue[ThreadStreamEvent | BaseException | None],
    ) -> None:
        """Run the message through the chatkit server and queue its events (or the failure)."""
        try:
            try:
                thread_id = await self.database.thread_for_conversation(key)
            except (SQLAlchemyError, OSError) as exc:
                raise DatabaseUnavailable(
                    f"The conversation database ({self.database.display_url}) is unavailable: {exc}. "
                    "Check DATABASE_URL and that the database is running, then try again."
                ) from exc
            if not await self._stream(key, _request(text, thread_id), context, queue):
                if thread_id is not None:  # its thread was deleted (maybe by another replica)
                    await self.database.unlink_threads(thread_id)
                if not await self._stream(key, _request(text, None), context, queue):
                    raise NotFoundError("The new conversation thread could not be loaded")
            queue.put_nowait(None)
        except Exception as exc:
            if not describe_failure(exc, self.settings).expected:
                log.exception("Conversation %s failed", key)
            queue.put_nowait(exc)

    async def _stream(
        self,
        key: str,
        request: ThreadsCreateReq | ThreadsAddUserMessageReq,
        context: RequestContext,
        queue: asyncio.Queue[ThreadStreamEvent | BaseException | None],
    ) -> bool:
        """Queue the request's events; False when its thread was not found (nothing streamed)."""
        streamed = False
        try:
            async for event in self.server.stream(request, context):
                streamed = True
                if isinstance(event, ThreadCreatedEvent):
                    await self.database.link_conversation(key, event.thread.id)
                queue.put_nowait(event)
        except NotFoundError:
            if streamed:
                raise
            return False
        return True

    async def has_conversation(self, conversation_key: str) -> bool:
        """True when this conversation already has a thread (so follow-ups need no mention)."""
        try:
            return await self.database.thread_for_conversation(conversation_key) is not None
        except (SQLAlchemyError, OSError):
            log.warning("Could not look up conversation %s", conversation_key, exc_info=True)
            return False

    async def record_feedback(self, answer_id: str, *, positive: bool, user_id: str | None = None) -> None:
        """Store a vote on an answer (with its thread, when the answer is known)."""
        thread_id = await self.database.thread_of_item(answer_id)
        await self.database.add_feedback(answer_id, positive=positive, user_id=user_id, thread_id=thread_id)


async def create_chat_service(settings: Settings, retriever: Retriever, database: Database) -> ChatService:
    """Wire the store, the agent and the chatkit server (`service.server` serves POST /chatkit)."""
    store = SqlStore(database)
    server = DocsChatKitServer(settings, store, database, build_agent(settings, retriever))
    return ChatService(settings, database, server)


class _TurnReader:
    """Turns one turn's chatkit events into the adapters' `AskEvent`s, and the final `Answer`.

    chatkit reports a failed turn as an `error` event after its own bookkeeping; the failure is
    kept and reported by `finish`, once the stream has ended.
    """

    def __init__(self) -> None:
        self.answers: list[AssistantMessageItem] = []
        self.thread_id = ""
        self.streaming = False
        self.failure: str | None = None

    def read(self, event: ThreadStreamEvent) -> list[AskEvent]:
        match event:
            case ThreadCreatedEvent():
                self.thread_id = event.thread.id
            case ThreadItemDoneEvent(item=UserMessageItem() as user_item):
                self.thread_id = user_item.thread_id
            case ProgressUpdateEvent(text=progress) if not self.streaming and progress:
                return [Status(progress)]
            case ThreadItemUpdatedEvent(update=AssistantMessageContentPartTextDelta(delta=text)) | (
                ThreadItemUpdatedEvent(
                    update=AssistantMessageContentPartAdded(content=AssistantMessageContent(text=text))
                )
            ):
                if text:
                    self.streaming = True
                    return [TextDelta(text)]
            case ThreadItemAddedEvent(item=AssistantMessageItem()) if self.answers and self.streaming:
                return [TextDelta("\n\n")]  # Answer.text joins several messages the same way
            case ThreadItemDoneEvent(item=AssistantMessageItem() as answer):
                self.answers.append(answer)
            case ErrorEvent(message=message):
                self.failure = self.failure or message or INTERNAL_ERROR
        return []

    def finish(self, *, from_language_model: bool) -> Answer | AskFailed:
        if self.failure is not None or not self.answers:
            return AskFailed(self.failure or NO_ANSWER)
        last = self.answers[-1]
        return Answer(
            text="\n\n".join(text for text in map(_text, self.answers) if text),
            sources=annotated_sources(last),
            answer_id=last.id,
            thread_id=self.thread_id or last.thread_id,
            from_language_model=from_language_model,
        )


def parse_request(request: str | bytes | bytearray) -> ChatKitReq:
    """A ChatKit request from its JSON (pydantic's `ValidationError`, a `ValueError`, if it isn't one)."""
    return _REQUEST.validate_json(request)


def _request(text: str, thread_id: str | None) -> ThreadsCreateReq | ThreadsAddUserMessageReq:
    """The chatkit request a ChatKit client would send for this message."""
    message = UserMessageInput(
        content=[UserMessageTextContent(text=text)], attachments=[], inference_options=InferenceOptions()
    )
    if thread_id is None:
        return ThreadsCreateReq(params=ThreadCreateParams(input=message))
    return ThreadsAddUserMessageReq(params=ThreadAddUserMessageParams(input=message, thread_id=thread_id))


def _text(item: AssistantMessageItem) -> str:
    return "".join(part.text for part in item.content)


def _title(item: UserMessageItem) -> str:
    text = " ".join("".join(getattr(part, "text", "") for part in item.content).split())
    return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1].rstrip() + "…"
