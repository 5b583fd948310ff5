"""One `AskService.ask` shown in Discord: the text as it streams, then the answer with its sources and
feedback buttons, or a message saying what went wrong (never silence).

Shared by answers to messages (`bot`) and `/ask` (`commands`); they differ only in where the
messages go, which the caller's `MessageStream` decides.
"""

from __future__ import annotations

import logging

import discord

from services.chat.contract import Answer, AskFailed, AskService, TextDelta
from services.chat.replies import describe_error
from services.discord.feedback import feedback_view
from services.discord.messages import MessageStream, render_answer

log = logging.getLogger(__name__)

CRASH_MESSAGE = "⚠️ Something went wrong while answering ({error}). Please try again."


def conversation_key(guild_id: int | None, channel_id: int) -> str:
    """One thread, channel or DM is one chatkit conversation: `discord:{guild_id or 'dm'}:{channel_id}`."""
    return f"discord:{guild_id if guild_id is not None else 'dm'}:{channel_id}"


async def stream_answer(
    chat: AskService, key: str, question: str, user_id: str, stream: MessageStream[discord.Message]
) -> None:
    """Run one ask and render its events; always leaves an answer or an error message.

    Discord's own failures propagate: the stream cannot show them, so the caller reports them in a
    fresh message.
    """
    text = ""
    try:
        async for event in chat.ask(key, question, user_id=user_id):
            if isinstance(event, TextDelta):
                text += event.text
                await stream.update(text)
            elif isinstance(event, Answer):
                last = await stream.finish(render_answer(event))
                view = feedback_view(event.answer_id)
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
