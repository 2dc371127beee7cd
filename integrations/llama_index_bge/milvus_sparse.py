"""BGE-M3 lexical weights as the ``sparse_embedding_function`` of LlamaIndex's ``MilvusVectorStore``.

Needs ``llama-index-vector-stores-milvus``. Notes on the installed store (1.2):

- It calls ``encode_documents([node.text])`` once per node on the node's plain text, while
  ``VectorStoreIndex`` embeds ``node.get_content(metadata_mode=MetadataMode.EMBED)``. For nodes
  whose embed text equals their text (no metadata, or metadata excluded from embedding) each
  node goes through the model once; otherwise the sparse side encodes the plain text again.
- Milvus refuses sparse vectors without a non-zero entry. A text with no lexical weights
  (``""``, only unknown tokens) is sent as one entry of weight ``EMPTY_WEIGHT`` at the
  tokenizer's padding id; BGE-M3 never gives special tokens a weight, so it scores 0 against
  every query.
- In ``VectorStoreQueryMode.SPARSE`` the store sends ``drop_ratio_search=0.2``, which Milvus Lite
  rejects ("only drop_ratio_search=0 is supported"). Use ``HYBRID`` mode (dense + sparse, RRF)
  with Milvus Lite, or :class:`~llama_index_bge.BGEHybridRetriever` over a
  ``bge_milvus.MilvusIndex`` with ``mode="sparse"``; SPARSE mode works on a Milvus server.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bge_core.errors import MissingDependencyError
from bge_core.holder import ModelHolder
from bge_core.types import SparseVector
from llama_index_bge.sparse import resolve_m3_ref, sparse_vectors

try:
    from llama_index.vector_stores.milvus.utils import BaseSparseEmbeddingFunction
except ImportError as _exc:
    raise MissingDependencyError("llama-index-vector-stores-milvus", "llama-index", "BGEMilvusSparseFunction") from _exc

__all__ = ["EMPTY_WEIGHT", "BGEMilvusSparseFunction", "bge_m3_milvus_sparse_function"]

#: Weight of the placeholder entry sent for texts without lexical weights.
EMPTY_WEIGHT = 1e-30


class BGEMilvusSparseFunction(BaseSparseEmbeddingFunction):
    """BGE-M3 lexical weights as ``{token_id: weight}`` dicts for ``MilvusVectorStore``.

    Args:
        encoder: a ``BGEM3Encoder``, a :class:`~llama_index_bge.BGEEmbedding` (shares its
            model) or a model name (loaded on first use).
    """

    def __init__(
        self,
        encoder: Any = "BAAI/bge-m3",
        *,
        device: str | None = None,
        dtype: str | None = None,
        max_length: int | None = None,
    ) -> None:
        self.ref: ModelHolder = resolve_m3_ref(encoder, device=device, dtype=dtype, max_length=max_length)

    def _dicts(self, texts: list[str], *, query: bool) -> list[dict[int, float]]:
        vecs = sparse_vectors(self.ref, texts, query=query)
        return [self._to_dict(v) for v in vecs]

    def _to_dict(self, vec: SparseVector) -> dict[int, float]:
        if len(vec) > 0:
            return vec.to_dict()
        pad = getattr(getattr(self.ref.get(), "tokenizer", None), "pad_token_id", None)
        return {int(pad) if pad is not None else 0: EMPTY_WEIGHT}

    def encode_queries(self, queries: list[str]) -> list[dict[int, float]]:
        """Lexical weights of ``queries``."""
        return self._dicts(queries, query=True)

    def encode_documents(self, documents: list[str]) -> list[dict[int, float]]:
        """Lexical weights of ``documents``."""
        return self._dicts(documents, query=False)

    async def async_encode_queries(self, queries: list[str]) -> list[dict[int, float]]:
        """Async :meth:`encode_queries` (runs in a worker thread)."""
        return await asyncio.to_thread(self.encode_queries, queries)

    async def async_encode_documents(self, documents: list[str]) -> list[dict[int, float]]:
        """Async :meth:`encode_documents` (runs in a worker thread)."""
        return await asyncio.to_thread(self.encode_documents, documents)

    def __repr__(self) -> str:
        return f"BGEMilvusSparseFunction({self.ref.name!r})"


def bge_m3_milvus_sparse_function(encoder: Any = "BAAI/bge-m3", **options: Any) -> BGEMilvusSparseFunction:
    """A :class:`BGEMilvusSparseFunction` for ``MilvusVectorStore(enable_sparse=True, ...)``."""
    return BGEMilvusSparseFunction(encoder, **options)
