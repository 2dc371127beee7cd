"""Qdrant adapter of bge-integrations: BGE-M3 dense + sparse + ColBERT in one collection.

``QdrantIndex(client, "docs", encoder)`` stores named vectors ``dense`` (cosine), ``sparse``
(M3 lexical weights) and ``colbert`` (multivector, MaxSim) and searches them with one
``query_points`` call per search (dense, sparse, server-side RRF/DBSF hybrid, or hybrid
candidates reranked by ColBERT through a nested prefetch). ``AsyncQdrantIndex`` does the same
over an ``AsyncQdrantClient``.

Importing this package is cheap: ``qdrant-client`` loads with the first class you use, and a
missing install raises :class:`bge_core.errors.MissingDependencyError` naming the extra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bge_qdrant.async_store import AsyncQdrantStore
    from bge_qdrant.edge_index import QdrantEdgeIndex
    from bge_qdrant.edge_store import EdgeStore
    from bge_qdrant.index import AsyncQdrantIndex, QdrantIndex
    from bge_qdrant.layout import COLBERT_MAX_FLOATS, QdrantLayout
    from bge_qdrant.store import QdrantStore

__all__ = [
    "COLBERT_MAX_FLOATS",
    "AsyncQdrantIndex",
    "AsyncQdrantStore",
    "EdgeStore",
    "QdrantEdgeIndex",
    "QdrantIndex",
    "QdrantLayout",
    "QdrantStore",
]

_LAZY = {
    "QdrantIndex": "bge_qdrant.index",
    "AsyncQdrantIndex": "bge_qdrant.index",
    "QdrantStore": "bge_qdrant.store",
    "AsyncQdrantStore": "bge_qdrant.async_store",
    "QdrantLayout": "bge_qdrant.layout",
    "COLBERT_MAX_FLOATS": "bge_qdrant.layout",
    "QdrantEdgeIndex": "bge_qdrant.edge_index",
    "EdgeStore": "bge_qdrant.edge_store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bge_qdrant' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
