"""Edge search equals the exact InMemoryStore reference: same top-k order, scores within 1e-5,
for every mode and fusion, with and without filters."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from edge_helpers import EDGE_CORPUS, QUERIES, assert_same_hits
from store_checks import SEARCH_CASES

from bge_core.scoring import rrf_fusion

CASES = SEARCH_CASES


@pytest.fixture(scope="module")
def stores(m3: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    """(QdrantEdgeIndex, reference VectorIndex) holding EDGE_CORPUS (read-only tests)."""
    from bge_core.index import VectorIndex
    from bge_core.reference import InMemoryStore
    from bge_qdrant import QdrantEdgeIndex

    texts, metas = [t for t, _ in EDGE_CORPUS], [m for _, m in EDGE_CORPUS]
    path = Path(tmp_path_factory.mktemp("edge")) / "idx"
    edge = QdrantEdgeIndex(path, m3, show_progress=False, payload_indexes={"topic": "keyword", "g": "integer"})
    ref = VectorIndex(InMemoryStore(), m3)
    edge.add_texts(texts, metas)
    ref.add_texts(texts, metas)
    yield edge, ref
    edge.close()


def compare(stores: tuple[Any, Any], query: str, k: int, stage: str, **kw: Any) -> list[Any]:
    edge, ref = stores
    request = edge.plan(query, k, **kw)
    got = edge.store.query(request)
    # the final limit does not change fusion (it runs on the prefetch lists): a longer
    # reference list shows ties across the cut
    wide = ref.store.query(dataclasses.replace(request, limit=request.limit + 20))
    assert_same_hits(wide[: request.limit], got, stage, beyond=wide[request.limit :])
    return list(got)


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


@pytest.mark.parametrize("rrf_k", [0, 1, 60, 1000])
def test_rrf_k_means_one_over_k_plus_rank(stores: Any, rrf_k: int) -> None:
    edge = stores[0]
    query = QUERIES[0]
    got = compare(stores, query, 6, "fusion", mode="hybrid", rrf_k=rrf_k, prefetch_limit=6)
    dense = [h.id for h in edge.search(query, 6, mode="dense")]
    sparse = [h.id for h in edge.search(query, 6, mode="sparse")]
    fused = dict(rrf_fusion([dense, sparse], k=rrf_k))
    for h in got:
        assert h.score == pytest.approx(fused[h.id], rel=1e-6)  # Edge scores are float32


@pytest.mark.parametrize(
    "flt", [{"g": 1}, {"topic": "bio"}, {"g": [0, 2]}, {"topic": ["sky", "art"], "g": 0}, {"x": 2.5}, {"g": 1.0}]
)
@pytest.mark.parametrize(("mode", "fusion", "stage"), CASES)
def test_dict_filters_match_reference(stores: Any, flt: dict[str, Any], mode: str, fusion: str, stage: str) -> None:
    got = compare(stores, QUERIES[0], 12, stage, mode=mode, fusion=fusion, filter=flt, prefetch_limit=3)
    assert got or mode == "sparse"
    for h in got:
        for key, want in flt.items():
            assert h.metadata[key] in (want if isinstance(want, list) else [want])


@pytest.mark.parametrize(
    "value",
    ['bio" || true', "bio' OR 1=1 --", "*", "", "metadata.topic", '") or (1==1', "bio\\", ["bio", '" or "1"="1']],
)
def test_hostile_filter_values_never_widen(stores: Any, value: Any) -> None:
    edge, ref = stores
    for mode in ("dense", "hybrid"):
        got = edge.search(QUERIES[0], 12, mode=mode, filter={"topic": value})
        want = ref.search(QUERIES[0], 12, mode=mode, filter={"topic": value})
        assert [h.id for h in got] == [h.id for h in want]
        for h in got:
            assert h.metadata["topic"] == "bio"


@pytest.mark.parametrize("key", ['topic" || "a', "a.b", "x[0]", "metadata"])
def test_odd_filter_keys_are_literal_or_refused(stores: Any, key: str) -> None:
    edge = stores[0]
    if '"' in key:
        with pytest.raises(ValueError, match="double quote"):
            edge.search(QUERIES[0], 5, mode="dense", filter={key: "bio"})
    else:
        assert edge.search(QUERIES[0], 5, mode="dense", filter={key: "bio"}) == []


def test_payload_indexes_exist(stores: Any) -> None:
    schema = stores[0].store._require().info().payload_schema
    assert {"metadata.topic", "metadata.g"} <= set(schema)


def test_rerank_keeps_stage_scores(stores: Any, reranker: Any) -> None:
    hits = stores[0].search(QUERIES[0], 3, mode="colbert", rerank=reranker)
    assert len(hits) == 3
    for h in hits:
        assert set(h.scores) == {"colbert", "rerank"}
        assert h.score == h.scores["rerank"]


def test_get_count_and_native_filter(stores: Any) -> None:
    import qdrant_edge as qe

    edge, ref = stores
    assert edge.count() == len(EDGE_CORPUS)
    ids = [h.id for h in ref.search(QUERIES[1], 3, mode="dense")]
    got = edge.get([*ids, "not-a-uuid", "5b0e1f0e-6d2c-4c55-9a6b-3b1f4f0e9b8a"])
    assert [h.id for h in got] == ids
    native = qe.Filter(must=[qe.FieldCondition(key='metadata."g"', match=qe.MatchValue(2))])
    hits = edge.search(QUERIES[0], 12, mode="dense", filter=native)
    assert hits and all(h.metadata["g"] == 2 for h in hits)
