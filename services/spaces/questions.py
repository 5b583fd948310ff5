"""Is a message a question? What `auto` mode answers without being asked, on every platform.

A message ending with "?" (after markup and emphasis) or starting with a question word. Chatter
("thanks!", "deployed 🎉") stays unanswered: a bot replying to every message in a channel gets
removed from it. Platform markup (Slack's `<@U…>`, Discord's `<@123>`) is ignored.
"""

from __future__ import annotations

import re

__all__ = ["looks_like_question"]

QUESTION_WORDS = frozenset(
    "what how why when where who whom whose which is are was were can could should would will may does did "
    "do has have any anyone anybody".split()
)
_MARKUP = re.compile(r"<[^>]*>")  # mentions, channel links and URLs in Slack's and Discord's markup


def looks_like_question(text: str) -> bool:
    plain = _MARKUP.sub(" ", text).strip()
    if not plain:
        return False
    if plain.rstrip("*_~ ").endswith("?"):
        return True
    first = re.split(r"[^\w']+", plain.lower(), maxsplit=1)[0]
    return first in QUESTION_WORDS
