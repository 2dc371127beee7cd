"""A LlamaIndex retriever over any ``bge_core`` vector index (Qdrant, Milvus, in-memory)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
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

from bge_core.fusion import DEFAULT_RRF_K
from bge_core.search_options import Fusion, Mode, SearchOptions
from bge_core.types import Hit
from llama_index_bge.encoder_ref import EncoderRef
from llama_index_bge.nodes import hit_to_node

__all__ = ["BGEHybridRetriever", "SearchableIndex", "metadata_filters_to_dict"]


class SearchableIndex(Protocol):
    """What the retriever needs: ``bge_core.index.VectorIndex`` and its subclasses fit."""

    def search(self, query: str, k: int | None = ..., *, options: SearchOptions | None = ...) -> list[Hit]: ...


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
        prefetch_limit: candidates per list before fusion (default ``max(4 * k, 100)``).
        callback_manager: LlamaIndex callbacks.

    The settings are checked here and passed to the index as one
    ``bge_core.search_options.SearchOptions`` (:attr:`options`).
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
        prefetch_limit: int | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        if not callable(getattr(index, "search", None)):
            raise TypeError(
                f"index must be a bge_core VectorIndex (QdrantIndex, MilvusIndex, ...), got {type(index).__name__}"
            )
        # The reranker (maybe a model name, loaded on first search) is added per search.
        self.options = SearchOptions(
            k=k,
            mode=mode,
            fusion=fusion,
            rrf_k=rrf_k,
            weights=weights,
            filter=metadata_filters_to_dict(filter) if isinstance(filter, MetadataFilters) else filter,
            prefetch_limit=prefetch_limit,
            rerank_candidates=rerank_candidates,
        )
        self.index = index
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

    @property
    def k(self) -> int:
        """Number of results."""
        return self.options.k

    @property
    def mode(self) -> Mode:
        """The search mode."""
        return self.options.mode

    @property
    def filter(self) -> Any:
        """The filter (LlamaIndex ``MetadataFilters`` converted to a dict)."""
        return self.options.filter

    def _search_options(self) -> SearchOptions:
        if self._rerank is None:
            return self.options
        return self.options.replace(rerank=self._rerank.get())

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.index.search(query_bundle.query_str, options=self._search_options())
        return [hit_to_node(h) for h in hits]

    def retrieve_batch(self, queries: Sequence[str]) -> list[list[NodeWithScore]]:
        """Retrieve for many query strings at once: one encoder pass and, where the store has
        one, one batch query (``index.search_batch``). No retrieval callbacks are emitted."""
        search_batch = getattr(self.index, "search_batch", None)
        if not callable(search_batch):
            raise TypeError(f"{type(self.index).__name__} has no search_batch; use a bge_core VectorIndex")
        results: list[list[Hit]] = search_batch(list(queries), options=self._search_options())
        return [[hit_to_node(h) for h in hits] for hits in results]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._retrieve, query_bundle)
