"""Every error the data layer raises on purpose, in one place for the layers above to catch.

The ones whose message tells the person running the bot what to do are `UserFacingError`s, so the
CLI and the chat adapters show them as they are. `IndexWriteError` is not: its message is
Weaviate's own diagnosis, and the indexer wraps it into a run failure that says what still serves.
"""

from __future__ import annotations

from configs.errors import UserFacingError


class StoreUnavailable(UserFacingError):
    """The vector store cannot be reached; the message says where it was expected."""


class IndexModelMismatch(UserFacingError):
    """The index was built with another embedding model; the message tells the user to reindex."""


class IndexSchemaOutdated(IndexModelMismatch):
    """The index was built by an older version (its chunks lack a field this one needs): an
    incremental run rebuilds it, as for a model change."""


class WeaviateServerError(UserFacingError):
    """The embedded Weaviate server is missing, did not start, or died; the message says how to fix it."""


class EmbeddingError(UserFacingError):
    """Embedding failed (model missing, provider error); the message says what to do."""


class IndexWriteError(Exception):
    """Weaviate rejected a write; the message carries Weaviate's first error messages."""


class DatabaseUnavailable(UserFacingError):
    """The conversation database could not be used; the message names it (without a password)."""
