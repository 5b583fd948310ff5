"""What every chat adapter says outside an answer: thanks for a vote, and a failure in one line.

Slack and Discord show these words alike; each adapter only formats and sends them.
"""

from __future__ import annotations

import logging

from services.chat.contract import AskService

log = logging.getLogger(__name__)

THANKS_UP = "Thanks for the feedback!"
THANKS_DOWN = "Thanks, noted: that answer was not helpful."
FEEDBACK_NOT_STORED = "Sorry, I could not store your feedback ({error}). Please try again later."
DETAIL_LIMIT = 300  # characters of an exception's text: enough to act on, short enough for a chat line


def describe_error(exc: BaseException) -> str:
    """`Type: text` (or just `Type`), so the user can quote it and the log can be searched for it."""
    text = str(exc).strip()[:DETAIL_LIMIT]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def record_vote(chat: AskService, answer_id: str, *, positive: bool, user_id: str | None) -> str:
    """Store a 👍/👎 and return what to tell the voter; a failing store is told, never raised.

    A click must always get an answer: a button that does nothing looks broken.
    """
    try:
        await chat.record_feedback(answer_id, positive=positive, user_id=user_id)
    except Exception as exc:
        log.exception("Could not store feedback on %s", answer_id)
        return FEEDBACK_NOT_STORED.format(error=describe_error(exc))
    return THANKS_UP if positive else THANKS_DOWN
