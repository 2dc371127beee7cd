"""``bge eval`` on a tiny BEIR sample (known scores) and, marked slow, on SciFact."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from bge_core.evaluation import evaluate_run, load_beir
from tests.cli.conftest import Runner, words, write_beir


@pytest.fixture
def tiny_beir(tmp_path: Path) -> Path:
    rng = random.Random(5)
    corpus = {f"c{i}": (words(rng, 3), words(rng, 25)) for i in range(40)}
    # Each query is exactly the BEIR text of one document (title + " " + text): dense search
    # ranks that document first (cosine 1), so dense scores are known to be 1.0.
    targets = [f"c{i}" for i in range(0, 40, 4)]
    queries = {f"q{i}": f"{corpus[d][0]} {corpus[d][1]}" for i, d in enumerate(targets)}
    qrels = {f"q{i}": {d: 2} for i, d in enumerate(targets)}
    queries["q_none"] = "the cat"
    qrels["q_none"] = {"c1": 0}  # no relevant document: skipped, as in BEIR
    return write_beir(tmp_path / "tinybeir", corpus, queries, qrels)


def test_eval_known_scores_and_equal_to_own_search(bge: Runner, tiny_beir: Path, tiny_m3_path: Path, tmp_path: Path, m3) -> None:  # type: ignore[no-untyped-def]
    uri = f"qdrant:{tmp_path / 'q'}"
    out_json = tmp_path / "scores.json"
    res = bge("eval", tiny_beir, "--store", uri, "--model", tiny_m3_path, "--json", out_json)
    assert res.code == 0, res.err
    scores = json.loads(out_json.read_text())
    assert list(scores) == ["dense", "sparse", "hybrid", "colbert"]
    assert scores["dense"] == {"ndcg@10": pytest.approx(1.0), "recall@100": pytest.approx(1.0), "mrr@10": pytest.approx(1.0)}
    lines = res.out.splitlines()
    assert lines[1].split() == ["mode", "nDCG@10", "Recall@100", "MRR@10"]
    assert lines[2].split() == ["dense", "1.0000", "1.0000", "1.0000"]
    assert [line.split()[0] for line in lines[2:]] == ["dense", "sparse", "hybrid", "colbert"]

    # Every mode equals evaluate_run over the index's own searches (k=100) through the library.
    from bge_qdrant.store_uri import open_index

    data = load_beir(tiny_beir)
    index = open_index(uri, encoder=m3, collection="beir_tinybeir")
    try:
        assert index.count() == 40
        for mode in ("dense", "sparse", "hybrid", "colbert"):
            run = {q: [h.metadata["doc_id"] for h in index.search(text, 100, mode=mode)] for q, text in data.queries.items()}
            assert evaluate_run(run, data.qrels) == pytest.approx(scores[mode], abs=1e-6), mode
    finally:
        index.close()

    # A re-run finds the corpus stored and does not index again.
    again = bge("eval", tiny_beir, "--store", uri, "--modes", "dense", "-v")
    assert again.code == 0, again.err
    assert "already holds the 40 documents" in again.err
    assert "encoded" not in again.err


@pytest.mark.slow  # loads the real all-MiniLM-L6-v2 weights
def test_eval_dense_only_model_refuses_sparse_modes(bge: Runner, tiny_beir: Path, minilm_path: Path, tmp_path: Path) -> None:
    res = bge("eval", tiny_beir, "--store", f"qdrant:{tmp_path / 'q'}", "--model", minilm_path)
    assert res.code == 1 and "dense-only" in res.err and "Traceback" not in res.err
    assert bge("eval", tiny_beir, "--store", f"qdrant:{tmp_path / 'q2'}", "--modes", "dense,bogus").code == 1


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["qdrant", "milvus"])
def test_scifact_minilm_dense(kind: str, bge: Runner, scifact_dir: Path, tmp_path: Path) -> None:
    uri = f"qdrant:{tmp_path / 'q'}" if kind == "qdrant" else f"milvus:{tmp_path / 'm.db'}"
    out_json = tmp_path / "scifact.json"
    res = bge(
        "eval", scifact_dir, "--store", uri, "--modes", "dense", "--model", "sentence-transformers/all-MiniLM-L6-v2",
        "--json", out_json, "--device", "cpu", "--dtype", "float32",
    )
    assert res.code == 0, res.err
    scores = json.loads(out_json.read_text())
    print(kind, scores)
    assert scores["dense"]["ndcg@10"] == pytest.approx(0.6451, abs=0.005)
