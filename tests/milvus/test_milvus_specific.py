"""What only Milvus has: its sparse IP against the exact lexical score, the empty-sparse
placeholder, native expression filters, its top-k cap and its error classification. The
behaviour every store shares is in the conformance suite (tests/stores)."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import pytest
from store_checks import CORPUS, texts_and_metadatas

from bge_core.errors import StoreError, TransientStoreError
from bge_core.index import CollectionSpec, Record, SearchRequest
from bge_core.scoring import lexical_score
from bge_core.types import SparseVector
from bge_milvus import MilvusIndex, MilvusStore
from bge_milvus.store import PLACEHOLDER_TOKEN


def test_sparse_ip_equals_lexical_score(client: Any) -> None:
    rng = np.random.default_rng(7)
    store = MilvusStore(client, "lex")
    store.ensure(CollectionSpec(dense_dim=4, sparse=True, colbert_dim=None))
    docs = []
    for _ in range(60):
        idx = np.unique(rng.integers(0, 300, size=rng.integers(1, 25))).astype(np.int32)
        docs.append(SparseVector(idx, rng.uniform(0.001, 3.0, size=idx.size).astype(np.float32)))
    dense = rng.normal(size=(60, 4)).astype(np.float32)
    store.upsert([Record(f"d{i}", f"t{i}", {}, "h", dense[i], docs[i], None) for i in range(60)])
    for _ in range(10):
        qi = np.unique(rng.integers(0, 300, size=12)).astype(np.int32)
        q = SparseVector(qi, rng.uniform(0.01, 2.0, size=qi.size).astype(np.float32))
        hits = store.query(SearchRequest("sparse", 60, None, q, None, "rrf", 60, (1, 1), 60, None))
        want = {f"d{i}": lexical_score(q, d) for i, d in enumerate(docs) if lexical_score(q, d) > 0}
        assert want and {h.id for h in hits} == set(want)
        for h in hits:
            assert h.score == pytest.approx(want[h.id], rel=1e-6, abs=1e-6)


@pytest.fixture
def filled(client: Any, m3: Any) -> MilvusIndex:
    index = MilvusIndex(client, "docs", m3, show_progress=False)
    index.add_texts(*texts_and_metadatas())
    return index


def test_placeholder_dimension_is_unreachable(filled: MilvusIndex) -> None:
    probe = SparseVector(np.array([0, 2**31 - 1], dtype=np.int32), np.array([1.0, 1.0], dtype=np.float32))
    assert filled.store.query(SearchRequest("sparse", 12, None, probe, None, "rrf", 60, (1, 1), 12, None)) == []
    assert PLACEHOLDER_TOKEN > 2**31


def test_native_filter_string_passes_through(filled: MilvusIndex) -> None:
    got = filled.search("the cells", 12, mode="dense", filter='metadata["i"] >= 6')
    assert sorted(h.metadata["i"] for h in got) == [i for i, (_, m) in enumerate(CORPUS) if m["i"] >= 6]


def test_too_large_limit_is_refused(filled: MilvusIndex) -> None:
    with pytest.raises(ValueError, match="at most 16384 hits per search; lower k"):
        filled.search("cat", 20000, mode="dense")
    with pytest.raises(ValueError, match="lower prefetch_limit"):  # given explicitly: refused, not capped
        filled.search("cat", 10, mode="hybrid", prefetch_limit=20000)


def test_large_k_prefetches_only_where_fused_and_capped(filled: MilvusIndex, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 16.9: k=5000 was refused in every mode because of the default 4 x k prefetch."""
    from bge_core.index import VectorIndex
    from bge_core.reference import InMemoryStore

    ref = VectorIndex(InMemoryStore(), filled.encoder, show_progress=False)
    ref.add_texts(*texts_and_metadatas())
    for mode in ("dense", "sparse"):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="bge_milvus"):
            got = filled.search("the cells in the water", 5000, mode=mode)
        assert [h.id for h in got] == [h.id for h in ref.search("the cells in the water", 5000, mode=mode)]
        assert "prefetching" not in caplog.text  # no prefetch list in these modes
    for mode in ("hybrid", "colbert"):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="bge_milvus"):
            got = filled.search("the cells in the water", 5000, mode=mode)
        assert len(got) == len(CORPUS)
        assert "prefetching 16384 candidates per list instead of 20000" in caplog.text


def test_k_true_is_refused_as_on_every_store(filled: MilvusIndex) -> None:
    """Issue 16.9: ``k=True`` reached Milvus as a raw MilvusException (Qdrant took it as 1)."""
    with pytest.raises(ValueError, match="k must be a positive int, got True"):
        filled.search("cat", k=True)
    request = filled.plan("cat", 3, mode="dense")
    for field in ("limit", "prefetch_limit"):
        with pytest.raises(ValueError, match=f"{field} must be a positive int, got True"):
            filled.store.query(dataclasses.replace(request, **{field: True}))


def test_is_transient_classification(client: Any) -> None:
    import grpc
    from pymilvus import MilvusException
    from pymilvus.exceptions import MilvusUnavailableException

    store = MilvusStore(client, "x")

    class Rpc(grpc.RpcError):  # type: ignore[misc]
        def __init__(self, code: grpc.StatusCode) -> None:
            self._code = code

        def code(self) -> grpc.StatusCode:
            return self._code

    assert store.is_transient(MilvusUnavailableException(message="service unavailable"))
    assert store.is_transient(TimeoutError("read timed out"))
    assert store.is_transient(ConnectionResetError())
    assert store.is_transient(TransientStoreError("x"))
    assert store.is_transient(Rpc(grpc.StatusCode.UNAVAILABLE))
    assert store.is_transient(Rpc(grpc.StatusCode.DEADLINE_EXCEEDED))
    assert store.is_transient(MilvusException(code=8, message="rate limit exceeded"))
    assert store.is_transient(MilvusException(code=2, message="service unavailable"))
    assert not store.is_transient(MilvusException(code=8, message="quota"))  # a transient code needs a transient word
    assert not store.is_transient(MilvusException(code=1100, message="invalid parameter"))
    assert not store.is_transient(Rpc(grpc.StatusCode.INVALID_ARGUMENT))
    assert not store.is_transient(ValueError("bad"))
    assert not store.is_transient(StoreError("bad"))
