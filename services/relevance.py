"""Whether search hits are about the question at all, so a question the documents don't cover
gets "not covered" instead of the nearest, unrelated passages (the fused score can't tell: it is
normalised per question).

The judgement (`CoverageJudge`) is a logistic model over a few numbers of the fetched chunks
(`coverage_features`), fitted on a development set of covered and off-topic messages and given
the threshold that keeps 95% of the covered ones answered. The question's words count by how rare
they are in English (`word_weight`): off-topic questions about other software share "install",
"configure" or "package" with any manual, but not "dpkg" or "debconf"; `python -m bench --parts coverage`
fits it and measures it on a separate report set (docs/benchmarks.md, "Is this covered?"). The
cosine floor with the content-word rescue (`covered`) is the rule it replaced, still applied when
SEARCH_MIN_SIMILARITY is set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from wordfreq import zipf_frequency

from data.embeddings import LOCAL_MODEL_ID
from data.records import SearchHit
from simple_agents.conversation import content_words

# The rule before the judgement: below this cosine similarity the closest chunk was taken as
# unrelated (`python -m bench --parts relevance`); the bench compares the judgement with it.
MEASURED_MIN_SIMILARITY = {LOCAL_MODEL_ID: 0.15}
# ... unless one of the chunks holds this share of the question's content words.
KEYWORD_SHARE = 2 / 3


def covered(question: str, hits: Sequence[SearchHit], min_similarity: float) -> bool:
    """Whether the hits are about the question: a chunk at least `min_similarity` close to it, or
    one holding most of its content words (a short question about a detail of a long chunk has a
    low similarity, but its words are there)."""
    best = max((hit.similarity for hit in hits if hit.similarity is not None), default=None)
    if min_similarity <= 0 or best is None or best >= min_similarity:
        return True
    return best_keyword_share(question, hits) >= KEYWORD_SHARE


# What the coverage judgement looks at, in the order of `CoverageJudge.weights`.
FEATURES = (
    "best cosine similarity",
    "best similarity minus the median of the fetched chunks",
    "largest share of the question's content words in one chunk, each word weighted by its rarity",
    "share of the question's content words found in any chunk",
    "content words in the question (up to 8, as a share of 8)",
)


def coverage_features(question: str, hits: Sequence[SearchHit]) -> list[float]:
    """The numbers `CoverageJudge` weighs (see `FEATURES`): how close the best chunk is, how much it
    stands out from the rest, and how much of the question the chunks' words hold."""
    similarities = sorted((h.similarity for h in hits if h.similarity is not None), reverse=True)
    best = similarities[0] if similarities else 0.0
    median = similarities[len(similarities) // 2] if similarities else 0.0
    words = content_words(question)
    in_hits = [words & content_words(hit.text) for hit in hits] if words else []
    weights = {word: word_weight(word) for word in words}
    total = sum(weights.values())
    share = max((sum(weights[w] for w in found) / total for found in in_hits), default=0.0)
    anywhere = len(frozenset().union(*in_hits)) / len(words) if in_hits else 0.0
    return [best, best - median, share, anywhere, min(len(words), 8) / 8]


# `word_weight`: a word's Zipf frequency in English (log10 of its count per billion words, 0 when
# unlisted) is subtracted from this, with a floor, so "install" (Zipf 4.1) weighs 3.9 and "dpkg" 8.
RAREST_ZIPF = 8.0
COMMONEST_WEIGHT = 0.5


def word_weight(word: str) -> float:
    """How much finding `word` in a chunk says that the chunk is about the question: the rarer the
    word in English, the more. The small English list of `wordfreq` (~29,000 words, ~4 MB loaded):
    a word missing from it (a command, an API name) weighs most, and the dev set abstained more with
    it than with the large list."""
    return max(COMMONEST_WEIGHT, RAREST_ZIPF - zipf_frequency(word, "en", wordlist="small"))


def best_keyword_share(question: str, hits: Sequence[SearchHit]) -> float:
    """The largest share of the question's content words found in one hit (0 when it has fewer
    than two: one common word proves nothing)."""
    words = content_words(question)
    if len(words) < 2:
        return 0.0
    return max((len(words & content_words(hit.text)) / len(words) for hit in hits), default=0.0)


@dataclass(frozen=True)
class CoverageJudge:
    """P(the documents cover the question) = logistic(bias + weights · `coverage_features`)."""

    weights: tuple[float, ...]
    bias: float
    threshold: float  # answer only at or above this probability

    def probability(self, question: str, hits: Sequence[SearchHit]) -> float:
        features = coverage_features(question, hits)
        z = self.bias + sum(w * f for w, f in zip(self.weights, features, strict=True))
        return 1.0 / (1.0 + math.exp(-z))

    def covered(self, question: str, hits: Sequence[SearchHit]) -> bool:
        """Whether to answer from the hits; hits without similarities (or none) are not judged."""
        if not any(hit.similarity is not None for hit in hits):
            return True
        return self.probability(question, hits) >= self.threshold


# Fitted by `python -m bench --parts coverage` for the local model (FEATURES order); on the report
# set its threshold answers 97% of covered questions and abstains on 92% of off-topic messages.
MEASURED_JUDGES = {
    LOCAL_MODEL_ID: CoverageJudge(
        weights=(8.3519, 0.4521, 4.4755, -0.0919, -0.0446), bias=-6.3065, threshold=0.36
    )
}
