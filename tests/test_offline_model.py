"""The offline answer: which sentences lead it, what is quoted, and how it is streamed.

Sentences are scored by the real local embedder (as the retriever scores them in the app).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from data.embeddings import Embedder
from simple_agents.offline_answer import (
    NO_LLM_NOTICE,
    NOT_COVERED,
    answers_something,
    offline_answer,
    quote,
    sentences_of,
)
from simple_agents.offline_model import _pieces

GETTING_STARTED = (
    "Getting started with the docs bot. Try questions such as: How do I add the bot to Slack? "
    "You can also ask it about deployment.\n\n"
    "To add the bot to Slack, create a Slack app from the manifest and install it to your workspace. "
    "Then invite it to a channel with /invite @docs-bot."
)


class EmbedderScorer:
    """Cosine similarity with the real embedder, as `Retriever.score_sentences` computes it."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.calls: list[int] = []

    async def score_sentences(self, query: str, sentences: Sequence[str]) -> list[float]:
        self.calls.append(len(sentences))
        vectors = np.asarray(await self.embedder.embed_documents(list(sentences)))
        return [float(s) for s in vectors @ np.asarray(await self.embedder.embed_query(query))]


@pytest.fixture
def scorer(embedder: Embedder) -> EmbedderScorer:
    return EmbedderScorer(embedder)


async def test_the_answer_leads_with_what_answers_not_with_text_repeating_the_question(
    scorer: EmbedderScorer,
) -> None:
    output = f"[1] Getting started — docs/start.md\n{GETTING_STARTED}"
    answer = await offline_answer(
        "How do I add the bot to Slack?", [("add the bot to Slack", output)], scorer
    )

    notice, lead, *quotes = answer.split("\n\n")
    assert notice == NO_LLM_NOTICE
    assert lead.startswith(
        "- To add the bot to Slack, create a Slack app from the manifest"
    ) and lead.endswith("[1]")
    assert "Try questions such as" not in answer
    assert quotes[0].startswith("**[1] Getting started — docs/start.md**\n> ")
    assert "> … To add the bot to Slack" in quotes[0]  # the quote starts at the answer


async def test_lead_sentences_cite_their_passages_and_at_most_three_passages_are_quoted(
    scorer: EmbedderScorer,
) -> None:
    blocks = [
        "[1] Parking — docs/parking.md\nVisitors park in the north garage next to the lobby entrance.",
        "[2] Ports — docs/ports.md\nThe widget server listens on port 8443 by default after installation.",
        "[3] Lunch — docs/lunch.md\nLunch is served in the canteen on the ground floor from noon.",
        "[4] Plants — docs/plants.md\nThe office plants are watered every Friday by the facilities team.",
        "[5] Firewall — docs/firewall.md\nOpen port 8443 in the firewall so clients reach the widget server.",
    ]
    question = "Which port does the widget server listen on?"
    answer = await offline_answer(question, [(question, "\n\n".join(blocks))], scorer)

    lead = answer.split("\n\n")[1]
    assert lead.startswith("- The widget server listens on port 8443 by default after installation. [2]")
    headers = [line for line in answer.splitlines() if line.startswith("**[")]
    assert len(headers) == 3 and headers[0].startswith("**[2] Ports")
    assert scorer.calls == [3]  # one batch: the sentences of the best three passages


async def test_no_passage_means_not_covered(scorer: EmbedderScorer) -> None:
    answer = await offline_answer(
        "How do I bake bread?", [("bread", "No matching passages were found.")], scorer
    )
    assert answer.startswith(f"{NO_LLM_NOTICE}\n\n{NOT_COVERED} “How do I bake bread?”.")
    assert scorer.calls == []


def test_a_quote_is_the_answering_sentence_in_context_up_to_the_next_question() -> None:
    text = (
        "Backups run every night at two. They are kept for thirty days in the backup bucket. "
        "Restore one with the restore command. How do I delete a backup? Use the prune command."
    )
    anchor = next(s for s in sentences_of(0, text) if s.text.startswith("They are kept"))
    shown = quote(text, anchor, "How long are backups kept?")
    assert shown == (
        "Backups run every night at two. They are kept for thirty days in the backup bucket. "
        "Restore one with the restore command. …"
    )
    assert quote("x " * 400, None, "q").endswith(" …") and len(quote("x " * 400, None, "q")) <= 320 + 2


@pytest.mark.parametrize(
    ("sentence", "shown"),
    [
        ("Try questions such as: How do I add the bot to Slack?", False),  # a question
        ("How do I add the bot to Slack", False),  # the question itself, without its mark
        ("The bot and Slack, to add.", False),  # only the question's own words
        ("## Adding the bot to Slack workspace channels", False),  # a heading
        ("Too short.", False),
        ("``` You can also name the field that holds the URL to go to.", False),  # code
        ("$ git add Documentation/*.txt and more of the same", False),  # a shell prompt
        ("Create a Slack app from the manifest and install it.", True),
    ],
)
def test_which_sentences_can_answer(sentence: str, shown: bool) -> None:
    assert answers_something(sentence, "How do I add the bot to Slack?") is shown


async def test_answer_streams_one_piece_per_block_and_loses_nothing(scorer: EmbedderScorer) -> None:
    output = (
        "[1] A — a.md\nPorts one is the first port here.\n\n[2] B — b.md\nPorts two is the second port here."
    )
    answer = await offline_answer("ports", [("ports", output)], scorer)
    pieces = _pieces(answer)
    assert "".join(pieces) == answer
    assert len(pieces) == answer.count("\n\n") + 1
    assert pieces[0].startswith(NO_LLM_NOTICE)
