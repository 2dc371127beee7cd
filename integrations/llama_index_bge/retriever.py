"""A LlamaIndex retriever over any ``bge_core`` vector index (Qdrant, Milvus, in-memory)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any, Protocol

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from bge_core.index import FUSIONS, MODES, Fusion, Mode
from bge_core.scoring import DEFAULT_RRF_K
from bge_core.types import Hit
from llama_index_bge.encoder_ref import EncoderRef
from llama_index_bge.nodes import hit_to_node

__all__ = ["BGEHybridRetriever", "SearchableIndex", "metadata_filters_to_dict"]


class SearchableIndex(Protocol):
    """What the retriever needs: ``bge_core.index.VectorIndex`` and its subclasses fit."""

    def search(
        self,
        query: str,
        k: int = ...,
        *,
        mode: Mode = ...,
        fusion: Fusion = ...,
        rrf_k: int = ...,
        weights: tuple[float, float] = ...,
        rerank: Any = ...,
        rerank_candidates: int | None = ...,
        filter: Any = ...,
    ) -> list[Hit]: ...


def metadata_filters_to_dict(filters: MetadataFilters) -> dict[str, Any]:
    """Convert LlamaIndex ``MetadataFilters`` to the ``{key: value}`` filter of ``bge_core``.

    Supported: ``==`` (equality) and ``in`` (any of a list) joined by AND. Other operators
    need a store-native filter (a ``qdrant_client.models.Filter`` or a Milvus expression),
    passed as ``filter=``.
    """
    if filters.condition not in (None, FilterCondition.AND):
        raise ValueError(
            f"only AND-joined MetadataFilters are supported, got condition={filters.condition!r}; "
            "pass a store-native filter instead"
        )
    out: dict[str, Any] = {}
    for f in filters.filters:
        if not isinstance(f, MetadataFilter):
            raise TypeError("nested MetadataFilters are not supported; pass a store-native filter instead")
        if f.operator == FilterOperator.EQ:
            out[f.key] = f.value
        elif f.operator == FilterOperator.IN:
            out[f.key] = list(f.value) if isinstance(f.value, (list, tuple)) else [f.value]
        else:
            raise ValueError(
                f"filter operator {f.operator.value!r} on {f.key!r} is not supported (use '==' or 'in'); "
                "pass a store-native filter for other operators"
            )
        if f.key in out and isinstance(out[f.key], list) and not out[f.key]:
            raise ValueError(f"the 'in' filter on {f.key!r} has an empty list")
    return out


class BGEHybridRetriever(BaseRetriever):
    """Retrieve ``NodeWithScore`` objects from a ``bge_qdrant.QdrantIndex``, a
    ``bge_milvus.MilvusIndex`` or any ``bge_core.index.VectorIndex``.

    Each result is a ``TextNode`` with the stored id, text and metadata, scored by the final
    stage; the per-stage scores (``dense``, ``sparse``, ``fusion``, ``colbert``, ``rerank``) are
    in ``node.metadata["bge_scores"]`` (excluded from LLM and embedding text).

    Args:
        index: the vector index to search.
        k: number of results.
        mode: ``"dense"``, ``"sparse"``, ``"hybrid"`` (default) or ``"colbert"``.
        fusion / rrf_k / weights: hybrid fusion settings (see ``VectorIndex.search``).
        filter: a ``{metadata_key: value}`` dict, LlamaIndex ``MetadataFilters`` (``==`` and
            ``in``, AND-joined) or a store-native filter.
        rerank: a cross-encoder (``bge_core.Reranker``) or a reranker model name (loaded on
            first search) applied to the top ``rerank_candidates`` hits.
        rerank_candidates: hits reranked (default ``max(k, 20)``).
        callback_manager: LlamaIndex callbacks.
    """

    def __init__(
        self,
        index: SearchableIndex,
        *,
        k: int = 10,
        mode: Mode = "hybrid",
        fusion: Fusion = "rrf",
        rrf_k: int = DEFAULT_RRF_K,
        weights: tuple[float, float] = (1.0, 1.0),
        filter: Mapping[str, Any] | MetadataFilters | Any = None,
        rerank: Any = None,
        rerank_candidates: int | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        if not callable(getattr(index, "search", None)):
            raise TypeError(
                f"index must be a bge_core VectorIndex (QdrantIndex, MilvusIndex, ...), got {type(index).__name__}"
            )
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}; use one of {', '.join(FUSIONS)}")
        if rerank_candidates is not None and rerank_candidates < 1:
            raise ValueError(f"rerank_candidates must be a positive int, got {rerank_candidates!r}")
        self.index = index
        self.k = k
        self.mode: Mode = mode
        self.fusion: Fusion = fusion
        self.rrf_k = rrf_k
        self.weights = weights
        self.filter = metadata_filters_to_dict(filter) if isinstance(filter, MetadataFilters) else filter
        self.rerank_candidates = rerank_candidates
        self._rerank: EncoderRef | None
        if rerank is None:
            self._rerank = None
        elif isinstance(rerank, (str, os.PathLike)):
            self._rerank = EncoderRef(rerank, kind="rerank")
        elif callable(getattr(rerank, "score", None)):
            self._rerank = EncoderRef(None, rerank, kind="rerank")
        else:
            raise TypeError(f"rerank must be a bge_core.Reranker or a reranker model name, got {type(rerank).__name__}")
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.index.search(
            query_bundle.query_str,
            self.k,
            mode=self.mode,
            fusion=self.fusion,
            rrf_k=self.rrf_k,
            weights=self.weights,
            rerank=None if self._rerank is None else self._rerank.get(),
            rerank_candidates=self.rerank_candidates,
            filter=self.filter,
        )
        return [hit_to_node(h) for h in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._retrieve, query_bundle)
