"""BGE dense embeddings as a LlamaIndex ``BaseEmbedding``."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import PrivateAttr

from bge_core.cache import shared_cache
from llama_index_bge.encoder_ref import EncoderRef

__all__ = ["BGEEmbedding"]

DEFAULT_MODEL = "BAAI/bge-m3"


class BGEEmbedding(BaseEmbedding):
    """Dense BGE embeddings for LlamaIndex.

    With a BGE-M3 model (``BGEM3Encoder``) queries and documents are embedded alike, and dense
    and sparse vectors come from one forward pass: the outputs go through
    :func:`bge_core.cache.shared_cache`, so the sparse functions of
    :func:`llama_index_bge.bge_m3_sparse_functions` built on the same encoder reuse them.
    With a v1.5 model (``DenseEncoder``) queries get the model's query instruction.

    Args:
        model_name: hub id or local folder (default ``BAAI/bge-m3``), loaded on first use.
        encoder: an already loaded ``BGEM3Encoder`` or ``DenseEncoder`` (shares its model).
        device / dtype / max_length / batch_size: options for loading ``model_name``.
        embed_batch_size: texts per call into the encoder (LlamaIndex batches by it).
    """

    _ref: EncoderRef = PrivateAttr()

    def __init__(
        self,
        model_name: str | os.PathLike[str] | None = None,
        *,
        encoder: Any = None,
        device: str | None = None,
        dtype: str | None = None,
        max_length: int | None = None,
        batch_size: int | None = None,
        embed_batch_size: int = 32,
        **kwargs: Any,
    ) -> None:
        if encoder is not None and not callable(getattr(encoder, "encode_outputs", None)):
            raise TypeError(
                f"encoder must be a bge_core BGEM3Encoder or DenseEncoder, got {type(encoder).__name__}"
            )
        ref = EncoderRef(
            model_name if model_name is not None or encoder is not None else DEFAULT_MODEL,
            encoder,
            kind="embed",
            device=device,
            dtype=dtype,
            max_length=max_length,
            batch_size=batch_size,
        )
        super().__init__(model_name=ref.name, embed_batch_size=embed_batch_size, **kwargs)
        self._ref = ref

    @classmethod
    def class_name(cls) -> str:
        """LlamaIndex serialisation name."""
        return "BGEEmbedding"

    @property
    def encoder(self) -> Any:
        """The encoder (loads the model on first access when built from a name)."""
        return self._ref.get()

    @property
    def encoder_ref(self) -> EncoderRef:
        """The lazy model reference; other wrappers may share it (no model is loaded)."""
        return self._ref

    def _embed(self, texts: list[str], *, query: bool) -> list[Embedding]:
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings; wrap it: [text]")
        enc = self.encoder
        if getattr(enc, "supports_sparse", False):
            out = shared_cache(enc).encode(texts, query=query)
        else:
            out = enc.encode_outputs(texts, query=query, dense=True, sparse=False, colbert=False)
        assert out.dense is not None
        rows: list[Embedding] = out.dense.tolist()
        return rows

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._embed([query], query=True)[0]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await asyncio.to_thread(self._get_query_embedding, query)

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._embed([text], query=False)[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await asyncio.to_thread(self._get_text_embedding, text)

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._embed(texts, query=False)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)
