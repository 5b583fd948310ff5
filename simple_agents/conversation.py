"""What a follow-up leaves out: the offline model's searches for a message in a conversation, and
how their results are fused.

"and in HTTP mode?" after "How do I add the bot to Slack?" is about Slack; searched alone it finds
whatever page says most about HTTP mode. The offline model therefore runs two searches for a
message in a conversation: the message alone, and the message plus the key terms the previous
turns carried (the title of the passage the last answer quoted first, then the earlier questions'
words). Whether the message is elliptical decides which of the two leads in the fusion; both
always run, so a wrong guess reorders the passages instead of losing them. Measured on the `git`
follow-up set (docs/benchmarks.md, "Follow-up questions").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# A follow-up's second search carries at most this many key terms of the turns before it.
CARRIED_TERMS = 8
# Reciprocal-rank fusion of a message's searches: each ranking adds weight / (RRF_K + rank).
RRF_K = 60
# The search that leads the fusion counts twice: enough to put its best passage first, while a
# passage both searches rank high still beats either one's second best.
LEAD_WEIGHT = 2.0
# English function words, left out of key terms (a stop-word package would be a dependency for
# these few lines).
FUNCTION_WORDS = frozenset(
    "the and for are was were been being has have had does did doing can could should would will "
    "shall may might must not nor but yet any all each some such than that this these those there "
    "their them they then what which who whom whose when where why how with without within into "
    "onto from about above below over under again further once here both few more most other own "
    "same too very you your yours our ours its his her hers she him just also only out off per "
    "via use using used get got make made need want like one ones".split()
)
# Words that point back at something said before ("is it secure?", "which files does it read?").
_REFERENCES = frozenset("it its that this these those they them their there".split())
_CONTINUATIONS = ("and ", "also ", "but ", "what about ", "how about ", "then ")
_WORD = re.compile(r"\w+")
_QUOTED_TITLE = re.compile(r"^\*\*\[\d+\] (.+?)(?: — .*)?\*\*$", re.MULTILINE)


def content_words(text: str) -> frozenset[str]:
    """Lower-cased words of 3+ letters that are not function words."""
    return frozenset(w for w in _WORD.findall(text.lower()) if _is_content_word(w))


def key_terms(text: str) -> list[str]:
    """The content words of `text` in order of appearance, each once."""
    return list(dict.fromkeys(w for w in _WORD.findall(text.lower()) if _is_content_word(w)))


def is_elliptical(message: str) -> bool:
    """Whether the message leans on what came before: two words at most, one content word at most,
    or a few content words with a word pointing back ("it", "that") or a continuation ("and ...")."""
    words = _WORD.findall(message.lower())
    content = content_words(message)
    if len(words) <= 2 or len(content) <= 1:
        return True
    lowered = message.strip().lower()
    return len(content) <= 3 and (bool(_REFERENCES.intersection(words)) or lowered.startswith(_CONTINUATIONS))


def search_queries(
    message: str, earlier_questions: Sequence[str] = (), previous_answer: str = ""
) -> list[str]:
    """The searches for a message: the message alone and, in a conversation, the message plus the
    key terms the previous turns carried that it leaves out (at most `CARRIED_TERMS`).

    Carried, in order: the title of the passage `previous_answer` quoted first (what "it" most
    likely is), then the words of `earlier_questions` (newest first). The second search keeps the
    whole message and adds only missing terms, so the new message's words still weigh most in it.
    """
    message = message.strip()
    if not message:
        return []
    have = content_words(message)
    carried: list[str] = []
    for source in [*quoted_titles(previous_answer)[:1], *earlier_questions]:
        for term in key_terms(source):
            if term not in have and term not in carried and len(carried) < CARRIED_TERMS:
                carried.append(term)
    return [message, f"{message} {' '.join(carried)}"] if carried else [message]


def fusion_weights(message: str, searches: int) -> list[float]:
    """Weights for `fuse_ranked` over the rankings of `search_queries(message, ...)`: the search
    with the carried terms leads for an elliptical message, the message alone otherwise."""
    if searches <= 1:
        return [1.0] * searches
    if is_elliptical(message):
        return [1.0, *[LEAD_WEIGHT] * (searches - 1)]
    return [LEAD_WEIGHT, *[1.0] * (searches - 1)]


def fuse_ranked(rankings: Sequence[Sequence[str]], weights: Sequence[float] | None = None) -> list[str]:
    """One ranking from several (weighted reciprocal-rank fusion): what the searches agree on comes
    first; on a tie the earlier ranking leads."""
    weights = weights if weights is not None else [1.0] * len(rankings)
    scores: dict[str, float] = {}
    for weight, ranking in zip(weights, rankings, strict=True):
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + weight / (RRF_K + rank)
    order = {key: position for position, key in enumerate(k for ranking in rankings for k in ranking)}
    return sorted(scores, key=lambda key: (-scores[key], order[key]))


def quoted_titles(answer: str) -> list[str]:
    """The titles of the passages an offline answer quoted (its `**[n] Title — source**` lines)."""
    return _QUOTED_TITLE.findall(answer)


def _is_content_word(word: str) -> bool:
    return len(word) > 2 and word not in FUNCTION_WORDS
