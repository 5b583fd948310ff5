"""Turns known failures into one line a user can act on (for the CLI)."""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

from configs.config import ConfigError
from data.vector_store import IndexModelMismatch, StoreUnavailable


def user_message(exc: BaseException) -> str | None:
    """A message for failures users can fix; None for bugs (which keep their traceback)."""
    from data.weaviate_server import WeaviateServerError
    from services.indexer import IndexAlreadyRunning, IndexRunFailed

    if isinstance(
        exc,
        ConfigError
        | StoreUnavailable
        | IndexModelMismatch
        | IndexAlreadyRunning
        | IndexRunFailed
        | WeaviateServerError,
    ):
        return str(exc)
    if isinstance(exc, SQLAlchemyError):
        return f"The conversation database failed: {exc.__class__.__name__}: {exc}. Check DATABASE_URL."
    if isinstance(exc, FileNotFoundError | PermissionError):
        return f"{exc.strerror}: {exc.filename}"
    return None
