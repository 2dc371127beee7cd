"""LlamaIndex adapter for BGE models.

- :class:`BGEEmbedding`: dense embeddings (BGE-M3 or v1.5) as a LlamaIndex ``BaseEmbedding``.
- :func:`bge_m3_sparse_functions`: BGE-M3 lexical weights as ``sparse_doc_fn`` /
  ``sparse_query_fn`` for ``QdrantVectorStore(enable_hybrid=True, ...)``.
- :class:`BGEMilvusSparseFunction` (``bge_m3_milvus_sparse_function``): the same for
  ``MilvusVectorStore(enable_sparse=True, sparse_embedding_function=...)``.
- :class:`BGERerank` / :class:`BGEColBERTRerank`: cross-encoder and M3 ColBERT rerankers as
  ``BaseNodePostprocessor``.
- :class:`BGEHybridRetriever`: a ``BaseRetriever`` over any ``bge_core`` vector index
  (``bge_qdrant.QdrantIndex``, ``bge_milvus.MilvusIndex``).

Every class takes a model name (loaded on first use, and shared by every wrapper that names the
same model with the same options) or an already loaded encoder. Importing this package imports
neither torch nor transformers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bge_core.errors import MissingDependencyError

try:
    import llama_index.core  # noqa: F401
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("llama-index-core", "llama-index", "llama_index_bge") from _exc

from llama_index_bge.embedding import BGEEmbedding
from llama_index_bge.encoder_ref import EncoderRef
from llama_index_bge.rerank import BGEColBERTRerank, BGERerank
from llama_index_bge.retriever import BGEHybridRetriever
from llama_index_bge.sparse import BGEM3SparseFunction, bge_m3_sparse_functions

if TYPE_CHECKING:
    from llama_index_bge.milvus_sparse import (
        BGEMilvusSparseFunction,
        bge_m3_milvus_sparse_function,
    )

__all__ = [
    "BGEColBERTRerank",
    "BGEEmbedding",
    "BGEHybridRetriever",
    "BGEM3SparseFunction",
    "BGEMilvusSparseFunction",
    "BGERerank",
    "EncoderRef",
    "bge_m3_milvus_sparse_function",
    "bge_m3_sparse_functions",
]

_LAZY = {
    # Needs the optional llama-index-vector-stores-milvus package: imported on first access.
    "BGEMilvusSparseFunction": "llama_index_bge.milvus_sparse",
    "bge_m3_milvus_sparse_function": "llama_index_bge.milvus_sparse",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llama_index_bge' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
