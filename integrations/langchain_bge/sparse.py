"""The shared part of the sparse (lexical weights) wrappers of BGE-M3.

LangChain's two sparse interfaces disagree on return types: ``langchain_qdrant`` wants its
``SparseVector`` from ``embed_query``/``embed_documents``, ``langchain_milvus`` wants
``dict[int, float]`` from methods of the same names. One class cannot honour both with one
return type per method, so each store gets its own small class
(:class:`~langchain_bge.BGEM3SparseEmbeddings`, :class:`~langchain_bge.BGEM3MilvusSparseEmbeddings`)
on top of :class:`BGEM3SparseBase`, which owns the model and returns ``bge_core`` vectors.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from bge_core.holder import ModelHolder
from langchain_bge.embeddings import check_query, check_texts, embedding_holder

if TYPE_CHECKING:
    from bge_core.index import IndexEncoder
    from bge_core.types import SparseVector

__all__ = ["BGEM3SparseBase"]


class BGEM3SparseBase:
    """BGE-M3 lexical weights, through the shared one-pass cache of the encoder.

    When a :class:`~langchain_bge.BGEEmbeddings` wraps the same encoder, a text embedded by
    one wrapper is served to the other from the cache: one forward pass per text.

    Args:
        model: hub id or local folder of a BGE-M3 checkpoint, loaded on first use
            (default ``"BAAI/bge-m3"``).
        encoder: a loaded ``BGEM3Encoder``, or another langchain_bge wrapper whose model to
            share (for example the ``BGEEmbeddings`` of the same store). Pass ``model`` or
            ``encoder``, not both.
        device, dtype, batch_size, max_length: encoder options when loading ``model``.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        encoder: Any = None,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 32,
        max_length: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.encoder_holder: ModelHolder = embedding_holder(
            model, encoder, kind="m3", device=device, dtype=dtype, batch_size=batch_size, max_length=max_length
        )

    @property
    def model_name(self) -> str:
        """The model's hub id or folder."""
        return self.encoder_holder.model_name

    @property
    def encoder(self) -> IndexEncoder:
        """The underlying ``BGEM3Encoder`` (loads the model on first access)."""
        enc: IndexEncoder = self.encoder_holder.get()
        if not getattr(enc, "supports_sparse", False):
            raise ValueError(
                f"{self.model_name} has no sparse head: sparse embeddings need a BGE-M3 checkpoint "
                "with sparse_linear.pt, loaded with sparse=True"
            )
        return enc

    def encode_sparse(self, texts: list[str], *, query: bool) -> list[SparseVector]:
        """Lexical weights of ``texts`` as ``bge_core.SparseVector`` (one pass with dense)."""
        items = check_texts(texts)
        if not items:
            return []
        from bge_core.cache import shared_cache

        return shared_cache(self.encoder).encode(items, query=query).sparse

    def encode_sparse_query(self, text: str) -> SparseVector:
        """Lexical weights of one query."""
        return self.encode_sparse([check_query(text)], query=True)[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.encoder_holder!r})"
