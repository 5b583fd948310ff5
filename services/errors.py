"""What went wrong, in words for the user: one message that says what happened and what to do.

Our own errors carry their message (`configs.errors.UserFacingError`); the libraries' errors
(openai, openai-agents, chatkit, SQLAlchemy, the OS) are translated here, once, for every entry
point: the chatkit server's `error` event, `AskFailed` for the chat adapters, and the CLI's
one-line exit.
"""

from __future__ import annotations

from dataclasses import dataclass

import openai
from agents.exceptions import AgentsException, MaxTurnsExceeded, ModelBehaviorError, ModelRefusalError
from chatkit.store import NotFoundError
from sqlalchemy.exc import SQLAlchemyError

from configs.config import Settings
from configs.errors import UserFacingError
from data.errors import StoreUnavailable


@dataclass(frozen=True, slots=True)
class Failure:
    """`expected` failures are the user's or the environment's (no traceback needed in the log)."""

    message: str
    expected: bool = True


def describe_failure(exc: BaseException, settings: Settings) -> Failure:
    """The message for `exc`, looking through wrapped causes for a known one (ours first)."""
    for cause in _causes(exc):
        failure = _describe_one(cause, settings)
        if failure is not None:
            return failure
    return Failure(
        f"Something unexpected went wrong while answering ({type(exc).__name__}: {exc}). "
        "Try again; if it keeps happening, check the server log.",
        expected=False,
    )


def _describe_one(exc: BaseException, settings: Settings) -> Failure | None:
    endpoint = settings.openai_base_url or "the OpenAI API"
    match exc:
        case StoreUnavailable():
            return Failure(f"The vector store is unavailable, so the docs cannot be searched: {exc}")
        case UserFacingError():
            return Failure(str(exc))
        case SQLAlchemyError():
            return Failure(
                f"The conversation database failed ({type(exc).__name__}). "
                "Check DATABASE_URL and that the database is running, then try again."
            )
        case NotFoundError():
            return Failure(f"This conversation's history is missing ({exc}). Start a new conversation.")
        case openai.AuthenticationError() | openai.PermissionDeniedError():
            return Failure(
                f"The language model at {endpoint} refused the credentials ({_status(exc)}). "
                "Check OPENAI_API_KEY."
            )
        case openai.NotFoundError():
            return Failure(
                f"The language model endpoint {endpoint} does not know model '{settings.chat_model}' "
                f"({_status(exc)}). Check CHAT_MODEL and OPENAI_BASE_URL."
            )
        case openai.RateLimitError():
            return Failure(
                f"The language model at {endpoint} is rate-limited or out of quota ({_status(exc)}). "
                "Wait a moment and try again."
            )
        case openai.APITimeoutError():
            return Failure(
                f"The language model at {endpoint} did not answer within {settings.llm_timeout_seconds:g} "
                "seconds. Try again, or raise LLM_TIMEOUT_SECONDS."
            )
        case openai.APIConnectionError():
            return Failure(
                f"Cannot reach the language model at {endpoint}: {exc}. "
                "Check OPENAI_BASE_URL and that the server is running."
            )
        case openai.APIStatusError():
            return Failure(f"The language model at {endpoint} returned an error ({_status(exc)}). Try again.")
        case MaxTurnsExceeded():
            return Failure("The assistant kept searching without settling on an answer. Try rephrasing.")
        case ModelRefusalError():
            return Failure("The language model refused to answer this question.")
        case ModelBehaviorError():
            return Failure(f"The language model returned something unusable ({exc}). Try asking again.")
        case TimeoutError():
            return Failure(
                f"Answering took longer than {settings.llm_timeout_seconds:g} seconds (LLM_TIMEOUT_SECONDS). "
                "Try again or raise LLM_TIMEOUT_SECONDS."
            )
        case FileNotFoundError() | PermissionError() if exc.filename:
            return Failure(f"{exc.strerror}: {exc.filename}")
        case AgentsException() if exc.__cause__ is None and exc.__context__ is None:
            return Failure(f"The assistant failed: {exc}. Try asking again.", expected=False)
    return None


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc` and the exceptions it wraps, outermost first (cycle-safe)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _status(exc: openai.APIStatusError) -> str:
    message = getattr(exc, "message", "") or ""
    return f"HTTP {exc.status_code}: {message}" if message else f"HTTP {exc.status_code}"


def user_message(exc: BaseException, settings: Settings) -> str | None:
    """The CLI's one line for a failure a user can act on; None for a bug (it keeps its traceback)."""
    failure = describe_failure(exc, settings)
    return failure.message if failure.expected else None
