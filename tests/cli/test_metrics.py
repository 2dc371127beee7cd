"""``bge_core.evaluation`` metrics against hand-computed cases (the numbers ``bge eval`` prints)."""

from __future__ import annotations

import math
import re

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


def test_identical_ids_are_dropped_by_default() -> None:
    run = {"q1": ["q1", "d1", "d2"], "q2": ["d3", "q2"]}
    qrels = {"q1": {"d1": 1}, "q2": {"d3": 1}}
    assert evaluate_run(run, qrels)["mrr@10"] == 1.0
    assert evaluate_run(run, qrels, ignore_identical_ids=False)["mrr@10"] == pytest.approx(0.75)


@pytest.mark.parametrize("kind", ["binary", "graded", "zero_judged"])
def test_metrics_equal_ir_measures_on_random_runs(kind: str) -> None:
    """Checked against an independent implementation (ir_measures over pytrec_eval)."""
    import random

    ir_measures = pytest.importorskip("ir_measures")
    from ir_measures import RR, R, nDCG

    rng = random.Random({"binary": 1, "graded": 2, "zero_judged": 3}[kind])
    docs = [f"d{i}" for i in range(300)]
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, list[str]] = {}
    for q in range(60):
        qid = f"q{q}"
        judged = rng.sample(docs, rng.randint(1, 25))
        if kind == "binary":
            qrels[qid] = {d: 1 for d in judged}
        elif kind == "graded":
            qrels[qid] = {d: rng.choice([1, 2, 3]) for d in judged}
        else:  # zero grades mixed in, and some queries with only zero grades (skipped by both)
            qrels[qid] = {d: (0 if q % 7 == 0 else rng.choice([0, 0, 1, 2])) for d in judged}
        run[qid] = rng.sample(docs, rng.randint(0, 150))
    ours = evaluate_run(run, qrels, ignore_identical_ids=False)
    scored = {q: {d: float(len(ranked) - i) for i, d in enumerate(ranked)} for q, ranked in run.items()}
    per_query: dict[str, dict[str, float]] = {}
    for m in ir_measures.iter_calc([nDCG @ 10, R @ 100, RR @ 10], qrels, scored):
        per_query.setdefault(str(m.measure), {})[m.query_id] = m.value
    with_rel = [q for q, rel in qrels.items() if any(g > 0 for g in rel.values())]
    assert len(with_rel) < len(qrels) or kind != "zero_judged"
    for ours_name, theirs in (("ndcg@10", "nDCG@10"), ("recall@100", "R@100"), ("mrr@10", "RR@10")):
        expected = sum(per_query[theirs].get(q, 0.0) for q in with_rel) / len(with_rel)
        assert ours[ours_name] == pytest.approx(expected, abs=1e-6), ours_name


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("corpus.jsonl", '{"_id": "d1", "text": "ok"}\n{"_id": "d2", "text": \n', "corpus.jsonl:2: malformed JSON"),
        ("corpus.jsonl", '{"_id": "d1", "text": "ok"}\n{"text": "no id"}\n', "corpus.jsonl:2: no '_id' field"),
        ("corpus.jsonl", '{"_id": "d1", "text": 5}\n', "corpus.jsonl:1: no 'text' string field"),
        ("queries.jsonl", '{"_id": "q1", "text": "ok"}\n[1]\n', "queries.jsonl:2: expected a JSON object"),
        (
            "qrels/test.tsv",
            "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\n",
            "test.tsv:3: expected query-id, corpus-id and score",
        ),
        ("qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\tyes\n", "test.tsv:2: score 'yes' is not an integer"),
    ],
)
def test_malformed_beir_files_name_file_and_line(tmp_path, name: str, content: str, needle: str) -> None:  # type: ignore[no-untyped-def]
    from bge_core.evaluation import load_beir

    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\n', encoding="utf-8")
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": "ok"}\n', encoding="utf-8")
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n", encoding="utf-8")
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(needle)):
        load_beir(tmp_path)
