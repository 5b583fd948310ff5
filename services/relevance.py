"""Whether search hits are about the question at all, so a question the documents don't cover
gets "not covered" instead of the nearest, unrelated passages (the fused score can't tell: it is
normalised per question)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from data.embeddings import LOCAL_MODEL_ID
from data.records import SearchHit

_WORD = re.compile(r"\w+")
# Below this cosine similarity the closest chunk is unrelated to the question; measured per model
# by `python -m bench --parts relevance` (docs/benchmarks.md, "Questions the documents don't cover").
MEASURED_MIN_SIMILARITY = {LOCAL_MODEL_ID: 0.15}
# ... unless one of the chunks holds this share of the question's content words.
KEYWORD_SHARE = 2 / 3
# English function words, left out of the keyword check (a stop-word package would be a dependency
# for these few lines).
_FUNCTION_WORDS = frozenset(
    "the and for are was were been being has have had does did doing can could should would will "
    "shall may might must not nor but yet any all each some such than that this these those there "
    "their them they then what which who whom whose when where why how with without within into "
    "onto from about above below over under again further once here both few more most other own "
    "same too very you your yours our ours its his her hers she him just also only out off per "
    "via use using used get got make made need want like one ones".split()
)


def covered(question: str, hits: Sequence[SearchHit], min_similarity: float) -> bool:
    """Whether the hits are about the question: a chunk at least `min_similarity` close to it, or
    one holding most of its content words (a short question about a detail of a long chunk has a
    low similarity, but its words are there)."""
    best = max((hit.similarity for hit in hits if hit.similarity is not None), default=None)
    if min_similarity <= 0 or best is None or best >= min_similarity:
        return True
    return best_keyword_share(question, hits) >= KEYWORD_SHARE


def best_keyword_share(question: str, hits: Sequence[SearchHit]) -> float:
    """The largest share of the question's content words found in one hit (0 when it has fewer
    than two: one common word proves nothing)."""
    words = content_words(question)
    if len(words) < 2:
        return 0.0
    return max((len(words & content_words(hit.text)) / len(words) for hit in hits), default=0.0)


def content_words(text: str) -> frozenset[str]:
    """Lower-cased words of 3+ letters that are not function words."""
    return frozenset(w for w in _WORD.findall(text.lower()) if len(w) > 2 and w not in _FUNCTION_WORDS)
