"""The docs agent end to end: real Weaviate + embedder behind `search_docs`, the offline model,
and the OpenAI path against a local server speaking the OpenAI wire protocol."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from agents import Runner, UserError
from agents.items import TResponseInputItem
from agents.models.fake_id import FAKE_RESPONSES_ID
from chatkit.agents import ThreadItemConverter, stream_agent_response
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageContentPartTextDelta,
    AssistantMessageItem,
    ProgressUpdateEvent,
    ThreadItemDoneEvent,
    ThreadItemUpdatedEvent,
    ThreadMetadata,
)
from fake_openai_server import FakeOpenAIServer, Reply, TextReply, ToolCallReply, docs_responder
from test_rag import indexed_store  # noqa: F401 (the `store` fixture)

from configs.config import Settings
from data.database import Database
from data.embeddings import Embedder
from data.errors import StoreUnavailable
from data.vector_store import WeaviateVectorStore
from data.weaviate_server import free_port
from services.chat.store import RequestContext, SqlStore
from services.rag import Retriever
from simple_agents.aagents import (
    NO_MATCHES,
    DocsAgentContext,
    DocsThreadItemConverter,
    UniqueIdChatCompletionsModel,
    build_agent,
    build_model,
    build_run_config,
)
from simple_agents.offline_answer import NO_LLM_NOTICE
from simple_agents.offline_model import OfflineQuoteModel

MakeSettings = Callable[..., Settings]


def new_context() -> DocsAgentContext[None]:
    thread = ThreadMetadata(id="thread-1", created_at=datetime.now())
    return DocsAgentContext[None](thread=thread, store=None, request_context=None)  # type: ignore[arg-type]


async def run(
    settings: Settings, retriever: Retriever, agent_input: str | list[TResponseInputItem]
) -> tuple[str, list[str], DocsAgentContext[None], list[Any]]:
    """Run the agent streamed; returns the final text, the text deltas, the context and all new items."""
    context = new_context()
    result = Runner.run_streamed(
        build_agent(settings, retriever), agent_input, context=context, run_config=build_run_config(settings)
    )
    deltas: list[str] = []
    async for event in result.stream_events():
        if event.type == "raw_response_event" and event.data.type == "response.output_text.delta":
            deltas.append(event.data.delta)
    return str(result.final_output), deltas, context, list(result.new_items)


def tool_calls(items: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(i.raw_item.arguments) for i in items if i.type == "tool_call_item"]


def tool_outputs(items: list[Any]) -> list[str]:
    return [str(i.output) for i in items if i.type == "tool_call_output_item"]


# -- offline model -------------------------------------------------------------------------------
async def test_offline_agent_quotes_the_passages_and_says_no_model_is_configured(
    make_settings: MakeSettings, store: WeaviateVectorStore, embedder: Embedder
) -> None:
    settings = make_settings(weaviate_collection=store.alias)
    retriever = Retriever(settings, store, embedder)
    assert isinstance(build_model(settings, retriever), OfflineQuoteModel)
    answer, deltas, context, items = await run(
        settings, retriever, "Which port does the widget server installer ask for?"
    )

    assert tool_calls(items) == [{"query": "Which port does the widget server installer ask for?"}]
    assert answer.startswith(NO_LLM_NOTICE)
    assert "no language model is configured" in answer.lower()
    assert "[1] Install guide — docs/install.md" in answer
    assert "Choose port 8443" in answer
    assert len(deltas) >= 2 and "".join(deltas) == answer  # streamed in pieces
    assert context.passages and context.passages[0].document_id == "install"
    assert tool_outputs(items)[0].startswith("[1] Install guide — docs/install.md (Install guide)\n")


async def test_offline_agent_says_when_the_documents_do_not_cover_the_question(
    make_settings: MakeSettings, embedder: Embedder
) -> None:
    settings = make_settings()  # a fresh, empty collection
    async with WeaviateVectorStore(settings) as empty:
        answer, _, context, items = await run(
            settings, Retriever(settings, empty, embedder), "How do I bake bread?"
        )

    assert tool_outputs(items) == [NO_MATCHES]
    assert answer.startswith(NO_LLM_NOTICE)
    assert "don't seem to cover" in answer and "How do I bake bread?" in answer
    assert context.passages == []


async def test_offline_follow_up_also_searches_with_the_previous_questions_terms(
    make_settings: MakeSettings, store: WeaviateVectorStore, embedder: Embedder
) -> None:
    settings = make_settings(weaviate_collection=store.alias)
    history = await ThreadItemConverter().to_agent_input(
        [
            AssistantMessageItem(
                id="m1",
                thread_id="t",
                created_at=datetime.now(),
                content=[AssistantMessageContent(text="Earlier.")],
            )
        ]
    )
    agent_input: list[TResponseInputItem] = [
        {"role": "user", "content": "How are billing invoices sent?"},
        *history,
        {"role": "user", "content": "and when?"},
    ]
    answer, _, _, items = await run(settings, Retriever(settings, store, embedder), agent_input)

    assert tool_calls(items) == [{"query": "and when?"}, {"query": "and when? billing invoices sent"}]
    assert "first working day of every month".upper() in answer.upper()


async def test_store_failure_reaches_the_caller_with_its_message(
    make_plain_settings: MakeSettings, embedder: Embedder
) -> None:
    port = free_port()
    settings = make_plain_settings(
        weaviate_url=f"http://127.0.0.1:{port}", weaviate_grpc_url=f"127.0.0.1:{free_port()}"
    )
    store = WeaviateVectorStore(settings)
    with pytest.raises(UserError) as raised:
        await run(settings, Retriever(settings, store, embedder), "anything")
    await store.close()
    # the SDK wraps tool errors; the cause keeps the store's message for the chat service to show
    assert isinstance(raised.value.__cause__, StoreUnavailable)
    assert f"127.0.0.1:{port}" in str(raised.value.__cause__)


# -- OpenAI-compatible endpoint --------------------------------------------------------------------
@pytest.mark.parametrize("api", ["chat_completions", "responses"])
async def test_llm_calls_search_docs_and_answers_from_the_tool_output(
    api: str, make_settings: MakeSettings, store: WeaviateVectorStore, embedder: Embedder
) -> None:
    replies: list[Reply] = [
        ToolCallReply("search_docs", {"query": "installer port"}),
        TextReply("Use port 8443 [1]."),
    ]
    async with FakeOpenAIServer(replies) as llm:
        settings = make_settings(
            weaviate_collection=store.alias,
            openai_base_url=llm.base_url,
            openai_api_key="sk-test",
            openai_api=api,
        )
        model = build_model(settings, Retriever(settings, store, embedder))
        assert isinstance(model, UniqueIdChatCompletionsModel if api == "chat_completions" else object)
        answer, deltas, context, items = await run(
            settings, Retriever(settings, store, embedder), "Which port?"
        )

    assert answer == "Use port 8443 [1]."
    assert "".join(deltas) == answer and len(deltas) > 1
    assert [r.api for r in llm.requests] == [api, api]
    assert all(r.authorized and r.body["stream"] is True for r in llm.requests)
    first, second = llm.requests
    tool_names = [t.get("name") or t["function"]["name"] for t in first.body["tools"]]
    assert tool_names == ["search_docs"]
    assert first.tool_outputs() == []
    assert tool_calls(items) == [{"query": "installer port"}]
    (sent,) = second.tool_outputs()
    assert sent.startswith("[1] Install guide — docs/install.md") and "Choose port 8443" in sent
    assert context.passages[0].document_id == "install"
    message_ids = [i.raw_item.id for i in items if i.type == "message_output_item"]
    assert message_ids and FAKE_RESPONSES_ID not in message_ids


@pytest.mark.parametrize("api", ["chat_completions", "responses"])
async def test_second_turn_with_chatkit_history_is_accepted(
    api: str, make_settings: MakeSettings, store: WeaviateVectorStore, embedder: Embedder
) -> None:
    earlier = AssistantMessageItem(
        id="m1",
        thread_id="t",
        created_at=datetime.now(),
        content=[AssistantMessageContent(text="Port 8443 [1].")],
    )
    async with FakeOpenAIServer(responder=docs_responder) as llm:
        settings = make_settings(
            weaviate_collection=store.alias,
            openai_base_url=llm.base_url,
            openai_api_key="sk-test",
            openai_api=api,
        )
        agent_input: list[TResponseInputItem] = [
            {"role": "user", "content": "Which port?"},
            *await DocsThreadItemConverter().to_agent_input([earlier]),
            {"role": "user", "content": "When are invoices sent?"},
        ]
        answer, _, _, items = await run(settings, Retriever(settings, store, embedder), agent_input)

    assert answer.startswith("From the documents: [1] ") and answer.endswith("[1]")
    assert "— docs/billing-" in answer
    assert tool_calls(items) == [{"query": "When are invoices sent?"}]
    assert len(llm.requests) == 2
    history = llm.requests[0].body["messages" if api == "chat_completions" else "input"]
    assistant = [m for m in history if m.get("role") == "assistant"]
    assert assistant and assistant[0]["content"] == "Port 8443 [1]."


async def test_run_config_flattens_chatkit_assistant_parts_for_chat_completions(
    make_settings: MakeSettings, store: WeaviateVectorStore, embedder: Embedder
) -> None:
    """Even with chatkit's default converter (output_text parts), the request is valid."""
    earlier = AssistantMessageItem(
        id="m1", thread_id="t", created_at=datetime.now(), content=[AssistantMessageContent(text="Before.")]
    )
    async with FakeOpenAIServer(responder=docs_responder) as llm:
        settings = make_settings(
            weaviate_collection=store.alias, openai_base_url=llm.base_url, openai_api_key="sk-test"
        )
        assert not settings.use_responses_api  # a custom base URL defaults to Chat Completions
        agent_input: list[TResponseInputItem] = [
            {"role": "user", "content": "Which port?"},
            *await ThreadItemConverter().to_agent_input([earlier]),
            {"role": "user", "content": "What is a sprocket?"},
        ]
        answer, _, context, _ = await run(settings, Retriever(settings, store, embedder), agent_input)

    assert answer.endswith("[1]")
    assert {"role": "assistant", "content": "Before."} in llm.requests[0].body["messages"]
    assert any(p.document_id == "glossary" for p in context.passages)


async def test_fake_server_rejects_output_text_parts_like_real_servers() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "output_text", "text": "x", "annotations": []}]},
        ],
    }
    async with FakeOpenAIServer([TextReply("unused")]) as llm, aiohttp.ClientSession() as http:
        async with http.post(f"{llm.base_url}/chat/completions", json=body) as response:
            error = await response.json()
    assert response.status == 400
    assert (
        "output_text" in error["error"]["message"]
        and error["error"]["param"] == "messages[1].content[0].type"
    )


async def test_passages_keep_continuous_numbers_across_searches(
    make_settings: MakeSettings, store: WeaviateVectorStore, embedder: Embedder
) -> None:
    replies: list[Reply] = [
        ToolCallReply("search_docs", {"query": "widget server installer port"}),
        ToolCallReply("search_docs", {"query": "billing invoices finance"}),
        TextReply("Done [1][2]."),
    ]
    async with FakeOpenAIServer(replies) as llm:
        settings = make_settings(
            weaviate_collection=store.alias,
            openai_base_url=llm.base_url,
            openai_api_key="sk-test",
            search_top_k=2,
        )
        _, _, context, items = await run(settings, Retriever(settings, store, embedder), "Tell me everything")

    first, second = tool_outputs(items)
    first_numbers = [line.split("]")[0] + "]" for line in first.splitlines() if line.startswith("[")]
    second_numbers = [line.split("]")[0] + "]" for line in second.splitlines() if line.startswith("[")]
    assert first_numbers == ["[1]", "[2]"]
    assert set(second_numbers) <= {"[1]", "[2]", "[3]", "[4]"} and "[3]" in second_numbers
    assert len(context.passages) == len(set(first_numbers) | set(second_numbers))
    billing = next(n for n, p in enumerate(context.passages, 1) if p.document_id.startswith("billing"))
    assert f"[{billing}] " in second


def test_tracing_is_off_unless_enabled(make_plain_settings: MakeSettings, embedder: Embedder) -> None:
    from agents.tracing import get_trace_provider

    settings = make_plain_settings()
    build_model(settings, Retriever(settings, WeaviateVectorStore(settings), embedder))
    assert build_run_config(settings).tracing_disabled is True
    assert get_trace_provider()._disabled is True  # type: ignore[attr-defined]
    assert build_run_config(make_plain_settings(openai_tracing=True)).tracing_disabled is False


async def test_offline_answer_streams_through_chatkit(
    make_settings: MakeSettings, store: WeaviateVectorStore, embedder: Embedder, tmp_path: Path
) -> None:
    """chatkit's `stream_agent_response` turns the offline model's events into a streamed message."""
    settings = make_settings(weaviate_collection=store.alias)
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'chat.sqlite3'}")
    await database.create()
    try:
        chat_store = SqlStore(database)
        request = RequestContext(user_id="u1")
        thread = ThreadMetadata(id="thread-ck", created_at=datetime.now())
        await chat_store.save_thread(thread, request)
        context = DocsAgentContext[RequestContext](thread=thread, store=chat_store, request_context=request)
        result = Runner.run_streamed(
            build_agent(settings, Retriever(settings, store, embedder)),
            "Which port does the installer ask for?",
            context=context,
            run_config=build_run_config(settings),
        )
        events = [event async for event in stream_agent_response(context, result)]
    finally:
        await database.dispose()

    progress = [e.text for e in events if isinstance(e, ProgressUpdateEvent)]
    assert progress == ["Searching the docs: Which port does the installer ask for?"]
    deltas = [
        e.update.delta
        for e in events
        if isinstance(e, ThreadItemUpdatedEvent)
        and isinstance(e.update, AssistantMessageContentPartTextDelta)
    ]
    done = [e.item for e in events if isinstance(e, ThreadItemDoneEvent)]
    assert len(done) == 1 and isinstance(done[0], AssistantMessageItem)
    assert len(deltas) >= 2 and "".join(deltas) == done[0].content[0].text
    assert (
        done[0].content[0].text.startswith(NO_LLM_NOTICE) and "[1] Install guide" in done[0].content[0].text
    )
