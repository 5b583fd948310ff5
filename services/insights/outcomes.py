"""How a stored answer turned out ("not covered" or answered), and what kind a failure message is.

The reliable marker is an answer event recorded when the turn ended; for answers stored before
such events were written (POST /chatkit turns had none at first) the answer itself tells: an answer with
no source annotations was written without a single retrieved passage (the chat service annotates
every passage a search returned when none is cited), the offline model says `NOT_COVERED`, and the
agent is told to say "The documents don't cover this".
"""

from __future__ import annotations

import re

from services.insights.records import ANSWERED, NOT_COVERED, Outcome
from simple_agents.offline_model import NOT_COVERED as OFFLINE_NOT_COVERED

_NOT_COVERED_WORDS = re.compile(
    r"\b(?:documents?|docs|passages?|sources?)\b[^.\n]{0,60}?"
    r"\b(?:don't|don’t|do not|doesn't|doesn’t|does not|didn't|did not)\b[^.\n]{0,30}?\b(?:cover|mention)",
    re.IGNORECASE,
)

# Failure messages come from services.errors.describe_failure and the chat service; their words
# name the part that failed. First match wins, so the specific kinds come first.
_FAILURE_KINDS = (
    ("timeout", re.compile(r"did not (?:finish|answer) within|took longer than", re.I)),
    ("empty_question", re.compile(r"message is empty", re.I)),
    ("no_answer", re.compile(r"ended without an answer", re.I)),
    ("vector_store", re.compile(r"vector store|weaviate", re.I)),
    ("database", re.compile(r"database", re.I)),
    ("history_missing", re.compile(r"history is missing", re.I)),
    ("llm_credentials", re.compile(r"refused the credentials", re.I)),
    ("llm_rate_limit", re.compile(r"rate-limited|out of quota", re.I)),
    ("llm_unreachable", re.compile(r"cannot reach the language model", re.I)),
    ("llm", re.compile(r"language model|the assistant", re.I)),
    ("internal", re.compile(r"internal error|unexpected", re.I)),
)


def classify_answer(text: str, source_count: int) -> Outcome:
    """`not_covered` when the answer rests on no passage or says the documents don't cover it."""
    if source_count == 0 or OFFLINE_NOT_COVERED in text or _NOT_COVERED_WORDS.search(text):
        return NOT_COVERED
    return ANSWERED


def failure_kind(message: str) -> str:
    """A short kind for a failure message ("timeout", "vector_store", "llm", ...), "other" if unknown."""
    for kind, pattern in _FAILURE_KINDS:
        if pattern.search(message):
            return kind
    return "other"
