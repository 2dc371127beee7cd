"""``BGEM3SparseEmbeddings``: BGE-M3 lexical weights as a ``langchain_qdrant.SparseEmbeddings``."""

from __future__ import annotations

import asyncio

from bge_core.errors import MissingDependencyError
from bge_core.types import SparseVector as CoreSparseVector
from langchain_bge.sparse import BGEM3SparseBase

try:
    from langchain_qdrant import SparseEmbeddings, SparseVector
except ImportError as exc:  # pragma: no cover - exercised when langchain-qdrant is missing
    raise MissingDependencyError("langchain-qdrant", "langchain", "BGEM3SparseEmbeddings") from exc

__all__ = ["BGEM3SparseEmbeddings"]


def _to_qdrant(vec: CoreSparseVector) -> SparseVector:
    return SparseVector(indices=vec.indices.tolist(), values=vec.values.tolist())


class BGEM3SparseEmbeddings(BGEM3SparseBase, SparseEmbeddings):
    """BGE-M3 sparse embeddings for ``langchain_qdrant.QdrantVectorStore``
    (``sparse_embedding=`` in ``RetrievalMode.SPARSE`` / ``HYBRID``).

    Returns ``langchain_qdrant.SparseVector`` (token ids sorted, weights > 0; an empty
    vector for texts without known tokens). Share the model with the dense side::

        enc = BGEM3Encoder("BAAI/bge-m3")
        store = QdrantVectorStore(client, "docs", embedding=BGEEmbeddings(encoder=enc),
                                  sparse_embedding=BGEM3SparseEmbeddings(encoder=enc),
                                  retrieval_mode=RetrievalMode.HYBRID)

    For Milvus use :class:`~langchain_bge.BGEM3MilvusSparseEmbeddings` (``dict`` outputs).
    """

    def embed_documents(self, texts: list[str]) -> list[SparseVector]:
        """Lexical weights of documents."""
        return [_to_qdrant(v) for v in self.encode_sparse(texts, query=False)]

    def embed_query(self, text: str) -> SparseVector:
        """Lexical weights of a query."""
        return _to_qdrant(self.encode_sparse_query(text))

    async def aembed_documents(self, texts: list[str]) -> list[SparseVector]:
        """:meth:`embed_documents` on a worker thread."""
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> SparseVector:
        """:meth:`embed_query` on a worker thread."""
        return await asyncio.to_thread(self.embed_query, text)
