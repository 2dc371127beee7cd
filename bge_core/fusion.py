"""Score fusion of ranked candidate lists: reciprocal rank fusion (RRF), distribution-based
score fusion (DBSF) and weighted sums of raw scores. Numpy only.

This is the one implementation every store that fuses on the client side uses (the reference
``InMemoryStore``, Milvus for DBSF and weighted sums, Qdrant for weighted sums), so all stores
agree with the reference to the last digit. :func:`fuse` picks one by name.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:
    from bge_core.search_options import Fusion

__all__ = ["DEFAULT_RRF_K", "dbsf_fusion", "fuse", "rrf_fusion", "weighted_sum_fusion"]

#: Reciprocal-rank-fusion constant used by every index unless the caller pins another one.
#: 60 is the value of Cormack et al. and the default of Qdrant and Milvus.
DEFAULT_RRF_K = 60

K = TypeVar("K", bound=Hashable)


def rrf_fusion(rankings: Sequence[Sequence[K]], *, k: int) -> list[tuple[K, float]]:
    """Reciprocal rank fusion: ``score(x) = sum over rankings of 1 / (k + rank(x))``, rank from 1.

    ``k`` is required on purpose: stores disagree on defaults, so callers pin it. Ties keep
    the order of first appearance. Returns ``(key, score)`` pairs, best first.
    """
    if k < 0:
        raise ValueError(f"rrf k must be >= 0, got {k}")
    fused: dict[K, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda kv: -kv[1])


def dbsf_fusion(lists: Sequence[Sequence[tuple[K, float]]]) -> list[tuple[K, float]]:
    """Distribution-based score fusion (as Qdrant): each list's scores are scaled from
    ``mean - 3 std`` .. ``mean + 3 std`` to 0 .. 1 (sample std; a list of one score, or of
    equal scores, scales to 0.5), then summed per key. Returns ``(key, score)``, best first."""
    fused: dict[K, float] = {}
    for items in lists:
        if not items:
            continue
        scores = np.array([s for _, s in items], dtype=np.float64)
        if len(items) == 1:
            normed = np.array([0.5])
        else:
            std = scores.std(ddof=1)
            if std == 0:
                normed = np.full(len(items), 0.5)
            else:
                low, high = scores.mean() - 3 * std, scores.mean() + 3 * std
                normed = (scores - low) / (high - low)
        for (key, _), s in zip(items, normed):
            fused[key] = fused.get(key, 0.0) + float(s)
    return sorted(fused.items(), key=lambda kv: -kv[1])


def weighted_sum_fusion(
    stage_scores: Mapping[K, Mapping[str, float]], weights: Mapping[str, float]
) -> list[tuple[K, float]]:
    """Fuse per-stage raw scores: ``score(x) = sum(weights[s] * stage_scores[x].get(s, 0))``.

    A candidate missing from a stage's list scores 0 there. Returns ``(key, score)`` pairs,
    best first; ties keep the order of ``stage_scores``.
    """
    fused = [
        (key, sum(w * stages.get(name, 0.0) for name, w in weights.items())) for key, stages in stage_scores.items()
    ]
    return sorted(fused, key=lambda kv: -kv[1])


def fuse(
    fusion: Fusion,
    lists: Mapping[str, Sequence[tuple[K, float]]],
    *,
    rrf_k: int = DEFAULT_RRF_K,
    weights: Mapping[str, float] | None = None,
) -> list[tuple[K, float]]:
    """Fuse named ranked lists (``{"dense": [(key, score), ...], "sparse": [...]}``, each best
    first) by ``fusion``: ``"rrf"`` with ``rrf_k``, ``"dbsf"``, or ``"weighted"`` with
    ``weights`` per list name (a missing name weighs 1). Returns ``(key, score)``, best first."""
    if fusion == "rrf":
        return rrf_fusion([[key for key, _ in items] for items in lists.values()], k=rrf_k)
    if fusion == "dbsf":
        return dbsf_fusion(list(lists.values()))
    if fusion == "weighted":
        stage: dict[K, dict[str, float]] = {}
        for name, items in lists.items():
            for key, score in items:
                stage.setdefault(key, {})[name] = score
        w = {name: (weights or {}).get(name, 1.0) for name in lists}
        return weighted_sum_fusion(stage, w)
    raise ValueError(f"unknown fusion {fusion!r}; use one of rrf, dbsf, weighted")
