"""Milvus search plans: filter expressions, which searches a request needs, and the fusion /
MaxSim ranking of their answers (pure; the calls live in :class:`bge_milvus.store.MilvusStore`).

Hybrid RRF with both vectors present runs natively (``hybrid_search`` + ``RRFRanker``); DBSF,
weighted sums, RRF with an empty sparse query and ColBERT fuse the two prefetch lists here.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np

from bge_core.fusion import fuse as fuse_lists
from bge_core.index import SearchRequest
from bge_core.scoring import maxsim
from bge_core.types import FloatArray, Hit
from bge_milvus.filters import dict_filter_expression
from bge_milvus.rows import to_hit

__all__ = [
    "IDS_PER_CALL",
    "MAX_TOPK",
    "SPARSE_PARAMS",
    "check_limits",
    "filter_expression",
    "fuse",
    "maxsim_rank",
    "token_counts",
    "token_groups",
    "tokens_by_doc",
    "uses_native_rrf",
]

logger = logging.getLogger(__name__)

#: Largest ``limit`` Milvus accepts for a search or query.
MAX_TOPK = 16384
#: Most ids in one ``in [...]`` expression.
IDS_PER_CALL = 1000
#: ``search_params`` of a sparse search (exact: nothing dropped).
SPARSE_PARAMS: dict[str, Any] = {"metric_type": "IP", "params": {"drop_ratio_search": 0.0}}


def filter_expression(flt: Any) -> str:
    """A Milvus expression for ``flt``: an expression string as is, a dict escaped."""
    if flt is None:
        return ""
    if isinstance(flt, str):
        return flt
    if isinstance(flt, dict):
        return dict_filter_expression(flt) if flt else ""
    raise TypeError(f"Milvus filters are expression strings or {{metadata_key: value}} dicts, got {type(flt).__name__}")


def check_limits(request: SearchRequest) -> SearchRequest:
    """Refuse limits Milvus cannot serve (before anything is sent), and cap a default prefetch.

    ``dense`` and ``sparse`` searches fetch ``limit`` hits and no prefetch list, so only ``k``
    counts there. Hybrid and ColBERT searches prefetch ``max(4 x k, 100)`` candidates per list
    by default: above Milvus' ``MAX_TOPK`` (16,384, i.e. k > 4,096) the default is capped at
    ``MAX_TOPK`` (logged), while a ``prefetch_limit`` given explicitly above it is refused."""
    if request.limit > MAX_TOPK:
        raise ValueError(f"Milvus returns at most {MAX_TOPK} hits per search; lower k (got {request.limit})")
    if request.mode in ("dense", "sparse") or request.prefetch_limit <= MAX_TOPK:
        return request
    if request.options is None or request.options.prefetch_limit is not None:
        raise ValueError(
            f"Milvus returns at most {MAX_TOPK} hits per search; lower prefetch_limit (got {request.prefetch_limit})"
        )
    logger.info(
        "prefetching %d candidates per list instead of %d: Milvus returns at most %d hits per search",
        MAX_TOPK,
        request.prefetch_limit,
        MAX_TOPK,
    )
    return dataclasses.replace(request, prefetch_limit=MAX_TOPK)


def uses_native_rrf(request: SearchRequest) -> bool:
    """Whether ``request`` runs as one ``hybrid_search`` with ``RRFRanker(rrf_k)``."""
    return (
        request.mode == "hybrid"
        and request.fusion == "rrf"
        and 1 <= request.rrf_k < MAX_TOPK
        and request.dense is not None
        and request.sparse is not None
        and len(request.sparse) > 0
    )


def fuse(
    request: SearchRequest,
    dense: list[dict[str, Any]],
    sparse: list[dict[str, Any]],
    colbert: dict[str, FloatArray] | None = None,
) -> list[Hit]:
    """Fuse the flattened prefetch answers (``dense`` / ``sparse``) of a hybrid or ColBERT
    request; ``colbert`` holds the candidates' token matrices for ``mode="colbert"``."""
    rows: dict[str, dict[str, Any]] = {}
    stage: dict[str, dict[str, float]] = {}
    for name, hits in (("dense", dense), ("sparse", sparse)):
        for h in hits:
            rows.setdefault(h["id"], h)
            stage.setdefault(h["id"], {})[name] = h["distance"]
    lists = {
        key: [(h["id"], h["distance"]) for h in hits]
        for key, hits, want in (("dense", dense, request.dense), ("sparse", sparse, request.sparse))
        if want is not None
    }
    limit = request.limit
    if request.mode == "colbert":
        assert request.colbert is not None
        ranked = maxsim_rank(request.colbert, token_counts(rows), colbert or {}, limit)
        name = "colbert"
    else:
        name = "fusion"
        weights = dict(zip(("dense", "sparse"), request.weights))
        ranked = fuse_lists(request.fusion, lists, rrf_k=request.rrf_k, weights=weights)[:limit]
    return [to_hit(rows[k], {**stage.get(k, {}), name: s}, s) for k, s in ranked]


def token_counts(rows: dict[str, dict[str, Any]]) -> dict[str, int]:
    """ColBERT token count of each candidate (-1: stored without ColBERT vectors)."""
    return {k: -1 if r.get("colbert_tokens") is None else int(r["colbert_tokens"]) for k, r in rows.items()}


def maxsim_rank(
    q: FloatArray, counts: dict[str, int], tokens: dict[str, FloatArray], limit: int
) -> list[tuple[str, float]]:
    """Candidates ranked by MaxSim of ``q`` against their token matrices."""
    dim = int(np.asarray(q).shape[1])
    scored = []
    for key, n in counts.items():
        if n < 0:
            continue  # stored without ColBERT vectors: not a ColBERT candidate (as the reference)
        mat = tokens.get(key, np.zeros((0, dim), dtype=np.float32))
        scored.append((key, maxsim(q, mat)))
    return sorted(scored, key=lambda kv: -kv[1])[:limit]


def token_groups(counts: dict[str, int]) -> Iterator[list[str]]:
    """Document ids in groups of at most ``MAX_TOPK`` token rows and ``IDS_PER_CALL`` ids."""
    group: list[str] = []
    total = 0
    for key, n in counts.items():
        if group and (total + n > MAX_TOPK or len(group) >= IDS_PER_CALL):
            yield group
            group, total = [], 0
        group.append(key)
        total += n
    if group:
        yield group


def tokens_by_doc(rows: list[dict[str, Any]], counts: dict[str, int]) -> dict[str, FloatArray]:
    """Token matrices from fetched token rows, keeping positions below each document's count
    (rows beyond it are leftovers of an interrupted rewrite)."""
    parts: dict[str, dict[int, Any]] = {}
    for row in rows:
        pos = int(row["pos"])
        if pos < counts[row["doc_id"]]:
            parts.setdefault(row["doc_id"], {})[pos] = row["vector"]
    return {key: np.asarray([by_pos[p] for p in sorted(by_pos)], dtype=np.float32) for key, by_pos in parts.items()}
