"""``BGEEmbeddings``: dense BGE embeddings (BGE-M3 and v1.5) as a LangChain ``Embeddings``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.embeddings import Embeddings

from bge_core.async_batching import DynamicBatcher
from bge_core.holder import ModelHolder, as_holder

if TYPE_CHECKING:
    from bge_core.index import IndexEncoder
    from bge_core.types import FloatArray

__all__ = ["BGEEmbeddings"]


def check_texts(texts: object) -> list[str]:
    """A list of str, or a TypeError that says how to fix the input."""
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, got a single str; wrap it: [text] (or use embed_query)")
    if not isinstance(texts, Sequence):
        raise TypeError(f"texts must be a list of strings, got {type(texts).__name__}")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] is {type(t).__name__}, not str")
    return out


def check_query(text: object) -> str:
    """A str query, or a TypeError."""
    if not isinstance(text, str):
        raise TypeError(f"the query must be a str, got {type(text).__name__}")
    return text


EncoderKind = Literal["auto", "m3", "dense"]


def embedding_holder(
    model: str | os.PathLike[str] | None, encoder: Any, *, kind: str = "auto", **options: Any
) -> ModelHolder:
    """The holder of a LangChain wrapper: ``encoder`` (a loaded encoder, another wrapper or a
    holder, shared) or ``model`` (loaded lazily; default ``BAAI/bge-m3``)."""
    if encoder is not None and model is not None:
        raise ValueError("pass either model or encoder, not both")
    if (
        encoder is not None
        and not isinstance(encoder, ModelHolder)
        and getattr(encoder, "encoder_holder", None) is None
    ):
        if isinstance(encoder, (str, os.PathLike)):
            raise TypeError("encoder= takes a loaded encoder or wrapper; pass a model name as model=")
        if not callable(getattr(encoder, "encode_outputs", None)):
            raise TypeError(
                "encoder must be a BGEM3Encoder or DenseEncoder (or one of our LangChain wrappers), "
                f"got {type(encoder).__name__}"
            )
    return as_holder(
        encoder if encoder is not None else model, default="BAAI/bge-m3", kind=kind, role="embed", **options
    )


def dense_vectors(holder: ModelHolder, texts: list[str], *, query: bool) -> FloatArray:
    """Dense vectors of ``texts``; an M3 encoder goes through the shared one-pass cache, so a
    sparse wrapper of the same encoder is then served without a second forward pass."""
    enc = holder.get()
    if getattr(enc, "supports_sparse", False):
        from bge_core.cache import shared_cache

        out = shared_cache(enc).encode(texts, query=query)
    else:
        out = enc.encode_outputs(texts, query=query, dense=True, sparse=False, colbert=False)
    if out.dense is None:  # pragma: no cover - both paths above request dense
        raise RuntimeError(f"{holder.model_name} returned no dense vectors")
    return out.dense


class BGEEmbeddings(Embeddings):
    """Dense BGE embeddings for LangChain: BGE-M3 (no query instruction) and BGE v1.5 models
    (their query instruction on queries only, as the model card prescribes).

    Unlike ``HuggingFaceBgeEmbeddings``, the instruction follows the model: M3 gets none. With
    an M3 encoder shared by :class:`~langchain_bge.BGEM3SparseEmbeddings`, each text is encoded
    once for dense and sparse (see :mod:`bge_core.cache`).

    Args:
        model: hub id or local folder, loaded on first use (default ``"BAAI/bge-m3"``).
        encoder: a loaded ``BGEM3Encoder`` / ``DenseEncoder``, or another langchain_bge
            wrapper whose model to share. Pass ``model`` or ``encoder``, not both.
        kind: ``"auto"`` (M3 when the model has M3 heads), ``"m3"`` or ``"dense"``.
        query_instruction: v1.5 models only; ``None`` keeps the model's known instruction,
            ``""`` switches it off.
        device, dtype, batch_size, max_length: encoder options when loading ``model``.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        encoder: Any = None,
        kind: EncoderKind = "auto",
        query_instruction: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 32,
        max_length: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.encoder_holder: ModelHolder = embedding_holder(
            model,
            encoder,
            kind=kind,
            query_instruction=query_instruction,
            device=device,
            dtype=dtype,
            batch_size=batch_size,
            max_length=max_length,
        )
        self._batcher: DynamicBatcher[list[float]] = DynamicBatcher(self._rows)

    @property
    def model_name(self) -> str:
        """The model's hub id or folder."""
        return self.encoder_holder.model_name

    @property
    def encoder(self) -> IndexEncoder:
        """The underlying bge_core encoder (loads the model on first access)."""
        enc: IndexEncoder = self.encoder_holder.get()
        return enc

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents (no instruction): one ``dim``-sized list of floats per text."""
        items = check_texts(texts)
        if not items:
            return []
        vectors: list[list[float]] = dense_vectors(self.encoder_holder, items, query=False).tolist()
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """Embed a query (with the v1.5 instruction where the model has one; none for M3)."""
        vector: list[float] = dense_vectors(self.encoder_holder, [check_query(text)], query=True)[0].tolist()
        return vector

    def _rows(self, texts: list[str], query: bool) -> list[list[float]]:
        rows: list[list[float]] = dense_vectors(self.encoder_holder, texts, query=query).tolist()
        return rows

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """:meth:`embed_documents` on a worker thread; concurrent calls are batched together
        (requests arriving while a forward runs join the next one)."""
        return await self._batcher.submit(check_texts(texts), query=False)

    async def aembed_query(self, text: str) -> list[float]:
        """:meth:`embed_query` on a worker thread, batched with concurrent calls."""
        return (await self._batcher.submit([check_query(text)], query=True))[0]

    def __repr__(self) -> str:
        return f"BGEEmbeddings({self.encoder_holder!r})"
