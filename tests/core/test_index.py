"""VectorIndex (store-independent logic) over the exact in-memory reference store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from bge_core import BGEM3Encoder, Hit
from bge_core.errors import StoreError, TransientStoreError
from bge_core.index import Record, RetryPolicy, VectorIndex, make_id
from bge_core.reference import InMemoryStore


def _count_texts(enc: BGEM3Encoder) -> list[int]:
    seen: list[int] = []
    enc.model.register_forward_hook(lambda mod, args, kwargs_out: seen.append(1))
    return seen


def test_ingest_ids_and_idempotent_reingest(m3: BGEM3Encoder, corpus: list[str]) -> None:
    idx = VectorIndex(InMemoryStore(), m3)
    ids = idx.add_texts(corpus, [{"n": i} for i in range(len(corpus))])
    assert ids == [make_id(None, t) for t in corpus] and idx.count() == len(corpus)
    again = idx.add_texts(corpus, [{"n": i} for i in range(len(corpus))])
    assert again == ids and idx.count() == len(corpus)
    user = idx.add_texts(["the cat"], ids=["doc-1"])
    assert user == [make_id("doc-1", "the cat")] and idx.count() == len(corpus) + 1


def test_reingest_does_not_reencode_unchanged(tiny_m3_path: Any, corpus: list[str]) -> None:
    enc = BGEM3Encoder(tiny_m3_path, device="cpu", dtype="float32")
    idx = VectorIndex(InMemoryStore(), enc)
    idx.add_texts(corpus)
    calls: list[int] = []
    handle = enc.model.register_forward_hook(lambda *a: calls.append(1))
    idx.add_texts(corpus)
    assert calls == []
    idx.add_texts(corpus[:2] + ["a new text"])
    assert len(calls) == 1
    handle.remove()


def test_bad_input_rejected_before_writing(m3: BGEM3Encoder) -> None:
    store = InMemoryStore()
    idx = VectorIndex(store, m3)
    with pytest.raises(ValueError, match="same length"):
        idx.add_texts(["a", "b"], [{}])
    with pytest.raises(TypeError, match=r"metadatas\[1\]\['bad'\]"):
        idx.add_texts(["a", "b"], [{}, {"bad": object()}])
    with pytest.raises(TypeError, match="single str"):
        idx.add_texts("abc")
    assert store.count() == 0
    with pytest.raises(ValueError, match="query is empty"):
        idx.search("   ")
    with pytest.raises(ValueError, match="unknown mode"):
        idx.search("cat", mode="fancy")  # type: ignore[arg-type]


def test_search_modes_and_rerank(m3: BGEM3Encoder, reranker: Any, corpus: list[str]) -> None:
    idx = VectorIndex(InMemoryStore(), m3)
    idx.add_texts(corpus, [{"n": i} for i in range(len(corpus))])
    q = m3.encode(["cancer cells in the liver"], colbert=True)
    assert q.dense is not None
    for mode in ("dense", "sparse", "hybrid", "colbert"):
        hits = idx.search("cancer cells in the liver", 3, mode=mode)  # type: ignore[arg-type]
        assert 0 < len(hits) <= 3 and all(isinstance(h, Hit) for h in hits)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    dense = idx.search("cancer cells in the liver", 3, mode="dense")
    docs = m3.encode([h.text for h in dense])
    assert docs.dense is not None
    assert np.allclose([h.score for h in dense], docs.dense @ q.dense[0], atol=1e-5)
    reranked = idx.search("cancer cells in the liver", 3, rerank=reranker)
    texts = [h.text for h in reranked]
    scores = reranker.score([("cancer cells in the liver", t) for t in texts])
    assert np.allclose([h.score for h in reranked], scores, atol=1e-6)
    assert all("rerank" in h.scores for h in reranked)
    filtered = idx.search("the cat", 5, mode="dense", filter={"n": 2})
    assert [h.metadata["n"] for h in filtered] == [2]


class _FlakyStore(InMemoryStore):
    def __init__(self, fail_batches: set[int], transient: bool) -> None:
        super().__init__()
        self.calls = 0
        self.fail_batches = fail_batches
        self.transient = transient

    def upsert(self, records: Sequence[Record]) -> None:
        self.calls += 1
        if self.calls in self.fail_batches:
            raise TransientStoreError("connection reset") if self.transient else ValueError("schema")
        super().upsert(records)

    def is_transient(self, exc: BaseException) -> bool:
        return isinstance(exc, TransientStoreError)


def test_transient_write_errors_are_retried(m3: BGEM3Encoder) -> None:
    texts = [f"cell {i} gene" for i in range(20)]
    store = _FlakyStore({2, 3}, transient=True)
    idx = VectorIndex(store, m3, write_batch_size=4, retry=RetryPolicy(attempts=3, initial_delay=0.001))
    ids = idx.add_texts(texts)
    assert store.count() == 20 and sorted(store.fetch_hashes(ids)) == sorted(set(ids))


def test_permanent_write_error_stops_and_rerun_completes(m3: BGEM3Encoder) -> None:
    texts = [f"blood {i} cells" for i in range(20)]
    store = _FlakyStore({2}, transient=False)
    idx = VectorIndex(store, m3, write_batch_size=4, retry=RetryPolicy(attempts=3, initial_delay=0.001))
    with pytest.raises(StoreError, match="permanently"):
        idx.add_texts(texts)
    assert store.count() < 20
    idx.add_texts(texts)
    assert store.count() == 20


def test_streaming_generator_input(m3: BGEM3Encoder) -> None:
    idx = VectorIndex(InMemoryStore(), m3, chunk_size=7)
    ids = idx.add_texts((f"gene {i}" for i in range(30)), ({"i": i} for i in range(30)))
    assert len(ids) == 30 and idx.count() == 30
    with pytest.raises(ValueError, match="ended before texts"):
        idx.add_texts((f"x {i}" for i in range(3)), iter([{}]))
