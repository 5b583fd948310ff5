"""The offline answer: the documents' sentences that best answer the question, each with its [n],
then at most three short supporting quotes.

Without a language model nothing can be written, but the answer can still lead with what
answers. Every sentence of the best passages is scored against the question by the embedding
model (`SentenceScorer`, the retriever in the app), not by counting the question's words: a
sentence that repeats the question ("Try questions such as: How do I add the bot to Slack?", a
FAQ heading) shares all its words and answers nothing, so questions and sentences that only
restate the question are never shown. Measured in docs/benchmarks.md ("Offline answers").
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from simple_agents.conversation import content_words, fuse_ranked, fusion_weights

NO_LLM_NOTICE = (
    "_No language model is configured, so this is not a written answer: here are the sentences of "
    "the documents that best match the question, and the passages they come from._"
)
NOT_COVERED = "The indexed documents don't seem to cover this: no passage matched"
# The sentences scored: the first of the best passages, in their order (one embedding batch).
# Documentation puts its answers early: on the bench sets the first 12 sentences of the top 3
# passages find the answer as often as all ~46 of them, at a quarter of the cost (~3 ms each).
_SCORED_PASSAGES = 3
_MAX_SENTENCES = 12
# Lead sentences: the best, then up to two more that score nearly as well.
_MAX_LEAD = 3
_LEAD_MARGIN = 0.05
_MAX_QUOTES = 3
_QUOTE_CHARS = 320
_MIN_WORDS = 4
_BLOCK_START = re.compile(r"(?:^|\n\n)(?=\[\d+\] )")
_HEADER = re.compile(r"\[(\d+)\] ")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"\w+")
_LIST_MARKER = re.compile(r"^(?:[-*+•]|\d+[.)])\s+")


class SentenceScorer(Protocol):
    """How well sentences answer a question (services.rag.Retriever in the app)."""

    async def score_sentences(self, query: str, sentences: Sequence[str]) -> list[float]:
        """One score per sentence, higher is better (cosine similarity to the query)."""
        ...


@dataclass(frozen=True)
class Block:
    """One numbered passage of a `search_docs` output."""

    header: str  # "[n] Title — source (Heading)"
    text: str

    @property
    def number(self) -> int:
        match = _HEADER.match(self.header)
        return int(match.group(1)) if match else 0


@dataclass(frozen=True)
class Sentence:
    """A sentence of a block, by its position in the block's text."""

    block: int
    start: int
    end: int
    text: str


async def offline_answer(question: str, searches: Sequence[tuple[str, str]], scorer: SentenceScorer) -> str:
    """Markdown: the no-LLM notice, the lead sentences with their [n], then the supporting quotes.

    `searches` are the (query, `search_docs` output) of this turn, the message alone first. The
    sentences are scored against the query of the search that leads the fusion: for an elliptical
    follow-up ("and in HTTP mode?") that is the one carrying the conversation's terms.
    """
    weights = fusion_weights(question, len(searches))
    blocks = numbered_blocks([output for _, output in searches], weights)
    if not blocks:
        shown = question.strip() or "your question"
        return f"{NO_LLM_NOTICE}\n\n{NOT_COVERED} “{shown}”. Try other words, or index more documents."
    candidates = candidate_sentences(question, blocks)
    leading = max(range(len(searches)), key=lambda i: (weights[i], -i))  # not empty: blocks were found
    lead_query = searches[leading][0] or question
    scores = await scorer.score_sentences(lead_query, [s.text for s in candidates]) if candidates else []
    pairs = sorted(zip(scores, candidates, strict=True), key=lambda pair: -pair[0])
    ranked = [sentence for _, sentence in pairs]
    lead: list[Sentence] = []
    for score, sentence in pairs:
        if len(lead) == _MAX_LEAD or score < pairs[0][0] - _LEAD_MARGIN:
            break
        if all(sentence.text != chosen.text for chosen in lead):  # overlapping chunks repeat text
            lead.append(sentence)
    parts = [NO_LLM_NOTICE]
    if lead:
        parts.append("\n".join(f"- {_LIST_MARKER.sub('', s.text)} [{blocks[s.block].number}]" for s in lead))
    quoted: list[int] = list(dict.fromkeys(s.block for s in lead))
    quoted += [i for i in range(len(blocks)) if i not in quoted]
    for index in quoted[:_MAX_QUOTES]:
        block = blocks[index]
        anchor = next((s for s in ranked if s.block == index), None)
        text = quote(block.text, anchor, question)
        lines = "\n".join(f"> {line}" if line else ">" for line in text.splitlines())
        parts.append(f"**{block.header}**\n{lines}")
    return "\n\n".join(parts)


def candidate_sentences(question: str, blocks: Sequence[Block]) -> list[Sentence]:
    """The sentences the embedding model scores (at most `_MAX_SENTENCES`), from the best passages:
    the one right after a line asking this question (a FAQ's answer), those naming what was asked,
    then each passage's first sentences in turn, so a long first passage cannot crowd out the
    sentence that answers."""
    asked = content_words(question)
    answers_to_question: list[Sentence] = []
    per_block: list[list[Sentence]] = []
    for index, block in enumerate(blocks[:_SCORED_PASSAGES]):
        sentences = sentences_of(index, block.text)
        usable = [s for s in sentences if answers_something(s.text, question)]
        per_block.append(usable)
        for before, after in itertools.pairwise(sentences):
            repeats = before.text.rstrip().endswith("?") and asked <= content_words(before.text)
            if asked and repeats and after in usable:
                answers_to_question.append(after)
    # Then sentences naming what was asked (most of its words first), then the rest in turn.
    naming = [s for usable in per_block for s in usable if asked & content_words(s.text)]
    naming.sort(key=lambda s: -len(asked & content_words(s.text)))
    ordered = [*answers_to_question, *naming]
    for rank in range(max((len(usable) for usable in per_block), default=0)):
        ordered += [usable[rank] for usable in per_block if rank < len(usable)]
    return list(dict.fromkeys(ordered))[:_MAX_SENTENCES]


def numbered_blocks(tool_outputs: Sequence[str], weights: Sequence[float] | None = None) -> list[Block]:
    """The passages in `search_docs` outputs, best first: one search's order, or the weighted
    fusion of several (a follow-up's two searches)."""
    texts: dict[str, str] = {}
    rankings: list[list[str]] = []
    for output in tool_outputs:
        ranking: list[str] = []
        for part in _BLOCK_START.split(output):
            header, _, text = part.strip().partition("\n")
            if _HEADER.match(header) and text.strip() and header not in ranking:
                texts.setdefault(header, text.strip())
                ranking.append(header)
        rankings.append(ranking)
    return [Block(header, texts[header]) for header in fuse_ranked(rankings, weights)]


def sentences_of(block: int, text: str) -> list[Sentence]:
    """The sentences (and lines) of a passage, with their positions."""
    starts = [0, *(match.end() for match in _SENTENCE_END.finditer(text))]
    found = []
    for start, end in zip(starts, [*starts[1:], len(text)], strict=True):
        sentence = text[start:end].strip()
        if sentence:
            found.append(Sentence(block, start, start + len(text[start:end].rstrip()), sentence))
    return found


def answers_something(sentence: str, question: str) -> bool:
    """Whether a sentence can be shown as (part of) an answer: long enough, not a question, and not
    a restatement of the question (all its content words are the question's, or it contains it)."""
    words = _WORD.findall(sentence.lower())
    if len(words) < _MIN_WORDS or sentence.rstrip().endswith("?") or sentence.lstrip().startswith("#"):
        return False
    if "```" in sentence or sentence.lstrip().startswith((">", "|", "$ ", "..")):
        return False  # code, quotes, tables, shell prompts and directives are not prose
    asked = " ".join(_WORD.findall(question.lower()))
    if asked and asked in " ".join(words):
        return False
    own = content_words(sentence)
    return bool(own - content_words(question))


def quote(text: str, anchor: Sentence | None, question: str, limit: int = _QUOTE_CHARS) -> str:
    """A few lines of `text` around `anchor`: the sentence before it (when it adds something),
    the anchor, and what follows up to `limit` characters or the next question in the text."""
    spans = sentences_of(0, text)
    if not spans:
        return text[:limit]
    position = next((i for i, s in enumerate(spans) if anchor and s.start == anchor.start), 0)
    first = position
    before = spans[position - 1] if position > 0 else None
    same_paragraph = before is not None and "\n\n" not in text[before.end : spans[position].start]
    if before is not None and same_paragraph and answers_something(before.text, question):
        first = position - 1
    begin, end = spans[first].start, spans[first].end
    for span in spans[first + 1 :]:
        if span.end - begin > limit or span.text.endswith("?"):
            break
        end = span.end
    result = text[begin:end]
    if len(result) > limit:
        result = result[:limit].rsplit(" ", 1)[0]
    prefix = "… " if begin > 0 else ""
    suffix = " …" if begin + len(result) < len(text.rstrip()) else ""
    return prefix + result + suffix
