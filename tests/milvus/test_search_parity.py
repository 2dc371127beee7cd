"""Search results through Milvus Lite equal the exact reference store (InMemoryStore)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from bge_milvus import MilvusIndex, MilvusStore
from bge_milvus.store import PLACEHOLDER_TOKEN
from milvus_helpers import CORPUS, metadatas_for, release

from bge_core.index import CollectionSpec, Record, SearchRequest, VectorIndex, make_id
from bge_core.reference import InMemoryStore
from bge_core.scoring import lexical_score, rrf_fusion
from bge_core.types import Hit, SparseVector

QUERIES = ["the cat on the mat", "cancer cells in the liver", "dense sparse retrieval", "heart disease drug", "zzz"]
SETTINGS = [
    ("dense", "rrf", 60),
    ("sparse", "rrf", 60),
    ("hybrid", "rrf", 60),
    ("hybrid", "rrf", 1),
    ("hybrid", "rrf", 0),
    ("hybrid", "dbsf", 60),
    ("hybrid", "weighted", 60),
    ("colbert", "rrf", 60),
]


def assert_same(got: list[Hit], want: list[Hit], tol: float = 1e-5) -> None:
    assert len(got) == len(want), ([h.id for h in got], [h.id for h in want])
    gs, ws = np.array([h.score for h in got]), np.array([h.score for h in want])
    np.testing.assert_allclose(gs, ws, atol=tol, rtol=0)
    # Order must match; where scores tie (within tol) the tied ids must be the same set.
    i = 0
    while i < len(want):
        j = i
        while j + 1 < len(want) and abs(ws[j + 1] - ws[i]) <= tol:
            j += 1
        if j == i:
            assert got[i].id == want[i].id
        elif j + 1 < len(want):  # a tie group wholly inside the list
            assert {h.id for h in got[i : j + 1]} == {h.id for h in want[i : j + 1]}
        i = j + 1
    for g in got:
        w = {h.id: h for h in want}.get(g.id)
        if w is not None:
            assert g.text == w.text and g.metadata == w.metadata


@pytest.fixture(scope="module")
def indexes(tmp_path_factory: pytest.TempPathFactory, m3: Any) -> Iterator[tuple[MilvusIndex, VectorIndex]]:
    """Read-only: one Milvus Lite database for the module, and the reference."""
    from pymilvus import MilvusClient

    corpus = list(CORPUS)
    metadatas = metadatas_for(corpus)
    path = tmp_path_factory.mktemp("milvus") / "parity.db"
    client = MilvusClient(str(path))
    idx = MilvusIndex(client, "docs", m3, show_progress=False)
    ref = VectorIndex(InMemoryStore(), m3)
    assert idx.add_texts(corpus, metadatas) == ref.add_texts(corpus, metadatas)
    yield idx, ref
    client.close()
    release(path)


def test_corpus_in_step(corpus: list[str]) -> None:
    assert CORPUS == corpus


@pytest.mark.parametrize("mode,fusion,rrf_k", SETTINGS)
def test_modes_equal_reference(indexes: tuple[MilvusIndex, VectorIndex], mode: Any, fusion: Any, rrf_k: int) -> None:
    idx, ref = indexes
    for q in QUERIES:
        for k in (3, 12):
            got = idx.search(q, k, mode=mode, fusion=fusion, rrf_k=rrf_k, prefetch_limit=6)
            want = ref.search(q, k, mode=mode, fusion=fusion, rrf_k=rrf_k, prefetch_limit=6)
            assert_same(got, want)


def test_weights_and_filters_equal_reference(indexes: tuple[MilvusIndex, VectorIndex]) -> None:
    idx, ref = indexes
    for flt in ({"group": "even"}, {"tag": ["t0", "t2"]}, {"i": 3}, {"i": 3.0}, {"group": "odd", "tag": "t1"}):
        for mode in ("dense", "sparse", "hybrid", "colbert"):
            got = idx.search("the cells", 12, mode=mode, filter=flt)  # type: ignore[arg-type]
            want = ref.search("the cells", 12, mode=mode, filter=flt)  # type: ignore[arg-type]
            assert_same(got, want)
    got = idx.search("the cells", 12, mode="hybrid", fusion="weighted", weights=(0.3, 2.0))
    assert_same(got, ref.search("the cells", 12, mode="hybrid", fusion="weighted", weights=(0.3, 2.0)))


def test_rrf_rank_origin_is_one(indexes: tuple[MilvusIndex, VectorIndex]) -> None:
    """Milvus' RRFRanker(k) scores 1/(k + rank) with rank from 1: with k=1 the best document
    of a list gets 1/2 (rank from 0 would give 1/1)."""
    idx, _ = indexes
    req = idx.plan("the cat", 12, mode="hybrid", rrf_k=1, prefetch_limit=12)
    hits = idx.store.query(req)
    dense = idx.store.query(SearchRequest("dense", 12, req.dense, None, None, "rrf", 1, (1, 1), 12, None))
    sparse = idx.store.query(SearchRequest("sparse", 12, None, req.sparse, None, "rrf", 1, (1, 1), 12, None))
    expected = dict(rrf_fusion([[h.id for h in dense], [h.id for h in sparse]], k=1))
    assert hits and all(abs(h.score - expected[h.id]) < 1e-6 for h in hits)
    assert max(h.score for h in hits) <= 1.0 + 1e-6  # rank from 0 would give up to 2.0


def test_sparse_ip_equals_lexical_score(client: Any) -> None:
    rng = np.random.default_rng(7)
    store = MilvusStore(client, "lex")
    store.ensure(CollectionSpec(dense_dim=4, sparse=True, colbert_dim=None))
    docs = []
    for i in range(60):
        idx = np.unique(rng.integers(0, 300, size=rng.integers(1, 25))).astype(np.int32)
        docs.append(SparseVector(idx, rng.uniform(0.001, 3.0, size=idx.size).astype(np.float32)))
    dense = rng.normal(size=(60, 4)).astype(np.float32)
    store.upsert([Record(f"d{i}", f"t{i}", {}, "h", dense[i], docs[i], None) for i in range(60)])
    for _ in range(10):
        qi = np.unique(rng.integers(0, 300, size=12)).astype(np.int32)
        q = SparseVector(qi, rng.uniform(0.01, 2.0, size=qi.size).astype(np.float32))
        hits = store.query(SearchRequest("sparse", 60, None, q, None, "rrf", 60, (1, 1), 60, None))
        want = {f"d{i}": lexical_score(q, d) for i, d in enumerate(docs) if lexical_score(q, d) > 0}
        assert {h.id for h in hits} == set(want)
        for h in hits:
            assert h.score == pytest.approx(want[h.id], rel=1e-6, abs=1e-6)


def test_empty_sparse_rows_are_stored_and_found_by_dense(
    indexes: tuple[MilvusIndex, VectorIndex], corpus: list[str], m3: Any
) -> None:
    idx, _ = indexes
    assert idx.count() == len(corpus)
    lexical = m3.encode_outputs(corpus, query=False, dense=False, sparse=True, colbert=False).sparse
    empty_texts = [t for t, sv in zip(corpus, lexical) if len(sv) == 0]
    assert "" in empty_texts
    empty_ids = [make_id(None, t) for t in empty_texts]
    assert [h.text for h in idx.get(empty_ids)] == empty_texts
    for text in empty_texts:
        dense_ids = [h.id for h in idx.search(text or "zzz", 12, mode="dense")]
        assert set(empty_ids) <= set(dense_ids)
    for q in QUERIES + ["the"]:
        sparse = idx.search(q, 12, mode="sparse")
        assert not set(empty_ids) & {h.id for h in sparse}
        assert all(h.score > 0 for h in sparse)
    # The placeholder dimension cannot be reached by any int32 query id.
    probe = SparseVector(np.array([0, 2**31 - 1], dtype=np.int32), np.array([1.0, 1.0], dtype=np.float32))
    req = SearchRequest("sparse", 12, None, probe, None, "rrf", 60, (1, 1), 12, None)
    assert idx.store.query(req) == []
    assert PLACEHOLDER_TOKEN > 2**31


def test_empty_query_sparse_falls_back_to_dense_list(indexes: tuple[MilvusIndex, VectorIndex]) -> None:
    idx, ref = indexes
    # "zzz" has no known tokens: its sparse vector is empty, so only the dense list fuses.
    for mode in ("sparse", "hybrid", "colbert"):
        assert_same(idx.search("zzz", 5, mode=mode), ref.search("zzz", 5, mode=mode))  # type: ignore[arg-type]


def test_native_filter_string_passes_through(indexes: tuple[MilvusIndex, VectorIndex]) -> None:
    idx, ref = indexes
    got = idx.search("the cells", 12, mode="dense", filter='metadata["i"] >= 6')
    want = [h for h in ref.search("the cells", 12, mode="dense") if h.metadata["i"] >= 6]
    assert_same(got, want)


def test_too_large_limit_is_refused(indexes: tuple[MilvusIndex, VectorIndex]) -> None:
    idx, _ = indexes
    with pytest.raises(ValueError, match="16384"):
        idx.search("cat", 20000, mode="dense")
