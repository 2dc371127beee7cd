"""Every store returns the reference store's hits: each mode and fusion, filters (hostile
values included), gets. A search is planned once (one query encoding) and the same
``SearchRequest`` runs on the store and on :class:`bge_core.reference.InMemoryStore`."""

from __future__ import annotations

from typing import Any

import pytest
from store_checks import CORPUS, FILTERS, QUERIES, SEARCH_CASES, assert_same_hits
from store_kits import REFUSED_KEY_CHARS

from bge_core.index import VectorIndex, make_id

Pair = tuple[VectorIndex, VectorIndex]


def compare(filled: Pair, query: str, k: int, stage: str, **options: Any) -> list[Any]:
    index, ref = filled
    request = ref.plan(query, k, **options)
    got = index.store.query(request)
    assert_same_hits(ref.store.query(request), got, stage)
    return list(got)


@pytest.mark.parametrize(("mode", "fusion", "stage"), SEARCH_CASES)
@pytest.mark.parametrize("prefetch_limit", [None, 3])
def test_modes_and_fusions_equal_reference(
    filled: Pair, mode: str, fusion: str, stage: str, prefetch_limit: int | None
) -> None:
    for query in QUERIES:
        for k in (3, 12):
            got = compare(filled, query, k, stage, mode=mode, fusion=fusion, prefetch_limit=prefetch_limit)
            if query != "zzz qqq" or mode != "sparse":
                assert got, (query, mode)  # an empty answer would make the comparison vacuous


@pytest.mark.parametrize("rrf_k", [0, 1, 2, 60, 1000])
def test_rrf_k_means_one_over_k_plus_rank(filled: Pair, rrf_k: int) -> None:
    for query in QUERIES[:2]:
        hits = compare(filled, query, 12, "fusion", mode="hybrid", rrf_k=rrf_k, prefetch_limit=6)
        # the best possible score: rank 1 in both lists (rank from 1, as Qdrant and Milvus count)
        assert hits and hits[0].score <= 2.0 / (rrf_k + 1) + 1e-6  # float32 scores on Milvus


@pytest.mark.parametrize("weights", [(0.3, 2.0), (1.0, 0.0), (2.0, 0.5)])
def test_weighted_fusion_weights(filled: Pair, weights: tuple[float, float]) -> None:
    for query in QUERIES:
        compare(filled, query, 12, "fusion", mode="hybrid", fusion="weighted", weights=weights)


@pytest.mark.parametrize("flt", FILTERS, ids=repr)
def test_filters_equal_reference(filled: Pair, flt: dict[str, Any], request: pytest.FixtureRequest) -> None:
    refused = REFUSED_KEY_CHARS.get(request.node.callspec.params["filled"], "")
    if any(c in key for key in flt for c in refused):
        with pytest.raises(ValueError, match="cannot hold"):
            filled[0].search("the cells", k=12, mode="dense", filter=flt)
        return
    matching = {make_id(None, t) for t, m in CORPUS if _matches(m, flt)}
    for mode, fusion, stage in SEARCH_CASES:
        got = compare(filled, "the cells", 12, stage, mode=mode, fusion=fusion, filter=flt)
        assert {h.id for h in got} <= matching, (mode, flt)
    dense = compare(filled, "the cells", 12, "dense", mode="dense", filter=flt)
    assert {h.id for h in dense} == matching  # dense finds every row: the filter alone decides


def _matches(meta: dict[str, Any], flt: dict[str, Any]) -> bool:
    """The reference semantics, spelled out: equality by type family (bool / number / str)."""

    def same(a: Any, b: Any) -> bool:
        if isinstance(a, bool) or isinstance(b, bool):
            return isinstance(a, bool) and isinstance(b, bool) and a == b
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            return bool(a == b)
        return type(a) is type(b) and a == b

    for key, want in flt.items():
        values = want if isinstance(want, list) else [want]
        if key not in meta or not any(same(meta[key], v) for v in values):
            return False
    return True


def test_filters_select_something(filled: Pair) -> None:
    """The filter list is not vacuous: most filters match some rows, some match none."""
    sizes = [sum(_matches(m, f) for _, m in CORPUS) for f in FILTERS]
    assert sum(s > 0 for s in sizes) >= len(FILTERS) // 2 and 0 in sizes


def test_get_in_given_order(filled: Pair) -> None:
    index, ref = filled
    ids = [make_id(None, t) for t, _ in CORPUS][::-1] + ["00000000-0000-0000-0000-000000000000"]
    got, want = index.get(ids), ref.get(ids)
    assert [h.id for h in got] == [h.id for h in want] == ids[:-1]
    assert [(h.text, h.metadata) for h in got] == [(h.text, h.metadata) for h in want]
    assert index.count() == len(CORPUS)


def test_empty_sparse_rows_are_found_by_dense_only(filled: Pair) -> None:
    index, _ = filled
    texts = [t for t, _ in CORPUS]
    lexical = index.encoder.encode_outputs(texts, query=False, dense=False, sparse=True, colbert=False).sparse
    assert lexical is not None
    empty = [make_id(None, t) for t, sv in zip(texts, lexical) if len(sv) == 0]
    assert make_id(None, "") in empty
    assert {h.id for h in index.search("the", len(CORPUS), mode="dense")} >= set(empty)
    for query in QUERIES + ["the"]:
        sparse = index.search(query, len(CORPUS), mode="sparse")
        assert not set(empty) & {h.id for h in sparse} and all(h.score > 0 for h in sparse)


@pytest.mark.parametrize("bad", [True, False, 0, -1, 2.5, "3"])
def test_k_must_be_a_positive_int_on_every_store(filled: tuple[VectorIndex, VectorIndex], bad: Any) -> None:
    """The same refusal everywhere (issue 16.9: Milvus raised a raw MilvusException for True,
    Qdrant took it as 1), from a search and from a request built by hand."""
    import dataclasses

    index, _ = filled
    with pytest.raises(ValueError, match=f"k must be a positive int, got {bad!r}"):
        index.search("the cells", k=bad)
    request = index.plan("the cells", 3, mode="dense")
    with pytest.raises(ValueError, match=f"limit must be a positive int, got {bad!r}"):
        index.store.query(dataclasses.replace(request, limit=bad))
