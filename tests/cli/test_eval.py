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


def test_eval_known_scores_and_equal_to_own_search(
    bge: Runner, tiny_beir: Path, tiny_m3_path: Path, tmp_path: Path, m3
) -> None:  # type: ignore[no-untyped-def]
    uri = f"qdrant:{tmp_path / 'q'}"
    out_json = tmp_path / "scores.json"
    res = bge("eval", tiny_beir, "--store", uri, "--model", tiny_m3_path, "--json", out_json)
    assert res.code == 0, res.err
    scores = json.loads(out_json.read_text())
    assert list(scores) == ["dense", "sparse", "hybrid", "colbert"]
    assert scores["dense"] == {
        "ndcg@10": pytest.approx(1.0),
        "recall@100": pytest.approx(1.0),
        "mrr@10": pytest.approx(1.0),
    }
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
            run = {
                q: [h.metadata["doc_id"] for h in index.search(text, 100, mode=mode)]
                for q, text in data.queries.items()
            }
            assert evaluate_run(run, data.qrels) == pytest.approx(scores[mode], abs=1e-6), mode
    finally:
        index.close()

    # A re-run finds the corpus stored and does not index again.
    again = bge("eval", tiny_beir, "--store", uri, "--modes", "dense", "-v")
    assert again.code == 0, again.err
    assert "0 documents encoded (0 new, 0 changed), 40 unchanged reused, 0 no longer in the corpus removed" in again.err
    assert "encoded 1" not in again.err

    # bge search works on an eval collection (its layout is "documents").
    found = bge("search", "the cat", "--store", uri, "--collection", "beir_tinybeir", "--json", "-k", "3")
    assert found.code == 0, found.err
    assert len(found.out.splitlines()) == 3


def test_eval_reuses_only_what_is_the_same_corpus(
    bge: Runner, tiny_beir: Path, tiny_m3_path: Path, tmp_path: Path
) -> None:
    """Editing texts of a stored corpus re-encodes them: the scores equal a fresh store's (was: the old index reused)."""
    uri = f"qdrant:{tmp_path / 'q'}"
    assert bge("eval", tiny_beir, "--store", uri, "--model", tiny_m3_path, "--modes", "dense").code == 0
    rows = [json.loads(line) for line in (tiny_beir / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    for row in rows[:20]:
        row["text"] = "the cat and the dog " + row["text"][::-1]  # changed texts: the relevant docs move
    rows = rows[:-1]  # one document less (c39, not relevant to any query)
    (tiny_beir / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out_reused, out_fresh = tmp_path / "reused.json", tmp_path / "fresh.json"
    res = bge("eval", tiny_beir, "--store", uri, "--modes", "dense", "--json", out_reused, "-v")
    assert res.code == 0, res.err
    assert "20 documents encoded (0 new, 20 changed), 19 unchanged reused, 1 no longer in the corpus removed" in res.err
    fresh = bge(
        "eval",
        tiny_beir,
        "--store",
        f"qdrant:{tmp_path / 'fresh'}",
        "--model",
        tiny_m3_path,
        "--modes",
        "dense",
        "--json",
        out_fresh,
    )
    assert fresh.code == 0, fresh.err
    reused, new = json.loads(out_reused.read_text()), json.loads(out_fresh.read_text())
    assert reused["dense"] == pytest.approx(new["dense"], abs=1e-6)
    assert new["dense"]["ndcg@10"] < 0.9  # the edits changed the scores, so equality above means something


def test_eval_drops_the_query_id_by_default(bge: Runner, tiny_m3_path: Path, tmp_path: Path) -> None:
    """ArguAna-style data: each query is also a document under the query's id (BEIR ignores it)."""
    rng = random.Random(9)
    corpus = {f"d{i}": ("", words(rng, 20)) for i in range(12)}
    queries = {f"d{i}": corpus[f"d{i}"][1] for i in range(0, 12, 2)}  # query id = its own document's id
    qrels = {q: {f"d{int(q[1:]) + 1}": 1} for q in queries}  # the relevant one is the next document
    beir = write_beir(tmp_path / "argu", corpus, queries, qrels)
    uri = f"qdrant:{tmp_path / 'q'}"
    dropped, kept = tmp_path / "dropped.json", tmp_path / "kept.json"
    assert bge("eval", beir, "--store", uri, "--model", tiny_m3_path, "--modes", "dense", "--json", dropped).code == 0
    assert bge("eval", beir, "--store", uri, "--modes", "dense", "--json", kept, "--keep-identical-ids").code == 0
    d, k = json.loads(dropped.read_text())["dense"], json.loads(kept.read_text())["dense"]
    # With its own id kept, every query's top hit is itself (cosine 1): the relevant document is at best 2nd.
    assert k["mrr@10"] <= 0.5 + 1e-9 and d["mrr@10"] > k["mrr@10"]


@pytest.mark.slow  # loads the real all-MiniLM-L6-v2 weights
def test_eval_dense_only_model_refuses_sparse_modes(
    bge: Runner, tiny_beir: Path, minilm_path: Path, tmp_path: Path
) -> None:
    res = bge("eval", tiny_beir, "--store", f"qdrant:{tmp_path / 'q'}", "--model", minilm_path)
    assert res.code == 1 and "dense-only" in res.err and "Traceback" not in res.err
    assert bge("eval", tiny_beir, "--store", f"qdrant:{tmp_path / 'q2'}", "--modes", "dense,bogus").code == 1


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["qdrant", "milvus"])
def test_scifact_minilm_dense(kind: str, bge: Runner, scifact_dir: Path, tmp_path: Path) -> None:
    uri = f"qdrant:{tmp_path / 'q'}" if kind == "qdrant" else f"milvus:{tmp_path / 'm.db'}"
    out_json = tmp_path / "scifact.json"
    res = bge(
        "eval",
        scifact_dir,
        "--store",
        uri,
        "--modes",
        "dense",
        "--model",
        "sentence-transformers/all-MiniLM-L6-v2",
        "--json",
        out_json,
        "--device",
        "cpu",
        "--dtype",
        "float32",
    )
    assert res.code == 0, res.err
    scores = json.loads(out_json.read_text())
    print(kind, scores)
    assert scores["dense"]["ndcg@10"] == pytest.approx(0.6451, abs=0.005)
