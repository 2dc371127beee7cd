"""BGE-M3 lexical weights as the sparse functions of LlamaIndex's ``QdrantVectorStore``.

``QdrantVectorStore(enable_hybrid=True, sparse_doc_fn=..., sparse_query_fn=...)`` (as of
llama-index-vector-stores-qdrant 0.10) takes two callables ``list[str] -> (indices, values)``.
It calls the document function on ``node.get_content(metadata_mode=MetadataMode.EMBED)``, the
same text ``VectorStoreIndex`` embeds, so with a shared ``BGEM3Encoder`` each node goes through
the model once: whichever of the dense or sparse call comes first computes both outputs and
the other is served from :func:`bge_core.cache.shared_cache`.
"""

from __future__ import annotations

import os
from typing import Any

from bge_core.cache import shared_cache
from bge_core.holder import ModelHolder, as_holder
from bge_core.types import SparseVector

__all__ = ["BGEM3SparseFunction", "bge_m3_sparse_functions", "resolve_m3_ref", "sparse_vectors"]

BatchSparse = tuple[list[list[int]], list[list[float]]]


def resolve_m3_ref(
    encoder: Any, *, device: str | None = None, dtype: str | None = None, max_length: int | None = None
) -> ModelHolder:
    """The :class:`~bge_core.holder.ModelHolder` of a BGE-M3 model given as a name, an encoder, a
    :class:`~llama_index_bge.BGEEmbedding` (its model is shared) or a holder."""
    if (
        encoder is not None
        and not isinstance(encoder, (str, os.PathLike, ModelHolder))
        and getattr(encoder, "encoder_ref", None) is None
        and not callable(getattr(encoder, "encode_outputs", None))
    ):
        raise TypeError(f"expected a BGEM3Encoder, a model name or a BGEEmbedding, got {type(encoder).__name__}")
    return as_holder(encoder, default="BAAI/bge-m3", kind="m3", device=device, dtype=dtype, max_length=max_length)


def sparse_vectors(ref: ModelHolder, texts: list[str], *, query: bool) -> list[SparseVector]:
    """Lexical weights of ``texts`` through the encoder's shared one-pass cache."""
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings; wrap it: [text]")
    enc = ref.get()
    if not getattr(enc, "supports_sparse", False):
        raise ValueError(
            f"{ref.name} has no sparse output: sparse functions need a BGE-M3 model "
            "(BGEM3Encoder with sparse=True), e.g. 'BAAI/bge-m3'"
        )
    return shared_cache(enc).encode(list(texts), query=query).sparse


class BGEM3SparseFunction:
    """``list[str] -> (indices, values)``: BGE-M3 lexical weights, one list per text.

    A text with no weights (``""``, or only unknown tokens) gets empty lists. Build the pair
    with :func:`bge_m3_sparse_functions`.
    """

    def __init__(self, ref: ModelHolder, *, query: bool) -> None:
        self.ref = ref
        self.query = query

    def __call__(self, texts: list[str]) -> BatchSparse:
        """Encode ``texts`` (documents or queries, per ``self.query``)."""
        vecs = sparse_vectors(self.ref, texts, query=self.query)
        return [v.indices.tolist() for v in vecs], [v.values.tolist() for v in vecs]

    def __repr__(self) -> str:
        return f"BGEM3SparseFunction({self.ref.name!r}, query={self.query})"


def bge_m3_sparse_functions(
    encoder: Any = "BAAI/bge-m3",
    *,
    device: str | None = None,
    dtype: str | None = None,
    max_length: int | None = None,
) -> tuple[BGEM3SparseFunction, BGEM3SparseFunction]:
    """``(sparse_doc_fn, sparse_query_fn)`` for ``QdrantVectorStore(enable_hybrid=True, ...)``.

    ``encoder`` is a ``BGEM3Encoder``, a :class:`~llama_index_bge.BGEEmbedding` (shares its
    model, loaded or not) or a model name (loaded on first call; ``device`` / ``dtype`` /
    ``max_length`` apply then). Nothing is loaded here.
    """
    ref = resolve_m3_ref(encoder, device=device, dtype=dtype, max_length=max_length)
    return BGEM3SparseFunction(ref, query=False), BGEM3SparseFunction(ref, query=True)
