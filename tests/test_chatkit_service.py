"""ChatService and the chatkit server, end to end: real Weaviate, real embedder, real SQLite file.

The offline model runs the same agent, tool and chatkit streaming path as an LLM; the OpenAI
path is exercised against a local server speaking the OpenAI wire protocol.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from agents.exceptions import UserError
from agents.models.fake_id import FAKE_RESPONSES_ID
from chatkit.server import NonStreamingResult, StreamingResult
from chatkit.store import NotFoundError
from chatkit.types import AssistantMessageItem, ThreadItem, UserMessageItem
from database_support import votes_on
from fake_openai_server import ErrorReply, FakeOpenAIServer, docs_responder
from test_rag import index_chunks

from configs.config import Settings
from data.database import Database
from data.embeddings import Embedder
from data.errors import StoreUnavailable
from data.records import Chunk, Passage
from data.vector_store import WeaviateVectorStore
from data.weaviate_server import free_port
from services.chat.citations import cited_sources
from services.chat.contract import Answer, AskEvent, AskFailed, Status, TextDelta
from services.chat.store import RequestContext
from services.chatkit_service import STATUS_TEXT, ChatService, create_chat_service
from services.errors import describe_failure
from services.rag import Retriever

MakeSettings = Callable[..., Settings]
WHEN = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
INSTALL_URL = "https://docs.example.com/install"
INSTALL = (
    "Installing the widget server: download the installer from the releases page and run it. "
    "The installer asks for the port number; choose port 8443 unless another service uses it."
)
BACKUP = (
    "Backups of the widget server run every night at 02:00 and are kept for thirty days in the "
    "backup bucket. Restore a backup with the restore command."
)
QUESTION = "How do I install the widget server?"


def chunk(doc: str, title: str, source: str, text: str) -> Chunk:
    return Chunk(
        document_id=doc,
        chunk_index=0,
        text=text,
        title=title,
        heading_path=f"{title} > Steps",
        source=source,
        content_hash=f"hash-{doc}",
        modified_time=WHEN,
        embed_text=f"{title}\n{text}",
    )


@pytest.fixture
async def store(make_settings: MakeSettings, embedder: Embedder) -> AsyncIterator[WeaviateVectorStore]:
    async with WeaviateVectorStore(make_settings()) as opened:
        await index_chunks(
            opened,
            embedder,
            [
                chunk("install", "Install guide", INSTALL_URL, INSTALL),
                chunk("backup", "Backups", "docs/backup.md", BACKUP),
            ],
        )
        yield opened


@asynccontextmanager
async def open_service(
    settings: Settings, store: WeaviateVectorStore, embedder: Embedder
) -> AsyncIterator[ChatService]:
    """A ChatService as the runtime builds it, over the SQLite file in `settings.data_dir`."""
    database = Database(settings.database_dsn)
    await database.create()
    try:
        yield await create_chat_service(settings, Retriever(settings, store, embedder), database)
    finally:
        await database.dispose()


def service_settings(store: WeaviateVectorStore, **overrides: Any) -> Settings:
    """The store's isolated settings with `overrides`, validated (SecretStr etc.)."""
    return Settings.model_validate({**store.settings.model_dump(), **overrides})


async def collect(service: ChatService, key: str, text: str, user_id: str | None = "u1") -> list[AskEvent]:
    return [event async for event in service.ask(key, text, user_id=user_id)]


def check_stream(events: list[AskEvent]) -> Answer:
    """Status first (statuses only before text), text deltas, then one Answer matching the deltas."""
    assert events and events[0] == Status(STATUS_TEXT), events
    assert isinstance(events[-1], Answer), events[-1]
    kinds = [type(e).__name__ for e in events[:-1]]
    assert "AskFailed" not in kinds and "Answer" not in kinds
    first_text = kinds.index("TextDelta")
    assert all(kind == "Status" for kind in kinds[:first_text])
    assert all(kind == "TextDelta" for kind in kinds[first_text:])
    answer = events[-1]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == answer.text
    return answer


async def thread_items(service: ChatService, thread_id: str, owner: RequestContext) -> list[ThreadItem]:
    """The thread's items as `owner` (its conversation, or its ChatKit user) reads them."""
    page = await service.server.store.load_thread_items(thread_id, None, 100, "asc", owner)
    return page.data


def conversation(key: str) -> RequestContext:
    """The store's view of an adapter conversation (each thread is its conversation's)."""
    return RequestContext(conversation_key=key)


CREATE = {
    "type": "threads.create",
    "params": {
        "input": {
            "content": [{"type": "input_text", "text": QUESTION}],
            "attachments": [],
            "inference_options": {},
        }
    },
}


def item_text(item: ThreadItem) -> str:
    assert isinstance(item, UserMessageItem | AssistantMessageItem)
    return "".join(getattr(part, "text", "") for part in item.content)


async def test_offline_answer_streams_and_persists(store: WeaviateVectorStore, embedder: Embedder) -> None:
    settings = service_settings(store)
    async with open_service(settings, store, embedder) as service:
        assert not await service.has_conversation("slack:C1:100")
        answer = check_stream(await collect(service, "slack:C1:100", QUESTION))

        assert answer.from_language_model is False
        assert "No language model is configured" in answer.text and "port 8443" in answer.text
        assert answer.sources, answer
        install = next(s for s in answer.sources if s.location == INSTALL_URL)
        assert install.url == INSTALL_URL and install.title == "Install guide"
        assert install.heading_path == "Install guide > Steps"
        assert f"[{install.number}]" in answer.text
        backup = [s for s in answer.sources if s.location == "docs/backup.md"]
        assert all(s.url is None for s in backup)

        assert await service.has_conversation("slack:C1:100")
        items = await thread_items(service, answer.thread_id, conversation("slack:C1:100"))
        assert [type(i).__name__ for i in items] == ["UserMessageItem", "AssistantMessageItem"]
        assert item_text(items[0]) == QUESTION and items[1].id == answer.answer_id
        assert item_text(items[1]) == answer.text
        stored = items[1]
        assert isinstance(stored, AssistantMessageItem)
        annotated = [a.source.title for a in stored.content[0].annotations]
        assert f"[{install.number}] Install guide" in annotated
        thread = await service.server.store.load_thread(answer.thread_id, conversation("slack:C1:100"))
        assert thread.title == QUESTION


async def test_follow_up_sees_history_and_survives_restart(
    store: WeaviateVectorStore, embedder: Embedder
) -> None:
    settings = service_settings(store)
    async with open_service(settings, store, embedder) as service:
        first = check_stream(await collect(service, "discord:7", QUESTION))
        follow_up = await collect(service, "discord:7", "and the port?")
        second = check_stream(follow_up)
    assert second.thread_id == first.thread_id and second.answer_id != first.answer_id
    # The offline model adds the previous question's key terms to a bare follow-up: it saw the history.
    statuses = [e.text for e in follow_up if isinstance(e, Status)]
    searched = [s for s in statuses if s.startswith("Searching the docs: and the port? ")]
    assert searched and "widget server" in searched[0], statuses
    assert "8443" in second.text

    async with open_service(settings, store, embedder) as restarted:  # a new process over the same file
        assert await restarted.has_conversation("discord:7")
        third = check_stream(await collect(restarted, "discord:7", "How are backups kept?"))
        assert third.thread_id == first.thread_id
        items = await thread_items(restarted, first.thread_id, conversation("discord:7"))
        assert [i.id for i in items if isinstance(i, AssistantMessageItem)] == [
            first.answer_id,
            second.answer_id,
            third.answer_id,
        ]
        assert [item_text(i) for i in items if isinstance(i, UserMessageItem)] == [
            QUESTION,
            "and the port?",
            "How are backups kept?",
        ]
        assert any(s.location == "docs/backup.md" for s in third.sources)


async def test_concurrent_asks_on_one_conversation_are_serialized(
    store: WeaviateVectorStore, embedder: Embedder
) -> None:
    settings = service_settings(store)
    async with open_service(settings, store, embedder) as service:
        questions = [QUESTION, "How are backups kept?", "Which port does the installer use?"]
        results = await asyncio.gather(*(collect(service, "slack:C9:1", q) for q in questions))
        answers = [check_stream(events) for events in results]
        assert len({a.thread_id for a in answers}) == 1
        items = await thread_items(service, answers[0].thread_id, conversation("slack:C9:1"))
        kinds = [type(i).__name__ for i in items]
        assert kinds == ["UserMessageItem", "AssistantMessageItem"] * 3
        # Each answer directly follows its own question.
        for question, answer in zip(questions, answers, strict=True):
            position = next(
                n for n, i in enumerate(items) if isinstance(i, UserMessageItem) and item_text(i) == question
            )
            assert items[position + 1].id == answer.answer_id


async def test_chat_completions_two_turns_send_plain_assistant_history(
    store: WeaviateVectorStore, embedder: Embedder
) -> None:
    async with FakeOpenAIServer(responder=docs_responder) as llm:
        settings = service_settings(store, openai_base_url=llm.base_url, openai_api_key="test-key")
        assert not settings.use_responses_api
        async with open_service(settings, store, embedder) as service:
            first = check_stream(await collect(service, "slack:C2:5", QUESTION))
            second = check_stream(await collect(service, "slack:C2:5", "How are backups kept?"))
    assert first.from_language_model and second.from_language_model
    assert first.text.startswith("From the documents: [1]") and first.text.endswith("[1]")
    assert [s.number for s in first.sources] == [1]
    assert first.answer_id != second.answer_id
    assert FAKE_RESPONSES_ID not in (first.answer_id, second.answer_id)
    assert second.thread_id == first.thread_id
    assert all(r.api == "chat_completions" and r.authorized for r in llm.requests)
    second_turn = [r for r in llm.requests if "How are backups kept?" in r.user_texts()]
    assert second_turn, [r.user_texts() for r in llm.requests]
    for request in second_turn:
        assistant = [m for m in request.body["messages"] if m["role"] == "assistant" and m.get("content")]
        assert {"role": "assistant", "content": first.text} in [
            {"role": m["role"], "content": m["content"]} for m in assistant
        ]


async def test_language_model_errors_end_in_ask_failed(
    store: WeaviateVectorStore, embedder: Embedder
) -> None:
    async with FakeOpenAIServer([ErrorReply(401, "Incorrect API key provided")]) as llm:
        settings = service_settings(store, openai_base_url=llm.base_url, openai_api_key="bad-key")
        async with open_service(settings, store, embedder) as service:
            events = await collect(service, "console:1", QUESTION)
    assert events[0] == Status(STATUS_TEXT)
    failed = events[-1]
    assert isinstance(failed, AskFailed), events
    assert "OPENAI_API_KEY" in failed.message and "401" in failed.message


async def test_unreachable_vector_store_ends_in_ask_failed(
    make_plain_settings: MakeSettings, embedder: Embedder, tmp_path: Path
) -> None:
    closed_http, closed_grpc = free_port(), free_port()
    settings = make_plain_settings(
        weaviate_url=f"http://127.0.0.1:{closed_http}", weaviate_grpc_url=f"http://127.0.0.1:{closed_grpc}"
    )
    store = WeaviateVectorStore(settings)
    try:
        async with open_service(settings, store, embedder) as service:
            events = await collect(service, "slack:C3:1", QUESTION)
            assert events[0] == Status(STATUS_TEXT)
            failed = events[-1]
            assert isinstance(failed, AskFailed), events
            assert "vector store" in failed.message and str(closed_http) in failed.message
            # The user's message is kept: a retry once the store is back continues the same thread.
            assert await service.has_conversation("slack:C3:1")
    finally:
        await store.close()


async def test_timeout_ends_in_ask_failed(store: WeaviateVectorStore, embedder: Embedder) -> None:
    settings = service_settings(store, llm_timeout_seconds=0.001)
    async with open_service(settings, store, embedder) as service:
        events = await collect(service, "slack:C4:1", QUESTION)
    failed = events[-1]
    assert isinstance(failed, AskFailed), events
    assert "LLM_TIMEOUT_SECONDS" in failed.message


async def test_empty_question_is_refused(store: WeaviateVectorStore, embedder: Embedder) -> None:
    async with open_service(service_settings(store), store, embedder) as service:
        events = await collect(service, "slack:C5:1", "   ")
        assert len(events) == 2 and events[0] == Status(STATUS_TEXT)
        failed = events[1]
        assert isinstance(failed, AskFailed) and "empty" in failed.message
        assert not await service.has_conversation("slack:C5:1")


async def test_feedback_is_stored_from_adapters_and_chatkit(
    store: WeaviateVectorStore, embedder: Embedder
) -> None:
    async with open_service(service_settings(store), store, embedder) as service:
        answer = check_stream(await collect(service, "slack:C6:1", QUESTION))
        await service.record_feedback(answer.answer_id, positive=True, user_id="U1")
        created = await service.server.process(json.dumps(CREATE), {"user_id": "web"})
        assert isinstance(created, StreamingResult)
        events = [json.loads(chunk.removeprefix(b"data: ")) async for chunk in created]
        web_thread, web_answer = events[0]["thread"]["id"], events[-1]["item"]["id"]

        def vote(thread_id: str, item_id: str) -> str:
            params = {"thread_id": thread_id, "item_ids": [item_id], "kind": "negative"}
            return json.dumps({"type": "items.feedback", "params": params})

        result = await service.server.process(vote(web_thread, web_answer), {"user_id": "web"})
        assert isinstance(result, NonStreamingResult)
        # A ChatKit user votes only in their own threads: not on a Slack answer, nor on another's.
        for thread_id, item_id, user in [
            (answer.thread_id, answer.answer_id, "web"),
            (web_thread, web_answer, "U2"),
        ]:
            with pytest.raises(NotFoundError):
                await service.server.process(vote(thread_id, item_id), {"user_id": user})
        slack_votes = await votes_on(service.database, answer.answer_id)
        web_votes = await votes_on(service.database, web_answer)
    assert [(r.positive, r.user_id, r.thread_id) for r in slack_votes] == [(True, "U1", answer.thread_id)]
    assert [(r.positive, r.user_id, r.thread_id) for r in web_votes] == [(False, "web", web_thread)]


async def test_chatkit_protocol_requests_use_the_same_threads(
    store: WeaviateVectorStore, embedder: Embedder
) -> None:
    """POST /chatkit: threads.create streams SSE and stores the thread like an adapter's."""
    async with open_service(service_settings(store), store, embedder) as service:
        result = await service.server.process(json.dumps(CREATE), {"user_id": "web"})
        assert isinstance(result, StreamingResult)
        events = [json.loads(chunk.removeprefix(b"data: ")) async for chunk in result]
        types = [e["type"] for e in events]
        assert types[0] == "thread.created" and "thread.item.updated" in types and "error" not in types
        thread_id = events[0]["thread"]["id"]
        done = [e["item"] for e in events if e["type"] == "thread.item.done"]
        assert [d["type"] for d in done] == ["user_message", "assistant_message"]
        assert done[1]["content"][0]["annotations"], done[1]
        items = await thread_items(service, thread_id, RequestContext(user_id="web"))
        assert [i.id for i in items] == [d["id"] for d in done]


async def test_unreachable_database_ends_in_ask_failed(
    store: WeaviateVectorStore, embedder: Embedder
) -> None:
    settings = service_settings(store)
    database = Database(f"postgresql+asyncpg://bot:s3cret@127.0.0.1:{free_port()}/docsbot")
    try:
        service = await create_chat_service(settings, Retriever(settings, store, embedder), database)
        events = await collect(service, "slack:C7:1", QUESTION)
        failed = events[-1]
        assert isinstance(failed, AskFailed), events
        assert "DATABASE_URL" in failed.message and "s3cret" not in failed.message
        assert not await service.has_conversation("slack:C7:1")
    finally:
        await database.dispose()


async def test_conversation_whose_thread_was_deleted_starts_a_new_thread(
    store: WeaviateVectorStore, embedder: Embedder
) -> None:
    async with open_service(service_settings(store), store, embedder) as service:
        first = check_stream(await collect(service, "slack:C8:1", QUESTION))
        await service.server.store.delete_thread(first.thread_id, conversation("slack:C8:1"))
        assert not await service.has_conversation("slack:C8:1")
        again = check_stream(await collect(service, "slack:C8:1", QUESTION))
        assert again.thread_id != first.thread_id
        assert len(await thread_items(service, again.thread_id, conversation("slack:C8:1"))) == 2


async def test_thread_deleted_by_another_replica_starts_a_new_thread(
    store: WeaviateVectorStore, embedder: Embedder
) -> None:
    """This replica remembers the conversation's thread; another one deletes it meanwhile."""
    settings = service_settings(store)
    async with (
        open_service(settings, store, embedder) as service,
        open_service(settings, store, embedder) as other,
    ):
        first = check_stream(await collect(service, "slack:C9:1", QUESTION))
        assert await other.has_conversation("slack:C9:1")
        await other.server.store.delete_thread(first.thread_id, conversation("slack:C9:1"))
        again = check_stream(await collect(service, "slack:C9:1", "And which port does it use?"))
        assert again.thread_id != first.thread_id
        items = await thread_items(service, again.thread_id, conversation("slack:C9:1"))
        assert item_text(items[0]) == "And which port does it use?"
        assert await other.database.thread_for_conversation("slack:C9:1") == again.thread_id


def passage(doc: str, source: str) -> Passage:
    return Passage(f"text of {doc}", doc.title(), "", source, 0.5, doc, 0, 0)


def test_sources_are_the_cited_passages_or_all_when_none_is_cited() -> None:
    passages = [passage("a", "docs/a.md"), passage("b", "https://x.example/b"), passage("c", "docs/c.md")]
    cited = cited_sources("B says so [2], and A too [1][2]. [7] is not a passage.", passages)
    assert [(s.number, s.location, s.url) for s in cited] == [
        (1, "docs/a.md", None),
        (2, "https://x.example/b", "https://x.example/b"),
    ]
    assert [s.number for s in cited_sources("No citations here.", passages)] == [1, 2, 3]
    assert cited_sources("Nothing found [1].", []) == []


def test_failures_are_described_through_wrapping_exceptions(make_plain_settings: MakeSettings) -> None:
    settings = make_plain_settings()
    try:
        try:
            raise StoreUnavailable("Cannot reach Weaviate at http://127.0.0.1:1")
        except StoreUnavailable as exc:
            raise UserError("Error running tool search_docs") from exc
    except UserError as wrapped:
        failure = describe_failure(wrapped, settings)
    assert failure.expected and failure.message.startswith("The vector store is unavailable")
    assert "127.0.0.1:1" in failure.message
    unknown = describe_failure(RuntimeError("boom"), settings)
    assert not unknown.expected and "boom" in unknown.message
