"""langchain_bge: BGE models (BGE-M3 dense + sparse + ColBERT, v1.5, rerankers) for LangChain.

- :class:`BGEEmbeddings`: dense ``Embeddings`` with the right query instruction per model.
- :class:`BGEM3SparseEmbeddings`: M3 lexical weights for ``langchain_qdrant`` (hybrid mode).
- :class:`BGEM3MilvusSparseEmbeddings`: the same for ``langchain_milvus`` (``dict`` outputs).
- :class:`BGERerank` / :class:`BGEColBERTRerank`: cross-encoder and ColBERT document compressors.
- :class:`BGEHybridRetriever`: dense + sparse + ColBERT (+ rerank) search over any BGE index.

Wrappers that share one M3 encoder encode each text once for dense and sparse. Importing
this package loads no model and does not import torch; the store-specific sparse classes
import their LangChain integration package only when first accessed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bge_core.errors import MissingDependencyError

try:
    import langchain_core  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised without langchain-core
    raise MissingDependencyError("langchain-core", "langchain") from exc

if TYPE_CHECKING:
    from langchain_bge.embeddings import BGEEmbeddings
    from langchain_bge.milvus_sparse import BGEM3MilvusSparseEmbeddings
    from langchain_bge.qdrant_sparse import BGEM3SparseEmbeddings
    from langchain_bge.rerank import BGEColBERTRerank, BGERerank
    from langchain_bge.retriever import BGEHybridRetriever
    from langchain_bge.sparse import BGEM3SparseBase

__all__ = [
    "BGEColBERTRerank",
    "BGEEmbeddings",
    "BGEHybridRetriever",
    "BGEM3MilvusSparseEmbeddings",
    "BGEM3SparseBase",
    "BGEM3SparseEmbeddings",
    "BGERerank",
]

_LAZY = {
    "BGEEmbeddings": "langchain_bge.embeddings",
    "BGEM3SparseBase": "langchain_bge.sparse",
    "BGEM3SparseEmbeddings": "langchain_bge.qdrant_sparse",
    "BGEM3MilvusSparseEmbeddings": "langchain_bge.milvus_sparse",
    "BGERerank": "langchain_bge.rerank",
    "BGEColBERTRerank": "langchain_bge.rerank",
    "BGEHybridRetriever": "langchain_bge.retriever",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'langchain_bge' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
