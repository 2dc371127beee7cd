"""Pure scoring functions (numpy only), equal to FlagEmbedding's BGE-M3 formulas.

- dense: inner product of L2-normalised vectors (cosine).
- lexical: sum over shared token ids of ``w_q * w_d``.
- ColBERT MaxSim: for each query token, the best inner product with any document token,
  averaged over the query tokens.
- fusion: weighted sums (FlagEmbedding's ``compute_score`` combinations); the fusion of
  ranked lists (RRF, DBSF, weighted sums) is in :mod:`bge_core.fusion`, re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Fusion lives in bge_core.fusion; these names stay importable from here.
from bge_core.fusion import DEFAULT_RRF_K, rrf_fusion, weighted_sum_fusion
from bge_core.types import FloatArray, SparseVector

__all__ = [
    "DEFAULT_RRF_K",
    "dense_score",
    "lexical_score",
    "maxsim",
    "rrf_fusion",
    "weighted_fusion",
    "weighted_sum_fusion",
]


def dense_score(q: FloatArray, d: FloatArray) -> FloatArray:
    """Inner products: ``(d,) x (d,) -> ()``, ``(d,) x (n, d) -> (n,)``, ``(m, d) x (n, d) -> (m, n)``."""
    return np.asarray(np.asarray(q, dtype=np.float32) @ np.asarray(d, dtype=np.float32).T)


def lexical_score(q: SparseVector, d: SparseVector) -> float:
    """Sum of ``q[t] * d[t]`` over the token ids ``t`` that both vectors hold."""
    _, qi, di = np.intersect1d(q.indices, d.indices, assume_unique=True, return_indices=True)
    if qi.size == 0:
        return 0.0
    return float(np.dot(q.values[qi].astype(np.float64), d.values[di].astype(np.float64)))


def maxsim(q: FloatArray, d: FloatArray) -> float:
    """ColBERT late-interaction score: mean over query vectors of the max inner product.

    ``q`` is ``t_q x dim``, ``d`` is ``t_d x dim``; both are expected L2-normalised.
    An empty query or document scores 0.
    """
    q = np.asarray(q, dtype=np.float32)
    d = np.asarray(d, dtype=np.float32)
    if q.shape[0] == 0 or d.shape[0] == 0:
        return 0.0
    return float((q @ d.T).max(axis=1).sum() / q.shape[0])


def weighted_fusion(scores: Sequence[float], weights: Sequence[float]) -> float:
    """``sum(w_i * s_i) / sum(w_i)``, as FlagEmbedding's ``compute_score`` combines modes."""
    if len(scores) != len(weights):
        raise ValueError(f"got {len(scores)} scores but {len(weights)} weights")
    total = float(sum(weights))
    if total == 0.0:
        raise ValueError("weights must not sum to 0")
    return float(sum(w * s for w, s in zip(weights, scores)) / total)
