"""Qdrant search equals the exact InMemoryStore reference: same top-k order, scores within 1e-5."""

from __future__ import annotations

from typing import Any

import pytest
from qdrant_helpers import QUERIES, assert_same_hits

from bge_core.scoring import rrf_fusion


@pytest.fixture(scope="module")
def stores(m3: Any) -> tuple[Any, Any]:
    """(QdrantIndex, reference VectorIndex) holding QD_CORPUS, shared by this module's
    read-only tests."""
    from bge_qdrant import QdrantIndex
    from qdrant_client import QdrantClient
    from qdrant_helpers import QD_CORPUS

    from bge_core.index import VectorIndex
    from bge_core.reference import InMemoryStore

    texts, metas = [t for t, _ in QD_CORPUS], [m for _, m in QD_CORPUS]
    qd = QdrantIndex(QdrantClient(":memory:"), "parity", m3)
    ref = VectorIndex(InMemoryStore(), m3)
    qd.add_texts(texts, metas)
    ref.add_texts(texts, metas)
    return qd, ref


def compare(stores: tuple[Any, Any], query: str, k: int, stage: str, **kw: Any) -> list[Any]:
    """Plan once (one query encoding), run the planned search on both stores, compare."""
    qd, ref = stores
    request = qd.plan(query, k, **kw)
    got = qd.store.query(request)
    assert_same_hits(ref.store.query(request), got, stage)
    return list(got)

CASES = [
    ("dense", "rrf", "dense"),
    ("sparse", "rrf", "sparse"),
    ("hybrid", "rrf", "fusion"),
    ("hybrid", "dbsf", "fusion"),
    ("hybrid", "weighted", "fusion"),
    ("colbert", "rrf", "colbert"),
]


@pytest.mark.parametrize(("mode", "fusion", "stage"), CASES)
@pytest.mark.parametrize("prefetch_limit", [None, 3])
def test_modes_match_reference(stores: Any, mode: str, fusion: str, stage: str, prefetch_limit: int | None) -> None:
    for query in QUERIES:
        for k in (3, 12):
            kw: dict[str, Any] = {"mode": mode, "fusion": fusion, "prefetch_limit": prefetch_limit}
            if fusion == "weighted":
                kw["weights"] = (0.4, 0.6)
            got = compare(stores, query, k, stage, **kw)
            if query != "zzz qqq" or mode != "sparse":
                assert got, (query, mode)


@pytest.mark.parametrize("rrf_k", [0, 1, 2, 60, 1000])
def test_rrf_k_means_one_over_k_plus_rank(stores: Any, rrf_k: int) -> None:
    filled = stores[0]
    query = QUERIES[0]
    got = compare(stores, query, 6, "fusion", mode="hybrid", rrf_k=rrf_k, prefetch_limit=6)
    # and directly against the formula on the two prefetch lists (6 each, as limit <= 6)
    dense = [h.id for h in filled.search(query, 6, mode="dense")]
    sparse = [h.id for h in filled.search(query, 6, mode="sparse")]
    fused = dict(rrf_fusion([dense, sparse], k=rrf_k))
    for h in got:
        assert h.score == pytest.approx(fused[h.id], abs=1e-9)
    top = got[0]
    expect_top = sum(1.0 / (rrf_k + lst.index(top.id) + 1) for lst in (dense, sparse) if top.id in lst)
    assert top.score == pytest.approx(expect_top, abs=1e-9)


def test_colbert_reranks_only_the_union_of_candidates(stores: Any) -> None:
    filled = stores[0]
    query = QUERIES[0]
    dense = {h.id for h in filled.search(query, 3, mode="dense")}
    sparse = {h.id for h in filled.search(query, 3, mode="sparse")}
    got = filled.search(query, 3, mode="colbert", prefetch_limit=3)
    assert len(got) == 3 and {h.id for h in got} <= dense | sparse
    scores = [h.score for h in got]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("flt", [{"g": 1}, {"topic": "bio"}, {"g": [0, 2]}, {"topic": ["sky", "art"], "g": 0}, {"x": 2.5}, {"g": 1.0}])
@pytest.mark.parametrize(("mode", "fusion", "stage"), CASES)
def test_dict_filters_match_reference(stores: Any, flt: dict[str, Any], mode: str, fusion: str, stage: str) -> None:
    got = compare(stores, QUERIES[0], 12, stage, mode=mode, fusion=fusion, filter=flt, prefetch_limit=3)
    assert got or mode == "sparse"  # the x=2.5 row shares no word with the query
    for h in got:
        for key, want in flt.items():
            assert h.metadata[key] in (want if isinstance(want, list) else [want])


def test_rerank_keeps_stage_scores(stores: Any, reranker: Any) -> None:
    hits = stores[0].search(QUERIES[0], 3, mode="colbert", rerank=reranker)
    assert len(hits) == 3
    for h in hits:
        assert set(h.scores) == {"colbert", "rerank"}
        assert h.score == h.scores["rerank"]
