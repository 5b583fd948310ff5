"""Retriever against the real Weaviate server and the real local embedder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime

import pytest
from counting_embedder import CountingEmbedder

from configs.config import Settings
from data.embeddings import Embedder
from data.records import Chunk, DocumentState, Passage, SearchHit
from data.vector_store import WeaviateVectorStore
from services.rag import Retriever, drop_duplicates, merge_adjacent
from services.relevance import MEASURED_JUDGES, content_words, coverage_features, covered, word_weight
from simple_agents.aagents import format_numbered

MakeSettings = Callable[..., Settings]
WHEN = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)

OVERLAP_1 = "The installer asks for the port number of the widget server."
OVERLAP_2 = "After installation the widget server starts automatically."
INSTALL = [
    "Installing the widget server. Download the installer from the releases page and run it "
    "with administrator rights. " + OVERLAP_1,
    OVERLAP_1 + " Choose port 8443 unless another service already uses it. " + OVERLAP_2,
    OVERLAP_2 + " Check the status page at /health to confirm that the widget server runs.",
]
BILLING = (
    "Billing invoices are sent on the first working day of every month to the finance mailbox, "
    "and unpaid invoices are reminded after fourteen days by the accounting team."
)
GLOSSARY = [
    "Glossary entry one: a gadget is the small client that talks to the widget server over TLS.",
    "Glossary entry two: unrelated words about lunch menus, parking spaces and office plants.",
    "Glossary entry three: a sprocket is the plugin format the widget server loads at start.",
]

# document id -> (title, {chunk_index: text}, chunk_count)
DOCS: dict[str, tuple[str, dict[int, str], int]] = {
    "install": ("Install guide", dict(enumerate(INSTALL)), 3),
    "billing-a": ("Billing", {0: BILLING}, 1),
    # the same section copied into another document, with other case and spacing
    "billing-b": ("Finance handbook", {0: "  " + BILLING.upper().replace(" ", "  ") + " "}, 1),
    # chunk 1 is not written: chunks 0 and 2 are not adjacent
    "glossary": ("Glossary", {0: GLOSSARY[0], 2: GLOSSARY[2]}, 3),
}


def make_chunk(doc: str, title: str, index: int, text: str) -> Chunk:
    return Chunk(
        document_id=doc,
        chunk_index=index,
        text=text,
        title=title,
        heading_path=f"{title} > Section {index}",
        source=f"docs/{doc}.md",
        content_hash=f"hash-{doc}",
        modified_time=WHEN,
        embed_text=f"{title}\n{text}",
    )


async def index_chunks(store: WeaviateVectorStore, embedder: Embedder, chunks: Sequence[Chunk]) -> None:
    """Write chunks through the real writer, commit, and wait until all are searchable."""
    writer = await store.open_writer(rebuild=False, model_id=embedder.model_id, dimension=embedder.dimension)
    await writer.write_chunks(chunks, await embedder.embed_documents([c.embed_text for c in chunks]))
    counts: dict[str, tuple[Chunk, int]] = {}
    for c in chunks:
        counts[c.document_id] = (c, max(counts.get(c.document_id, (c, 0))[1], c.chunk_index + 1))
    await writer.finish_documents(
        [DocumentState(d, c.source, c.title, c.content_hash, WHEN, n) for d, (c, n) in counts.items()]
    )
    await writer.commit()
    probe = await embedder.embed_query("widget")
    for _ in range(100):
        hits = await store.search(
            "widget", probe, model_id=embedder.model_id, limit=100, alpha=1.0, fusion="relative_score"
        )
        if len(hits) >= len(chunks):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"only {len(hits)} of {len(chunks)} chunks became searchable")


@pytest.fixture(name="store")
async def indexed_store(
    make_settings: MakeSettings, embedder: Embedder
) -> AsyncIterator[WeaviateVectorStore]:
    """A store holding DOCS (also used by the agent tests)."""
    async with WeaviateVectorStore(make_settings()) as opened:
        chunks = [
            make_chunk(doc, title, i, text)
            for doc, (title, parts, _) in DOCS.items()
            for i, text in parts.items()
        ]
        await index_chunks(opened, embedder, chunks)
        yield opened


def retriever_for(store: WeaviateVectorStore, embedder: Embedder, **overrides: object) -> Retriever:
    settings = store.settings.model_copy(update=overrides)
    return Retriever(settings, store, embedder)


async def test_adjacent_chunks_merge_into_one_passage_without_repeating_the_overlap(
    store: WeaviateVectorStore, embedder: Embedder
) -> None:
    passages = await retriever_for(store, embedder).search(
        "Which port does the widget server installer ask for?"
    )

    install = [p for p in passages if p.document_id == "install"]
    assert len(install) == 1, passages
    merged = install[0]
    assert (merged.first_chunk, merged.last_chunk) == (0, 2)
    assert merged.text.startswith("Installing the widget server.")
    assert merged.text.endswith("to confirm that the widget server runs.")
    assert merged.text.count(OVERLAP_1) == 1 and merged.text.count(OVERLAP_2) == 1
    assert "Choose port 8443" in merged.text
    assert merged.title == "Install guide" and merged.source == "docs/install.md"
    assert merged.heading_path == "Install guide"  # the headings the merged chunks share
    assert passages[0].document_id == "install"  # the best passage comes first
    assert [p.score for p in passages] == sorted((p.score for p in passages), reverse=True)


async def test_chunks_with_a_gap_stay_separate_passages(
    store: WeaviateVectorStore, embedder: Embedder
) -> None:
    passages = await retriever_for(store, embedder).search("glossary gadget sprocket", k=10)

    glossary = sorted((p.first_chunk, p.last_chunk, p.text) for p in passages if p.document_id == "glossary")
    assert glossary == [(0, 0, GLOSSARY[0]), (2, 2, GLOSSARY[2])]


async def test_duplicate_passages_from_different_documents_are_dropped(
    store: WeaviateVectorStore, embedder: Embedder
) -> None:
    passages = await retriever_for(store, embedder).search("When are billing invoices sent?", k=10)

    billing = [p for p in passages if p.document_id.startswith("billing")]
    assert len(billing) == 1, [p.document_id for p in passages]
    assert len(passages) == len({p.text.lower().split().__str__() for p in passages})


async def test_k_limits_the_passages_and_defaults_to_search_top_k(
    store: WeaviateVectorStore, embedder: Embedder
) -> None:
    question = "widget server"
    assert len(await retriever_for(store, embedder).search(question, k=1)) == 1
    assert len(await retriever_for(store, embedder, search_top_k=2).search(question)) == 2
    # four distinct passages exist: install 0-2, billing, glossary 0, glossary 2
    assert len(await retriever_for(store, embedder).search(question, k=10)) == 4


async def test_passages_below_the_minimum_score_are_dropped(
    store: WeaviateVectorStore, embedder: Embedder
) -> None:
    question = "Which port does the widget server installer ask for?"
    everything = await retriever_for(store, embedder).search(question, k=10)
    strict = await retriever_for(store, embedder, search_min_score=0.9).search(question, k=10)

    assert strict and len(strict) < len(everything)
    assert all(p.score >= 0.9 for p in strict)
    assert strict[0].document_id == "install"


async def test_a_repeated_question_reuses_its_query_vector(
    store: WeaviateVectorStore, embedder: Embedder
) -> None:
    counting = CountingEmbedder(embedder)
    retriever = retriever_for(store, counting)
    question = "How do I install the widget server?"
    first = await retriever.search(question)
    again = await retriever.search(question)
    assert counting.texts == 1
    assert [p.document_id for p in again] == [p.document_id for p in first] and first[
        0
    ].document_id == "install"
    await retriever.search("What is a sprocket?")
    assert counting.texts == 2


async def test_a_question_the_documents_do_not_cover_gets_no_passages(
    store: WeaviateVectorStore, embedder: Embedder
) -> None:
    off_topic = "What is the airspeed velocity of an unladen swallow?"
    retriever = retriever_for(store, embedder)
    assert retriever.coverage_judge is MEASURED_JUDGES[embedder.model_id]  # measured for the local model
    for message in (off_topic, "Who won the football match last night?", "thanks!"):
        assert await retriever.search(message) == [], message
    assert (await retriever.search("Which port does the installer ask for?"))[0].document_id == "install"
    assert (await retriever.search("installer port"))[0].document_id == "install"  # chat-style
    for off in ({"search_min_coverage": 0.0}, {"search_min_similarity": 0.0}):
        assert retriever_for(store, embedder, **off).coverage_judge is None
        assert await retriever_for(store, embedder, **off).search(off_topic)  # nearest, unrelated
    # an explicit cosine floor is the rule before the judgement; an explicit threshold replaces the measured
    assert await retriever_for(store, embedder, search_min_similarity=0.9).search("What is a sprocket?") == []
    strict = retriever_for(store, embedder, search_min_coverage=0.999)
    assert strict.coverage_judge is not None and strict.coverage_judge.threshold == 0.999


def test_the_judgement_weighs_similarity_and_the_questions_words() -> None:
    judge = MEASURED_JUDGES["all-MiniLM-L6-v2-onnx-int8"]
    config = "The region where releases are stored. The default region is eu-west-1."
    assert judge.covered("What is the default region?", [close_hit(config, 0.6)])
    assert not judge.covered("What is the weather in Tokyo tomorrow?", [close_hit(config, 0.1)])
    # closer, and holding the question's words, is more likely covered
    low = judge.probability("What is the default region?", [close_hit("Weather report.", 0.3)])
    assert judge.probability("What is the default region?", [close_hit(config, 0.3)]) > low
    assert judge.covered("Any region?", [close_hit(config, None)])  # no similarity known: not judged
    assert coverage_features("default region", [close_hit(config, 0.5), close_hit("x", 0.1)]) == [
        0.5,
        0.4,
        1.0,
        1.0,
        2 / 8,
    ]


def test_a_rare_word_found_counts_more_than_a_common_one() -> None:
    """Off-topic questions about other software share "configure" with any manual, not "dpkg"."""
    assert word_weight("dpkg") > word_weight("configure") > word_weight("the")
    question = "How do I configure dpkg?"
    generic = [close_hit("Configure the server with a file.", 0.4)]
    specific = [close_hit("dpkg installs the files.", 0.4)]
    # each chunk holds one of the two words: the rare one makes the larger share
    assert coverage_features(question, generic)[2] < 0.5 < coverage_features(question, specific)[2]
    judge = MEASURED_JUDGES["all-MiniLM-L6-v2-onnx-int8"]
    assert judge.probability(question, specific) > judge.probability(question, generic)


def close_hit(text: str, similarity: float | None) -> SearchHit:
    return SearchHit("d", 0, text, "T", "", "d.md", 1.0, similarity)


def test_covered_by_similarity_or_by_most_of_the_questions_words() -> None:
    config = "The region where releases are stored. The default region is eu-west-1."
    assert covered("What is the default region?", [close_hit(config, 0.9)], 0.2)
    # a detail of a long chunk: little similarity, but both content words are there
    assert covered("What is the default region?", [close_hit("Weather. " + config, 0.1)], 0.2)
    assert not covered("What is the weather in Tokyo tomorrow?", [close_hit(config, 0.1)], 0.2)
    # one content word proves nothing; no floor or no similarity known means no gate
    assert not covered("Any region?", [close_hit(config, 0.1)], 0.2)
    assert covered("Any region?", [close_hit(config, 0.1)], 0.0)
    assert covered("Any region?", [close_hit(config, None)], 0.2)
    assert content_words("How do I use the Region of the installer?") == {"region", "installer"}


async def test_blank_query_returns_nothing(store: WeaviateVectorStore, embedder: Embedder) -> None:
    assert await retriever_for(store, embedder).search("   ") == []


async def test_empty_index_returns_nothing(make_settings: MakeSettings, embedder: Embedder) -> None:
    async with WeaviateVectorStore(make_settings()) as empty:
        assert await Retriever(empty.settings, empty, embedder).search("widget server") == []


def passage(text: str, title: str, source: str, heading: str = "") -> Passage:
    return Passage(text, title, heading, source, 0.5, source, 0, 0)


def test_passages_are_numbered_with_title_source_and_headings_for_the_model() -> None:
    passages = [
        passage("Run the installer.", "Install guide", "docs/install.md", "Setup > Windows"),
        passage("Invoices go out monthly.", "Billing", "https://wiki.example.com/billing"),
        passage("No title here.", "", "notes.txt"),
    ]
    assert format_numbered(list(enumerate(passages, start=1))) == (
        "[1] Install guide — docs/install.md (Setup > Windows)\nRun the installer.\n\n"
        "[2] Billing — https://wiki.example.com/billing\nInvoices go out monthly.\n\n"
        "[3] notes.txt\nNo title here."
    )
    assert format_numbered([(7, passages[2])]) == "[7] notes.txt\nNo title here."
    assert format_numbered([]) == ""


def hit(doc: str, index: int, text: str, score: float = 0.5) -> SearchHit:
    return SearchHit(doc, index, text, "T", f"T > Part {index}", f"docs/{doc}.md", score)


def test_merge_caps_long_runs_and_keeps_text_without_a_real_overlap() -> None:
    words = [f"Sentence number {i} talks about topic {i}." for i in range(6)]
    passages = merge_adjacent([hit("d", i, words[i], score=0.1 * i) for i in range(6)])

    assert [(p.first_chunk, p.last_chunk) for p in passages] == [(4, 5), (0, 3)]  # best run first
    assert passages[1].text == "\n".join(words[:4])  # no shared text: nothing is dropped
    assert passages[0].score == pytest.approx(0.5) and passages[1].score == pytest.approx(0.3)
    # a short coincidental repeat ("the") is not taken for the chunk overlap
    (joined,) = merge_adjacent([hit("e", 0, "Restart the"), hit("e", 1, "the service now.")])
    assert joined.text == "Restart the\nthe service now."


def test_near_duplicates_are_dropped_but_different_passages_kept() -> None:
    base = " ".join(f"word{i}" for i in range(30))
    passages = merge_adjacent(
        [
            hit("a", 0, base, 0.9),
            hit("b", 0, base.replace("word7", "other"), 0.8),  # 29 of 31 distinct words shared
            hit("c", 0, "Something else entirely about invoices.", 0.7),
        ]
    )
    assert [p.document_id for p in drop_duplicates(passages)] == ["a", "c"]
