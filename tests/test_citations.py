"""Citations that hold (issue 11, §5): an answer cites only passages retrieved in its own turn.

End to end through `ChatService` (real Weaviate, real embedder, SQLite) with a local server speaking
the OpenAI protocol scripting the bad answers: a citation past the retrieved passages, none at all.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from fake_openai_server import FakeOpenAIServer, Reply, TextReply, ToolCallReply
from test_rag import index_chunks

from configs.config import Settings
from data.database import Database
from data.embeddings import Embedder
from data.records import Chunk, Passage
from data.vector_store import WeaviateVectorStore
from services.chat.citations import (
    NOT_COVERED_ANSWER,
    UNVERIFIED_NOTE,
    CitationCheck,
    is_factual_question,
    remove_invalid_citations,
)
from services.chat.contract import Answer, AskEvent, TextDelta
from services.chat.store import RequestContext
from services.chatkit_service import ChatService, create_chat_service
from services.rag import Retriever

MakeSettings = Callable[..., Settings]
WHEN = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
QUESTION = "Which port does the widget installer ask for?"
INSTALL = "The widget installer asks for the port number; choose port 8443 unless another service uses it."
BACKUP = "Backups of the widget server run every night at 02:00 and are kept for thirty days."


@pytest.fixture
async def store(make_settings: MakeSettings, embedder: Embedder) -> AsyncIterator[WeaviateVectorStore]:
    async with WeaviateVectorStore(make_settings()) as opened:
        chunks = [
            Chunk(
                document_id=doc,
                chunk_index=0,
                text=text,
                title=title,
                heading_path=title,
                source=f"docs/{doc}.md",
                content_hash=f"hash-{doc}",
                modified_time=WHEN,
                embed_text=f"{title}\n{text}",
            )
            for doc, title, text in [("install", "Install guide", INSTALL), ("backup", "Backups", BACKUP)]
        ]
        await index_chunks(opened, embedder, chunks)
        yield opened


@asynccontextmanager
async def llm_service(
    store: WeaviateVectorStore, embedder: Embedder, replies: list[Reply], **overrides: Any
) -> AsyncIterator[tuple[ChatService, FakeOpenAIServer]]:
    """A ChatService answering with the scripted replies, over SQLite in the store's data dir."""
    async with FakeOpenAIServer(replies) as llm:
        values = {**store.settings.model_dump(), "openai_base_url": llm.base_url, "openai_api_key": "sk-test"}
        settings = Settings.model_validate({**values, **overrides})
        database = Database(settings.database_dsn)
        await database.create()
        try:
            yield await create_chat_service(settings, Retriever(settings, store, embedder), database), llm
        finally:
            await database.dispose()


async def ask(service: ChatService, text: str) -> tuple[str, Answer]:
    """The text streamed for one ask, and its final answer."""
    events: list[AskEvent] = [event async for event in service.ask("test:c1", text, user_id="u1")]
    answer = events[-1]
    assert isinstance(answer, Answer), answer
    return "".join(e.text for e in events if isinstance(e, TextDelta)), answer


async def stored_answer_text(service: ChatService, answer: Answer) -> str:
    context = RequestContext(user_id="u1", conversation_key="test:c1")
    page = await service.server.store.load_thread_items(answer.thread_id, None, 20, "asc", context)
    item = next(i for i in page.data if i.id == answer.answer_id)
    return "".join(getattr(part, "text", "") for part in getattr(item, "content", []))


def search_then(text: str) -> list[Reply]:
    return [ToolCallReply("search_docs", {"query": "widget installer port"}), TextReply(text)]


async def test_an_invented_citation_is_removed_logged_and_never_streamed(
    store: WeaviateVectorStore, embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="services.chat.citations"):
        async with llm_service(store, embedder, search_then("Choose port 8443 [1]. See also [7].")) as (
            chat,
            _,
        ):
            streamed, answer = await ask(chat, QUESTION)
            stored = await stored_answer_text(chat, answer)

    assert answer.text == "Choose port 8443 [1]. See also." == stored
    assert streamed == answer.text  # the deltas add up to the answer, and never showed [7]
    assert [(s.number, s.title) for s in answer.sources] == [(1, "Install guide")]
    assert any("[7]" in record.getMessage() for record in caplog.records)
    assert UNVERIFIED_NOTE not in answer.text


async def test_an_answer_left_without_a_valid_citation_is_marked_not_verified(
    store: WeaviateVectorStore, embedder: Embedder
) -> None:
    async with llm_service(store, embedder, search_then("It is port 8080 [9].")) as (chat, llm):
        streamed, answer = await ask(chat, QUESTION)

    assert llm.requests[-1].tool_outputs()[0].startswith("[1] Install guide")  # passages were found
    assert answer.text == f"It is port 8080.\n\n{UNVERIFIED_NOTE}" == streamed


async def test_not_covered_policy_replaces_an_unverified_answer_and_shows_none_of_it(
    store: WeaviateVectorStore, embedder: Embedder
) -> None:
    replies = search_then("Port 8080, as everyone knows.")
    async with llm_service(store, embedder, replies, unverified_answers="not-covered") as (chat, _):
        streamed, answer = await ask(chat, QUESTION)
        stored = await stored_answer_text(chat, answer)

    # none of the unverified text was shown, not even while it streamed
    assert streamed == answer.text == NOT_COVERED_ANSWER == stored


async def test_not_covered_policy_streams_a_cited_answer_once_it_cites(
    store: WeaviateVectorStore, embedder: Embedder
) -> None:
    text = "The installer asks for it: choose port 8443 [1], unless another service uses it."
    async with llm_service(store, embedder, search_then(text), unverified_answers="not-covered") as (chat, _):
        streamed, answer = await ask(chat, QUESTION)

    assert answer.text == text and streamed == text


async def test_small_talk_and_an_honest_not_covered_need_no_citation(
    store: WeaviateVectorStore, embedder: Embedder
) -> None:
    replies = [
        TextReply("You're welcome!"),
        *search_then("The documents don't cover the weather."),
    ]
    async with llm_service(store, embedder, replies) as (chat, _):
        _, thanks = await ask(chat, "thanks!")
        _, weather = await ask(chat, "Will it rain tomorrow?")

    assert thanks.text == "You're welcome!"
    assert weather.text == "The documents don't cover the weather."


def test_citations_in_code_and_links_are_left_alone() -> None:
    text = "Use `items[3]` [1][4] or [2, 5]:\n```\nx = a[7]\n```\nSee [6](https://x.example) [3]."
    cleaned, valid, removed = remove_invalid_citations(text, 2)
    assert cleaned == "Use `items[3]` [1] or [2]:\n```\nx = a[7]\n```\nSee [6](https://x.example)."
    assert (valid, removed) == ([1, 2], [4, 5, 3])


def test_streamed_text_is_the_final_texts_start_however_the_deltas_split_a_citation() -> None:
    passages = [Passage("p", "t", "", "s", 1.0, "d", 0, 0)]
    text = "Port 8443 [1]. Not [12] this [1, 3]; done [1]"
    final = remove_invalid_citations(text, 1)[0]
    for size in (1, 2, 3, 5):
        check = CitationCheck(passages, "note")
        shown = "".join(check.feed(text[i : i + size]) for i in range(0, len(text), size))
        assert final.startswith(shown) and "[12]" not in shown and "3]" not in shown
        assert check.finish(QUESTION, text) == final


@pytest.mark.parametrize(
    ("message", "factual"),
    [
        ("thanks!", False),
        ("ok thanks", False),
        ("Hi, how are you today?", False),
        ("Thanks, that helped a lot!", False),
        ("lol", False),
        ("How tall is Mount Everest?", True),
        ("why?", True),
        ("Explain the backup schedule", True),
    ],
)
def test_which_messages_ask_about_something(message: str, factual: bool) -> None:
    assert is_factual_question(message) is factual
