"""``BGEHybridRetriever``: a LangChain retriever over any bge-integrations index."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, field_validator, model_validator

from bge_core.fusion import DEFAULT_RRF_K
from bge_core.search_options import OPTION_NAMES, Fusion, Mode, SearchOptions
from langchain_bge.rerank import SCORE_KEY, BGERerank

if TYPE_CHECKING:
    from bge_core.types import Hit

__all__ = ["BGEHybridRetriever", "SearchableIndex", "hit_to_document"]

#: Keyword arguments ``invoke(query, k=..., ...)`` accepts per call (the search options but
#: ``rerank``: the cross-encoder is the retriever's ``reranker``).
_CALL_OPTIONS = tuple(name for name in OPTION_NAMES if name != "rerank")


@runtime_checkable
class SearchableIndex(Protocol):
    """What the retriever needs from an index: ``bge_core.index.VectorIndex`` and its
    subclasses (``bge_qdrant.QdrantIndex``, ``bge_milvus.MilvusIndex``) fit."""

    def search(self, query: str, k: int | None = ..., *, options: SearchOptions | None = ...) -> list[Hit]:
        """Search the index with the given options, best hits first."""
        ...


def hit_to_document(hit: Hit) -> Document:
    """A LangChain ``Document`` of a hit: ``id``, the stored metadata, the final score under
    ``metadata["relevance_score"]`` and the per-stage scores under ``metadata["scores"]``."""
    metadata = {**hit.metadata, SCORE_KEY: float(hit.score), "scores": {k: float(v) for k, v in hit.scores.items()}}
    return Document(page_content=hit.text, metadata=metadata, id=hit.id)


class BGEHybridRetriever(BaseRetriever):
    """Retrieve from a BGE index: dense + sparse (+ ColBERT, + cross-encoder) in one call.

    Wraps any index with the ``VectorIndex.search`` signature (``bge_qdrant.QdrantIndex``,
    ``bge_milvus.MilvusIndex``, or ``bge_core.index.VectorIndex`` over any store). The query
    is encoded once for all stages. Documents carry ``id``, their metadata, the final score
    in ``metadata["relevance_score"]`` and per-stage scores (``dense``, ``sparse``,
    ``fusion``, ``colbert``, ``rerank``) in ``metadata["scores"]``.

    Every setting below can be overridden per call: ``retriever.invoke(q, k=3, filter={...})``.
    They are checked when the retriever is built and passed to the index as one
    ``bge_core.search_options.SearchOptions`` (:attr:`search_options`).

    Args:
        index: the index to search.
        k: documents to return.
        mode: ``"dense"``, ``"sparse"``, ``"hybrid"`` (fused) or ``"colbert"`` (hybrid
            candidates reranked by ColBERT MaxSim).
        fusion / rrf_k / weights: how hybrid fuses dense and sparse.
        filter: a ``{metadata_key: value}`` dict or a store-native filter.
        reranker: optional cross-encoder (``bge_core.Reranker`` or :class:`BGERerank`)
            applied to the top ``rerank_candidates`` hits.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: Any
    k: int = Field(default=4, ge=1)
    mode: Mode = "hybrid"
    fusion: Fusion = "rrf"
    rrf_k: int = Field(default=DEFAULT_RRF_K, ge=0)
    weights: tuple[float, float] = (1.0, 1.0)
    filter: Any = None
    reranker: Any = None
    rerank_candidates: int | None = Field(default=None, ge=1)
    prefetch_limit: int | None = Field(default=None, ge=1)

    @field_validator("index")
    @classmethod
    def _check_index(cls, value: Any) -> Any:
        if not callable(getattr(value, "search", None)):
            raise TypeError(
                f"index must have a search(query, k, ...) method (a bge_core VectorIndex such as "
                f"QdrantIndex or MilvusIndex), got {type(value).__name__}"
            )
        return value

    @field_validator("reranker")
    @classmethod
    def _check_reranker(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, BGERerank) and not callable(getattr(value, "score", None)):
            raise TypeError(f"reranker must be a bge_core.Reranker or BGERerank, got {type(value).__name__}")
        return value

    @model_validator(mode="after")
    def _check_options(self) -> BGEHybridRetriever:
        self.search_options  # noqa: B018 - builds (validates) the options once, at construction
        return self

    @property
    def search_options(self) -> SearchOptions:
        """The retriever's settings as the options passed to ``index.search``."""
        rerank = self.reranker.cross_encoder if isinstance(self.reranker, BGERerank) else self.reranker
        return SearchOptions(
            k=self.k,
            mode=self.mode,
            fusion=self.fusion,
            rrf_k=self.rrf_k,
            weights=self.weights,
            filter=self.filter,
            prefetch_limit=self.prefetch_limit,
            rerank=rerank,
            rerank_candidates=self.rerank_candidates,
        )

    def _options(self, overrides: dict[str, Any]) -> SearchOptions:
        overrides = {k: v for k, v in overrides.items() if k != "verbose"}
        unknown = sorted(set(overrides) - set(_CALL_OPTIONS))
        if unknown:
            raise TypeError(f"unknown search option(s) {', '.join(unknown)}; use {', '.join(_CALL_OPTIONS)}")
        return self.search_options.replace(**overrides)

    def search(self, query: str, **overrides: Any) -> list[Document]:
        """Search with the retriever's settings, overridden by ``overrides``."""
        hits: list[Hit] = self.index.search(query, options=self._options(overrides))
        return [hit_to_document(h) for h in hits]

    def search_batch(self, queries: Sequence[str], **overrides: Any) -> list[list[Document]]:
        """:meth:`search` for many queries: one encoder pass and, where the store has one, one
        batch query (``index.search_batch``); one document list per query, in order."""
        results: list[list[Hit]] = self.index.search_batch(queries, options=self._options(overrides))
        return [[hit_to_document(h) for h in hits] for hits in results]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        return self.search(query, **kwargs)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        return await asyncio.to_thread(self.search, query, **kwargs)
