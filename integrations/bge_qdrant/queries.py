"""A planned :class:`bge_core.index.SearchRequest` as Qdrant ``QueryRequest``s, and their
responses as :class:`Hit` lists. Shared by the sync and the async store.

How each mode maps to Qdrant (one ``query_points`` call, except ``weighted``):

- ``dense`` / ``sparse``: a nearest query on the ``dense`` / ``sparse`` vector.
- ``hybrid`` + ``rrf`` / ``dbsf``: dense and sparse prefetches of ``prefetch_limit`` each,
  fused by the server (``RrfQuery`` with an explicit k, or ``FusionQuery(DBSF)``).
- ``hybrid`` + ``weighted``: Qdrant has no weighted sum of raw scores, so the two prefetch
  lists are fetched in one ``query_batch_points`` call and summed here
  (``w_dense * dense + w_sparse * sparse``, a missing score counting 0), exactly as
  ``InMemoryStore`` does.
- ``colbert``: a nested prefetch: the union of the dense and sparse candidates is rescored by
  MaxSim on the ``colbert`` multivector in the same call.

RRF constant. Qdrant scores position ``pos`` (0-based) of a list as
``1 / ((pos + 1) / weight + k - 1)``, i.e. ``1 / (k + rank - 1)`` with rank from 1 and weight
1. That is the Rust server (``lib/segment/src/common/reciprocal_rank_fusion.rs``,
``position_score``; checked numerically with ``qdrant-edge-py`` 0.9, which embeds that engine)
and ``qdrant_client/hybrid/fusion.py`` of local mode alike. Our ``rrf_k`` means
``1 / (rrf_k + rank)`` (``bge_core.scoring.rrf_fusion``), so Qdrant gets ``k = rrf_k + 1``.
(Without an explicit k Qdrant uses k = 2, i.e. our rrf_k = 1: hence k is always pinned.)

ColBERT scale. Qdrant's MAX_SIM sums the best match of every query vector; BGE-M3 (and
``bge_core.scoring.maxsim``) averages it, so scores are divided by the query's vector count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bge_core.index import SearchRequest
from bge_core.scoring import weighted_sum_fusion
from bge_core.types import Hit
from bge_qdrant.dependency import models
from bge_qdrant.filters import to_filter
from bge_qdrant.layout import COLBERT, DENSE, SPARSE
from bge_qdrant.points import hit_from_point

__all__ = ["QdrantQuery", "build_query", "qdrant_rrf_k"]

Responses = Sequence[Sequence[Any]]


def qdrant_rrf_k(rrf_k: int) -> int:
    """Qdrant's RRF ``k`` that gives ``1 / (rrf_k + rank)`` with rank from 1 (see module doc)."""
    if rrf_k < 0:
        raise ValueError(f"rrf_k must be >= 0, got {rrf_k}")
    return rrf_k + 1


@dataclass(frozen=True)
class QdrantQuery:
    """The requests to send (none: the answer is empty) and how to read their responses."""

    requests: list[models.QueryRequest]
    finish: Callable[[Responses], list[Hit]]


def _plain(stage: str, scale: float = 1.0) -> Callable[[Responses], list[Hit]]:
    def finish(responses: Responses) -> list[Hit]:
        return [hit_from_point(p, p.score * scale, {stage: p.score * scale}) for p in responses[0]]

    return finish


def _weighted(weights: tuple[float, float], limit: int, names: Sequence[str]) -> Callable[[Responses], list[Hit]]:
    w = dict(zip((DENSE, SPARSE), weights))

    def finish(responses: Responses) -> list[Hit]:
        stage: dict[str, dict[str, float]] = {}
        points: dict[str, Any] = {}
        for name, points_list in zip(names, responses):
            for p in points_list:
                key = str(p.id)
                points.setdefault(key, p)
                stage.setdefault(key, {})[name] = float(p.score)
        fused = weighted_sum_fusion(stage, w)[:limit]
        return [hit_from_point(points[key], score, {**stage[key], "fusion": score}) for key, score in fused]

    return finish


def build_query(request: SearchRequest) -> QdrantQuery:
    """Translate a planned search (see the module docstring)."""
    flt = to_filter(request.filter)
    has_dense = request.dense is not None
    has_sparse = request.sparse is not None and len(request.sparse) > 0
    dense_q = request.dense.tolist() if request.dense is not None else None
    sparse_q = (
        models.SparseVector(indices=request.sparse.indices.tolist(), values=request.sparse.values.tolist())
        if request.sparse is not None and has_sparse
        else None
    )

    def top(query: Any, using: str, limit: int) -> models.QueryRequest:
        return models.QueryRequest(query=query, using=using, filter=flt, limit=limit, with_payload=True)

    if request.mode == "dense":
        return QdrantQuery([top(dense_q, DENSE, request.limit)], _plain(DENSE))
    if request.mode == "sparse":
        if not has_sparse:  # no known token in the query: nothing can match lexically
            return QdrantQuery([], lambda _: [])
        return QdrantQuery([top(sparse_q, SPARSE, request.limit)], _plain(SPARSE))

    sources = [(DENSE, dense_q)] if has_dense else []
    if has_sparse:
        sources.append((SPARSE, sparse_q))
    if not sources:
        return QdrantQuery([], lambda _: [])
    P = request.prefetch_limit
    if request.mode == "hybrid" and request.fusion == "weighted":
        names = [name for name, _ in sources]
        return QdrantQuery([top(q, name, P) for name, q in sources], _weighted(request.weights, request.limit, names))

    prefetch = [models.Prefetch(query=q, using=name, limit=P) for name, q in sources]
    if request.mode == "hybrid":
        fusion: Any = (
            models.RrfQuery(rrf=models.Rrf(k=qdrant_rrf_k(request.rrf_k)))
            if request.fusion == "rrf"
            else models.FusionQuery(fusion=models.Fusion.DBSF)
        )
        req = models.QueryRequest(prefetch=prefetch, query=fusion, filter=flt, limit=request.limit, with_payload=True)
        return QdrantQuery([req], _plain("fusion"))
    # colbert: rerank the union of the candidates by MaxSim in the same call
    if request.colbert is None or request.colbert.shape[0] == 0:
        raise ValueError("mode 'colbert' needs the query's ColBERT vectors")
    req = models.QueryRequest(
        prefetch=prefetch,
        query=request.colbert.tolist(),
        using=COLBERT,
        filter=flt,
        limit=request.limit,
        with_payload=True,
    )
    return QdrantQuery([req], _plain("colbert", 1.0 / request.colbert.shape[0]))
