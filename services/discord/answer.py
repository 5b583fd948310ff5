"""One `AskService.ask` shown in Discord: the text as it streams, then the answer with its sources and
feedback buttons (and "Ask a human" when the docs did not cover it and the space has experts), or a
message saying what went wrong (never silence).

Shared by answers to messages (`bot`) and `/ask` (`commands`); they differ only in where the
messages go, which the caller's `MessageStream` decides.
"""

from __future__ import annotations

import logging

import discord

from services.chat.contract import Answer, AskFailed, AskService, TextDelta
from services.chat.replies import describe_error
from services.discord.feedback import feedback_view
from services.discord.human import HumanButton
from services.discord.messages import MessageStream, render_answer
from services.insights.outcomes import classify_answer
from services.insights.records import NOT_COVERED
from services.spaces.policy import Policy

log = logging.getLogger(__name__)

CRASH_MESSAGE = "⚠️ Something went wrong while answering ({error}). Please try again."


async def stream_answer(
    chat: AskService,
    key: str,
    question: str,
    user_id: str,
    stream: MessageStream[discord.Message],
    *,
    policy: Policy | None = None,
) -> None:
    """Run one ask in the place's `policy` (its spaces' sources; None: every source) and render its
    events; always leaves an answer or an error message, with "Ask a human" on a "not covered"
    answer when the space has experts.

    Discord's own failures propagate: the stream cannot show them, so the caller reports them in a
    fresh message.
    """
    text = ""
    sources, space = (policy.sources, policy.spaces[0]) if policy is not None else (None, None)
    offer_human = policy is not None and bool(policy.experts)
    try:
        async for event in chat.ask(key, question, user_id=user_id, sources=sources, space=space):
            if isinstance(event, TextDelta):
                text += event.text
                await stream.update(text)
            elif isinstance(event, Answer):
                last = await stream.finish(render_answer(event))
                view = feedback_view(event.answer_id)
                if offer_human and classify_answer(event.text, len(event.sources)) == NOT_COVERED:
                    view = view or discord.ui.View(timeout=None)
                    view.add_item(HumanButton(last.id))
                if view is not None:
                    await _add_view(last, view)
                return
            elif isinstance(event, AskFailed):
                await stream.finish(_with_error(text, event.message))
                return
        failure = "the answer ended unexpectedly"
    except discord.HTTPException:
        raise
    except Exception as exc:
        log.exception("Discord: the ask for %s failed", key)
        failure = f"the answer failed: {describe_error(exc)}"
    await stream.finish(_with_error(text, f"Sorry, {failure}. Please try again."))


async def _add_view(message: discord.Message, view: discord.ui.View) -> None:
    """Put the feedback buttons on the answer's last message; the answer stands without them."""
    try:
        await message.edit(view=view)
    except discord.HTTPException as exc:
        log.warning("Discord: could not add the feedback buttons to message %s (%s)", message.id, exc)


def _with_error(partial: str, message: str) -> str:
    return f"{partial.rstrip()}\n\n⚠️ {message}" if partial.strip() else f"⚠️ {message}"
