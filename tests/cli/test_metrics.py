"""``bge_core.evaluation`` metrics against hand-computed cases (the numbers ``bge eval`` prints)."""

from __future__ import annotations

import math

import pytest

from bge_core.evaluation import evaluate_run, mrr_at_k, ndcg_at_k, recall_at_k


def test_ndcg_graded_hand_computed() -> None:
    # Relevant: a (grade 2), b (grade 1), c (grade 2, never retrieved).
    rel = {"a": 2, "b": 1, "c": 2, "z": 0}
    ranked = ["x", "a", "y", "b"]
    dcg = 2 / math.log2(3) + 1 / math.log2(5)
    idcg = 2 / math.log2(2) + 2 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(ranked, rel, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(ranked, rel, 10) == pytest.approx(0.44992, abs=1e-5)  # 1.69254 / 3.76186
    # A document past rank 10 does not count.
    assert ndcg_at_k(["x"] * 10 + ["a"], {"a": 1}, 10) == 0.0
    assert ndcg_at_k(["a", "c", "b"], rel, 10) == pytest.approx(1.0)


def test_recall_at_100() -> None:
    rel = {"a": 1, "b": 2, "c": 1, "n": 0}
    ranked = [f"x{i}" for i in range(99)] + ["a", "b"]  # a at rank 100, b at 101
    assert recall_at_k(ranked, rel, 100) == pytest.approx(1 / 3)
    assert recall_at_k(["c", "b", "a"], rel, 100) == 1.0
    assert recall_at_k(["n"], rel, 100) == 0.0


def test_mrr_at_10() -> None:
    rel = {"a": 1, "b": 1}
    assert mrr_at_k(["x", "y", "b", "a"], rel, 10) == pytest.approx(1 / 3)
    assert mrr_at_k(["x"] * 10 + ["a"], rel, 10) == 0.0
    assert mrr_at_k(["a"], rel, 10) == 1.0


def test_evaluate_run_averages_and_skips_queries_without_relevant_docs() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 2, "c": 1}, "q3": {"d": 0}}
    run = {"q1": ["a"], "q2": ["x", "c"], "q3": ["d"]}
    got = evaluate_run(run, qrels)
    q2_ndcg = (1 / math.log2(3)) / (2 + 1 / math.log2(3))
    assert got["ndcg@10"] == pytest.approx((1.0 + q2_ndcg) / 2)
    assert got["recall@100"] == pytest.approx((1.0 + 0.5) / 2)
    assert got["mrr@10"] == pytest.approx((1.0 + 0.5) / 2)
    with pytest.raises(ValueError):
        evaluate_run(run, {"q": {"a": 0}})
