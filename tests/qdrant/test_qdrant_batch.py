"""Qdrant batch search (one ``query_batch_points`` call) and the ``open_store`` entry point."""

from __future__ import annotations

from typing import Any

import pytest
from qdrant_helpers import QD_CORPUS, QUERIES

from bge_core.index import VectorIndex
from bge_core.reference import InMemoryStore

MODES = ("dense", "sparse", "hybrid", "colbert")


@pytest.fixture(scope="module")
def pair(m3: Any) -> tuple[Any, Any]:
    from qdrant_client import QdrantClient

    from bge_qdrant import QdrantIndex

    texts, metas = [t for t, _ in QD_CORPUS], [m for _, m in QD_CORPUS]
    qd = QdrantIndex(QdrantClient(":memory:"), "batch", m3, show_progress=False)
    ref = VectorIndex(InMemoryStore(), m3, show_progress=False)
    qd.add_texts(texts, metas)
    ref.add_texts(texts, metas)
    return qd, ref


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fusion", ["rrf", "dbsf", "weighted"])
def test_search_batch_is_one_call_equal_to_single_searches(pair: tuple[Any, Any], mode: str, fusion: str) -> None:
    qd, ref = pair
    queries = list(QUERIES)[:4]
    calls: list[int] = []
    client = qd.client
    real = client.query_batch_points
    client.query_batch_points = lambda name, requests, **kw: (
        calls.append(len(requests)) or real(name, requests=requests, **kw)
    )
    try:
        got = qd.search_batch(queries, 3, mode=mode, fusion=fusion)
    finally:
        del client.query_batch_points
    assert len(calls) == 1  # one round trip for all queries
    singles = [qd.search(q, 3, mode=mode, fusion=fusion) for q in queries]
    reference = ref.search_batch(queries, 3, mode=mode, fusion=fusion)
    for g, s, r in zip(got, singles, reference):
        assert [h.id for h in g] == [h.id for h in s] == [h.id for h in r]
        assert [h.score for h in g] == pytest.approx([h.score for h in s], rel=1e-5, abs=1e-6)


def test_search_batch_with_filter_and_empty_matches(pair: tuple[Any, Any]) -> None:
    qd, ref = pair
    key, value = next(iter(QD_CORPUS[0][1].items()))
    got = qd.search_batch(["a b c", "zzzz qqqq"], 5, mode="sparse", filter={key: value})
    want = ref.search_batch(["a b c", "zzzz qqqq"], 5, mode="sparse", filter={key: value})
    assert [[h.id for h in hits] for hits in got] == [[h.id for h in hits] for hits in want]


async def test_async_search_batch(m3: Any) -> None:
    from qdrant_client import AsyncQdrantClient

    from bge_qdrant import AsyncQdrantIndex

    texts = [t for t, _ in QD_CORPUS]
    index = AsyncQdrantIndex(AsyncQdrantClient(":memory:"), "abatch", m3, show_progress=False)
    await index.add_texts(texts)
    got = await index.search_batch(list(QUERIES)[:3], 3, mode="colbert")
    want = [await index.search(q, 3, mode="colbert") for q in list(QUERIES)[:3]]
    assert [[h.id for h in hits] for hits in got] == [[h.id for h in hits] for hits in want]
    assert await index.count() == len(texts)
    await index.close()


def test_open_store_returns_a_store(tmp_path: Any) -> None:
    from bge_qdrant.batch import BatchQdrantStore
    from bge_qdrant.store_uri import open_store

    store = open_store(f"qdrant:{tmp_path / 'q'}", collection="docs")
    assert isinstance(store, BatchQdrantStore) and store.owns_client
    assert store.read_settings() is None
    store.close()
    again = open_store(f"qdrant:{tmp_path / 'q'}", collection="docs")  # the folder lock was released
    again.close()
