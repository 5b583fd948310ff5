"""Follow-ups are searched in the context of the conversation (issue 11, §3).

"and in HTTP mode?" after "How do I add the bot to Slack?" is about Slack's HTTP mode, which the
message alone does not say: searched alone it finds the deployment page's HTTP server. Offline,
the model fuses a search of the message with one carrying the previous question's key terms; with
an LLM, the instructions tell the model to write standalone queries, and the query it writes is
the one searched. Real Weaviate and the real embedder behind the searches.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from agents import Runner
from agents.items import TResponseInputItem
from chatkit.types import ThreadMetadata
from fake_openai_server import FakeOpenAIServer, TextReply, ToolCallReply
from test_rag import index_chunks

from configs.config import Settings
from data.embeddings import Embedder
from data.records import Chunk, Passage
from data.vector_store import WeaviateVectorStore
from services.rag import Retriever
from simple_agents.aagents import INSTRUCTIONS, DocsAgentContext, build_agent, build_run_config
from simple_agents.conversation import fuse_ranked, fusion_weights, is_elliptical, key_terms, search_queries

MakeSettings = Callable[..., Settings]
WHEN = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
FIRST = "How do I add the bot to Slack?"
FOLLOW_UP = "and in HTTP mode?"
# document id -> (title, heading, text)
DOCS = {
    "slack-install": (
        "Slack setup",
        "Adding the bot to Slack",
        "Create a Slack app from the manifest, install it to your workspace, then invite the bot "
        "to a channel with /invite @docs-bot.",
    ),
    "slack-http": (
        "Slack events over HTTP",
        "Events over HTTP",
        "When the bot runs in HTTP mode, Slack posts its events to the app's request URL, "
        "https://your-host/slack/events, signed with the secret you put in SLACK_SIGNING_SECRET.",
    ),
    "deployment-http": (
        "Deployment",
        "HTTP mode",
        "In HTTP mode the bot runs serve, an HTTP server on port 8080 with /healthz and /metrics; "
        "HTTP mode is the usual way to run it behind a reverse proxy.",
    ),
    "discord-install": (
        "Discord setup",
        "Adding the bot to Discord",
        "Open the OAuth2 URL generator of your Discord application, tick bot and applications.commands, "
        "and open the generated URL to add the bot to a server.",
    ),
}


@pytest.fixture
async def store(make_settings: MakeSettings, embedder: Embedder) -> AsyncIterator[WeaviateVectorStore]:
    async with WeaviateVectorStore(make_settings()) as opened:
        chunks = [
            Chunk(
                document_id=doc,
                chunk_index=0,
                text=text,
                title=title,
                heading_path=f"{title} > {heading}",
                source=f"docs/{doc}.md",
                content_hash=f"hash-{doc}",
                modified_time=WHEN,
                embed_text=f"{title} > {heading}\n{text}",
            )
            for doc, (title, heading, text) in DOCS.items()
        ]
        await index_chunks(opened, embedder, chunks)
        yield opened


class RecordingSearch:
    """The real retriever, keeping the queries the agent's tool sent it."""

    def __init__(self, retriever: Retriever) -> None:
        self.retriever = retriever
        self.queries: list[str] = []

    async def search(self, query: str, *, sources: Sequence[str] | None = None) -> list[Passage]:
        self.queries.append(query)
        return await self.retriever.search(query, sources=sources)

    async def score_sentences(self, query: str, sentences: Sequence[str]) -> list[float]:
        return await self.retriever.score_sentences(query, sentences)


async def second_turn(settings: Settings, search: RecordingSearch) -> tuple[str, DocsAgentContext[None]]:
    """The follow-up after an answered first question; the answer text and the run's context."""
    context = DocsAgentContext[None](
        thread=ThreadMetadata(id="t", created_at=datetime.now()),
        store=None,  # type: ignore[arg-type]
        request_context=None,
    )
    history: list[TResponseInputItem] = [
        {"role": "user", "content": FIRST},
        {"role": "assistant", "content": "Create a Slack app and invite the bot [1]."},
        {"role": "user", "content": FOLLOW_UP},
    ]
    result = await Runner.run(
        build_agent(settings, search), history, context=context, run_config=build_run_config(settings)
    )
    return str(result.final_output), context


def shown_documents(answer: str, context: DocsAgentContext[Any]) -> list[str]:
    """The documents of the passages the offline answer cites, in the order it first cites them."""
    numbers = list(dict.fromkeys(int(n) for n in re.findall(r"\[(\d+)\]", answer)))
    return [context.passages[n - 1].document_id for n in numbers]


async def test_message_alone_finds_the_wrong_http_section(
    make_settings: MakeSettings, store: WeaviateVectorStore, embedder: Embedder
) -> None:
    """The premise of the other tests: searched alone, the follow-up is about deployment."""
    settings = make_settings(weaviate_collection=store.alias)
    found = await Retriever(settings, store, embedder).search(FOLLOW_UP)
    assert found[0].document_id == "deployment-http"


async def test_offline_follow_up_fuses_its_own_search_with_the_previous_questions_terms(
    make_settings: MakeSettings, store: WeaviateVectorStore, embedder: Embedder
) -> None:
    settings = make_settings(weaviate_collection=store.alias)
    search = RecordingSearch(Retriever(settings, store, embedder))
    answer, context = await second_turn(settings, search)

    assert search.queries == [FOLLOW_UP, f"{FOLLOW_UP} add bot slack"]
    assert shown_documents(answer, context)[0] == "slack-http"
    assert "SLACK_SIGNING_SECRET" in answer


async def test_a_new_question_after_an_answer_keeps_its_own_subject(
    make_settings: MakeSettings, store: WeaviateVectorStore, embedder: Embedder
) -> None:
    settings = make_settings(weaviate_collection=store.alias)
    search = RecordingSearch(Retriever(settings, store, embedder))
    context = DocsAgentContext[None](
        thread=ThreadMetadata(id="t", created_at=datetime.now()),
        store=None,  # type: ignore[arg-type]
        request_context=None,
    )
    history: list[TResponseInputItem] = [
        {"role": "user", "content": FIRST},
        {"role": "assistant", "content": "Create a Slack app [1]."},
        {"role": "user", "content": "How do I add the bot to Discord?"},
    ]
    result = await Runner.run(
        build_agent(settings, search), history, context=context, run_config=build_run_config(settings)
    )
    assert shown_documents(str(result.final_output), context)[0] == "discord-install"


async def test_llm_is_told_to_write_standalone_queries_and_its_query_is_searched(
    make_settings: MakeSettings, store: WeaviateVectorStore, embedder: Embedder
) -> None:
    standalone = "add the bot to Slack in HTTP mode"
    replies = [ToolCallReply("search_docs", {"query": standalone}), TextReply("Set the request URL [1].")]
    async with FakeOpenAIServer(replies) as llm:
        settings = make_settings(
            weaviate_collection=store.alias, openai_base_url=llm.base_url, openai_api_key="sk-test"
        )
        search = RecordingSearch(Retriever(settings, store, embedder))
        answer, context = await second_turn(settings, search)

    system = llm.requests[0].body["messages"][0]
    assert system["role"] == "system" and system["content"] == INSTRUCTIONS
    assert "stands alone" in INSTRUCTIONS and '"add the bot to Slack in HTTP mode"' in INSTRUCTIONS
    assert [m["content"] for m in llm.requests[0].body["messages"] if m["role"] == "user"] == [
        FIRST,
        FOLLOW_UP,
    ]
    assert search.queries == [standalone]
    assert llm.requests[1].tool_outputs()[0].startswith("[1] Slack events over HTTP")
    assert answer == "Set the request URL [1]." and context.passages[0].document_id == "slack-http"


def test_search_queries_carry_only_the_terms_the_message_leaves_out() -> None:
    assert search_queries("How do I rotate the API token?") == ["How do I rotate the API token?"]
    assert search_queries("  ") == []
    assert search_queries("and the token expiry?", ["How do I rotate the API token?"]) == [
        "and the token expiry?",
        "and the token expiry? rotate api",
    ]
    # a chain of follow-ups keeps the subject of the question two turns back, newest terms first
    assert search_queries("and the configuration?", ["any examples?", "How do I bisect a regression?"]) == [
        "and the configuration?",
        "and the configuration? examples bisect regression",
    ]
    assert len(search_queries("why?", [" ".join(f"term{n}" for n in range(20))])[1].split()) == 1 + 8


def test_the_title_the_previous_answer_quoted_first_is_carried_before_the_questions_words() -> None:
    previous_answer = (
        "_No language model is configured…_\n\n"
        "**[2] git-bisect(1) Manual Page — git-bisect.html (DESCRIPTION)**\n> Use binary search.\n\n"
        "**[1] git-log(1) — git-log.html**\n> Other."
    )
    assert search_queries(
        "any examples?", ["How do I find the commit that introduced a bug?"], previous_answer
    ) == [
        "any examples?",
        "any examples? git bisect manual page find commit introduced bug",
    ]


def test_key_terms_keep_order_and_skip_function_words() -> None:
    assert key_terms("How do I add the bot to Slack, and the bot's HTTP mode?") == [
        "add",
        "bot",
        "slack",
        "http",
        "mode",
    ]


@pytest.mark.parametrize(
    ("message", "elliptical"),
    [
        ("and in HTTP mode?", True),
        ("why?", True),
        ("exit status?", True),
        ("which configuration variables affect it?", True),
        ("what about the Discord bot?", True),
        ("How do I add the bot to Discord?", False),
        ("Which port does the HTTP server listen on?", False),
    ],
)
def test_elliptical_messages_let_the_carried_search_lead(message: str, elliptical: bool) -> None:
    assert is_elliptical(message) is elliptical
    assert fusion_weights(message, 2) == ([1.0, 2.0] if elliptical else [2.0, 1.0])
    assert fusion_weights(message, 1) == [1.0]


def test_fusion_puts_what_both_searches_rank_high_first_and_the_lead_search_next() -> None:
    assert fuse_ranked([["a", "b", "c"], ["b", "d", "a"]]) == ["b", "a", "d", "c"]
    assert fuse_ranked([["a", "c"], ["b", "d"]]) == ["a", "b", "c", "d"]
    assert fuse_ranked([["a", "c"], ["b", "d"]], [1.0, 2.0]) == ["b", "d", "a", "c"]
    # agreement still wins over the lead search's second best
    assert fuse_ranked([["a", "b"], ["c", "a"]], [1.0, 2.0]) == ["a", "c", "b"]
    assert fuse_ranked([["x", "y"]]) == ["x", "y"]
