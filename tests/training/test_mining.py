"""Hard-negative mining: format, rank range, positives dropped, seeding, false-negative filter, errors."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bge_core.mining import (
    MiningError,
    MiningQuery,
    TrainExample,
    load_beir_queries,
    load_jsonl_queries,
    mine_hard_negatives,
    parse_rank_range,
    write_examples,
)


def test_beir_rows_sample_inside_the_rank_range_without_positives(dense_index: Any, beir_dir: Path) -> None:
    queries = load_beir_queries(beir_dir, dense_index, split="train")
    assert len(queries) == 12 and queries[0].pos_ids == ("d0", "d20")
    stats = mine_hard_negatives(dense_index, queries, negatives=5, rank_range=(2, 30), seed=1)
    assert stats.queries == 12 and stats.negatives == 60 and stats.short_rows == 0
    for q, ex in zip(queries, stats.examples):
        hits = dense_index.search(q.query, k=30, mode="dense")
        allowed = {h.text for h in hits[2:30] if h.metadata["doc_id"] not in q.pos_ids}
        assert len(ex.neg) == 5 and len(set(ex.neg)) == 5
        assert set(ex.neg) <= allowed
        assert not set(ex.neg) & set(q.pos)
        assert ex.pos == list(q.pos)
        assert ex.pos_scores is None and "pos_scores" not in ex.to_json()


def test_positive_inside_the_range_is_dropped(dense_index: Any) -> None:
    # Rank range 0-60 covers the whole corpus: the positive is always a candidate.
    hits = dense_index.search("cancer cells", k=60, mode="dense")
    pos = hits[0]
    q = MiningQuery("x", "cancer cells", (pos.text,), (pos.metadata["doc_id"],))
    stats = mine_hard_negatives(dense_index, [q], negatives=59, rank_range=(0, 60), seed=0)
    assert pos.text not in stats.examples[0].neg
    assert len(stats.examples[0].neg) == 59 and stats.dropped_positives == 1


def test_same_seed_same_rows_other_seed_other_rows(dense_index: Any, beir_dir: Path) -> None:
    queries = load_beir_queries(beir_dir, dense_index, split="train")
    a = mine_hard_negatives(dense_index, queries, negatives=4, rank_range=(1, 40), seed=7).examples
    b = mine_hard_negatives(dense_index, queries, negatives=4, rank_range=(1, 40), seed=7).examples
    c = mine_hard_negatives(dense_index, queries, negatives=4, rank_range=(1, 40), seed=8).examples
    assert a == b
    assert a != c


class FakeScorer:
    """Scores a passage by the first word it shares with a marker set; positives score 1.0."""

    def __init__(self, high: set[str], positives: Sequence[str]) -> None:
        self.high, self.positives = high, set(positives)

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        return [1.0 if p in self.positives else (0.99 if p in self.high else 0.1) for p in passages]


def test_positive_aware_filter_drops_candidates_near_the_positive(dense_index: Any) -> None:
    hits = dense_index.search("cancer cells", k=60, mode="dense")
    pos = hits[0].text
    suspects = {h.text for h in hits[1:6]}
    q = MiningQuery("x", "cancer cells", (pos,))
    stats = mine_hard_negatives(
        dense_index,
        [q],
        negatives=50,
        rank_range=(0, 60),
        seed=0,
        scorer=FakeScorer(suspects, [pos]),
        max_neg_ratio=0.95,
    )
    ex = stats.examples[0]
    assert not set(ex.neg) & suspects
    assert stats.filtered_false_negatives == len(suspects)
    assert ex.pos_scores == [1.0] and ex.neg_scores == [0.1] * len(ex.neg)
    row = ex.to_json()
    assert set(row) == {"query", "pos", "neg", "pos_scores", "neg_scores"}


def test_dense_index_scorer_is_cosine(dense_index: Any) -> None:
    from bge_core.mining import DenseIndexScorer

    hits = dense_index.search("cancer cells", k=3, mode="dense")
    scores = DenseIndexScorer(dense_index).score("cancer cells", [h.text for h in hits])
    assert scores == pytest.approx([h.score for h in hits], abs=1e-4)


def test_written_file_is_flagembedding_format_and_atomic(tmp_path: Path) -> None:
    rows = [TrainExample("q", ["p"], ["n1", "n2"], prompt="Represent: ")]
    out = tmp_path / "sub" / "train.jsonl"
    assert write_examples(rows, out) == 1
    assert [json.loads(x) for x in out.read_text().splitlines()] == [
        {"query": "q", "pos": ["p"], "neg": ["n1", "n2"], "prompt": "Represent: "}
    ]
    assert [p.name for p in out.parent.iterdir()] == ["train.jsonl"]

    def boom() -> Any:
        yield TrainExample("q2", ["p"], [])
        raise RuntimeError("disk")

    with pytest.raises(RuntimeError):
        write_examples(boom(), out)
    assert json.loads(out.read_text())["query"] == "q"  # the old file is untouched
    assert [p.name for p in out.parent.iterdir()] == ["train.jsonl"]


def test_qrels_query_id_missing_from_queries_is_named(dense_index: Any, beir_dir: Path, tmp_path: Path) -> None:
    broken = shutil.copytree(beir_dir, tmp_path / "b")
    with open(broken / "qrels" / "train.tsv", "a", encoding="utf-8") as fh:
        fh.write("q999\td1\t1\n")
    with pytest.raises(MiningError, match="query id 'q999'"):
        load_beir_queries(broken, dense_index, split="train")


def test_qrels_doc_id_missing_from_index_is_named(dense_index: Any, beir_dir: Path, tmp_path: Path) -> None:
    broken = shutil.copytree(beir_dir, tmp_path / "b")
    with open(broken / "qrels" / "train.tsv", "a", encoding="utf-8") as fh:
        fh.write("q1\tnot-indexed\t1\n")
    with pytest.raises(MiningError, match="doc id 'not-indexed'.*query 'q1'.*not in the index"):
        load_beir_queries(broken, dense_index, split="train")


def test_missing_split_is_named(dense_index: Any, beir_dir: Path) -> None:
    with pytest.raises(MiningError, match="qrels/dev.tsv is missing"):
        load_beir_queries(beir_dir, dense_index, split="dev")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ('{"query": "q", "pos": ["p"]}\n{"query": "q2", "pos": []}\n', ':2: "pos"'),
        ('{"query": "q", "pos": ["p"]}\nnot json\n', ":2: not valid JSON"),
        ('{"pos": ["p"]}\n', ':1: "query"'),
        ("\n\n", "no queries"),
    ],
)
def test_jsonl_queries_errors_name_the_row(tmp_path: Path, content: str, match: str) -> None:
    f = tmp_path / "q.jsonl"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(MiningError, match=match):
        load_jsonl_queries(f)


def test_jsonl_queries_match_positives_by_text(dense_index: Any, tmp_path: Path) -> None:
    hits = dense_index.search("cancer cells", k=60, mode="dense")
    f = tmp_path / "q.jsonl"
    f.write_text(json.dumps({"query": "cancer cells", "pos": [hits[0].text]}) + "\n", encoding="utf-8")
    queries = load_jsonl_queries(f)
    ex = mine_hard_negatives(dense_index, queries, negatives=59, rank_range=(0, 60)).examples[0]
    assert hits[0].text not in ex.neg and len(ex.neg) == 59


def test_rank_range_and_option_errors(dense_index: Any) -> None:
    assert parse_rank_range("10-100") == (10, 100)
    with pytest.raises(MiningError, match="START-END"):
        parse_rank_range("ten")
    with pytest.raises(MiningError, match="empty"):
        parse_rank_range("50-10")
    with pytest.raises(MiningError, match="dense vectors only"):
        mine_hard_negatives(dense_index, [MiningQuery("x", "q", ("p",))], mode="hybrid")


def test_hybrid_is_the_default_on_m3_indexes(m3: Any) -> None:
    from bge_core.index import VectorIndex
    from bge_core.reference import InMemoryStore
    from bge_core.testing import TINY_CORPUS

    index = VectorIndex(InMemoryStore(), m3, show_progress=False)
    index.add_texts([t for t in TINY_CORPUS if t.strip()])
    seen: list[str] = []
    real = index.search

    def spy(query: str, k: int = 10, **kw: Any) -> Any:
        seen.append(kw["mode"])
        return real(query, k, **kw)

    index.search = spy  # type: ignore[method-assign]
    stats = mine_hard_negatives(
        index, [MiningQuery("x", "cancer cells", ("the cat is on the mat",))], negatives=3, rank_range=(0, 10)
    )
    assert seen == ["hybrid"] and len(stats.examples[0].neg) == 3


def test_reranker_scorer_uses_sigmoid_scores(reranker: Any) -> None:
    import numpy as np

    from bge_core.mining import RerankerScorer

    passages = ["cancer cells grow in the liver", "the cat is on the mat"]
    got = RerankerScorer(reranker).score("cancer", passages)
    want = reranker.score([("cancer", p) for p in passages], normalize=True)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert all(0.0 < s < 1.0 for s in got)
