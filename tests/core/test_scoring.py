"""Scoring functions, batching plans and the typed values."""

from __future__ import annotations

import numpy as np
import pytest

from bge_core import SparseVector, scoring
from bge_core.batching import padded_tokens, plan_batches


def test_lexical_score_hand_computed() -> None:
    q = SparseVector.from_dict({"5": 0.5, "7": 2.0, "9": 1.0})
    d = SparseVector.from_dict({7: 0.25, 9: 3.0, 11: 4.0})
    assert scoring.lexical_score(q, d) == pytest.approx(2.0 * 0.25 + 1.0 * 3.0)
    assert scoring.lexical_score(q, SparseVector.empty()) == 0.0


def test_maxsim_hand_computed() -> None:
    q = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    d = np.array([[0.6, 0.8], [1.0, 0.0]], dtype=np.float32)
    assert scoring.maxsim(q, d) == pytest.approx((1.0 + 0.8) / 2)
    assert scoring.maxsim(q, np.zeros((0, 2), np.float32)) == 0.0


def test_dense_score_shapes() -> None:
    a = np.eye(3, dtype=np.float32)
    assert scoring.dense_score(a[0], a[0]) == pytest.approx(1.0)
    assert scoring.dense_score(a[0], a).shape == (3,)
    assert scoring.dense_score(a, a).shape == (3, 3)


def test_rrf_and_weighted_fusion() -> None:
    fused = scoring.rrf_fusion([["a", "b", "c"], ["c", "a"]], k=60)
    scores = dict(fused)
    assert scores["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert scores["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert [key for key, _ in fused] == ["a", "c", "b"]
    with pytest.raises(ValueError):
        scoring.rrf_fusion([["a"]], k=-1)
    assert scoring.weighted_fusion([0.5, 0.2, 0.8], [0.4, 0.2, 0.4]) == pytest.approx((0.2 + 0.04 + 0.32) / 1.0)
    with pytest.raises(ValueError):
        scoring.weighted_fusion([1.0], [0.0])


def test_sparse_vector_invariants() -> None:
    sv = SparseVector.from_dict({3: 1.0, 1: 2.0})
    assert sv.indices.tolist() == [1, 3] and sv.to_dict() == {1: 2.0, 3: 1.0}
    with pytest.raises(ValueError, match="sorted and unique"):
        SparseVector(np.array([3, 1]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="equal length"):
        SparseVector(np.array([1]), np.array([1.0, 2.0]))


def test_plan_batches_caps_count_and_tokens() -> None:
    lengths = [5, 100, 7, 3, 100, 50, 8192]
    plan = plan_batches(lengths, max_batch_size=3, max_batch_tokens=200)
    assert sorted(i for b in plan for i in b) == list(range(len(lengths)))
    assert plan[0] == [6]  # over-budget item alone
    for batch in plan:
        assert len(batch) <= 3
        if len(batch) > 1:
            assert len(batch) * max(lengths[i] for i in batch) <= 200
    assert padded_tokens(lengths, plan) < len(lengths) * 8192


def test_weighted_sum_fusion_hand_computed() -> None:
    stages = {"a": {"dense": 0.9}, "b": {"dense": 0.5, "sparse": 2.0}, "c": {"sparse": 0.1}}
    fused = scoring.weighted_sum_fusion(stages, {"dense": 1.0, "sparse": 0.25})
    assert [k for k, _ in fused] == ["b", "a", "c"]
    assert dict(fused) == pytest.approx({"a": 0.9, "b": 0.5 + 0.5, "c": 0.025})
