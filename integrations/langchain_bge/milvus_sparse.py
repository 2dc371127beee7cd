"""``BGEM3MilvusSparseEmbeddings``: BGE-M3 lexical weights as a ``langchain_milvus``
``BaseSparseEmbedding`` (``dict[int, float]`` outputs)."""

from __future__ import annotations

import asyncio

from bge_core.errors import MissingDependencyError
from langchain_bge.sparse import BGEM3SparseBase

try:
    from langchain_milvus.utils.sparse import BaseSparseEmbedding
except ImportError as exc:
    raise MissingDependencyError("langchain-milvus", "langchain-milvus", "BGEM3MilvusSparseEmbeddings") from exc

__all__ = ["BGEM3MilvusSparseEmbeddings"]


# misc: BaseSparseEmbedding is Any where langchain-milvus is absent (unused where it is installed).
class BGEM3MilvusSparseEmbeddings(BGEM3SparseBase, BaseSparseEmbedding):  # type: ignore[misc,unused-ignore]
    """BGE-M3 sparse embeddings for ``langchain_milvus.Milvus`` (as the ``embedding_function``
    of a sparse field): ``{token_id: weight}`` dicts.

    Share the model with ``BGEEmbeddings(encoder=enc)`` so each text is encoded once. For
    Qdrant use :class:`~langchain_bge.BGEM3SparseEmbeddings`. Needs
    ``pip install 'bge-integrations[langchain-milvus]'`` (langchain-milvus 0.3 with the pymilvus
    versions it works with).
    """

    def embed_documents(self, texts: list[str]) -> list[dict[int, float]]:
        """Lexical weights of documents as ``{token_id: weight}``."""
        return [v.to_dict() for v in self.encode_sparse(texts, query=False)]

    def embed_query(self, query: str) -> dict[int, float]:
        """Lexical weights of a query as ``{token_id: weight}``."""
        return self.encode_sparse_query(query).to_dict()

    async def aembed_documents(self, texts: list[str]) -> list[dict[int, float]]:
        """:meth:`embed_documents` on a worker thread."""
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, query: str) -> dict[int, float]:
        """:meth:`embed_query` on a worker thread."""
        return await asyncio.to_thread(self.embed_query, query)
