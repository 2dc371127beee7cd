"""Fault injection with a wrapper client, error classification, concurrency."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest
from bge_milvus import MilvusIndex, MilvusStore

from bge_core.errors import StoreError, TransientStoreError
from bge_core.index import RetryPolicy, VectorIndex
from bge_core.reference import InMemoryStore
from bge_core.testing import TINY_WORDS

FAST = RetryPolicy(attempts=3, initial_delay=0.01)


class FlakyClient:
    """Delegates to a MilvusClient; the ``fail_on``-th upsert into ``collection`` raises ``exc`` ``times`` times."""

    def __init__(self, inner: Any, collection: str, fail_on: int, exc: BaseException, times: int = 1) -> None:
        self.inner, self.collection, self.fail_on, self.exc, self.times = inner, collection, fail_on, exc, times
        self.calls = 0
        self.failures = 0

    def upsert(self, collection_name: str, data: Any, **kwargs: Any) -> Any:
        if collection_name == self.collection:
            self.calls += 1
            if self.calls >= self.fail_on and self.failures < self.times:
                self.failures += 1
                raise self.exc
        return self.inner.upsert(collection_name, data, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def unavailable() -> BaseException:
    from pymilvus.exceptions import MilvusUnavailableException

    return MilvusUnavailableException(message="service unavailable: connection reset by peer")


def invalid() -> BaseException:
    from pymilvus import MilvusException

    return MilvusException(code=1100, message="invalid parameter: field dense dim mismatch")


@pytest.mark.parametrize("target", ["docs", "docs_colbert"])
def test_transient_failure_is_retried(client: Any, m3: Any, corpus: list[str], target: str) -> None:
    flaky = FlakyClient(client, target, fail_on=2, exc=unavailable())
    index = MilvusIndex(flaky, "docs", m3, show_progress=False, write_batch_size=4, retry=FAST)
    ids = index.add_texts(corpus)
    assert flaky.failures == 1
    assert index.count() == len(set(ids)) == len(corpus)
    ref = VectorIndex(InMemoryStore(), m3)
    ref.add_texts(corpus)
    for mode in ("colbert", "hybrid"):
        got, want = index.search("the cells", 12, mode=mode), ref.search("the cells", 12, mode=mode)  # type: ignore[arg-type]
        assert [h.id for h in got] == [h.id for h in want]


@pytest.mark.parametrize("target", ["docs", "docs_colbert"])
def test_permanent_failure_raises_and_rerun_completes(client: Any, m3: Any, corpus: list[str], target: str) -> None:
    flaky = FlakyClient(client, target, fail_on=2, exc=invalid())
    index = MilvusIndex(flaky, "docs", m3, show_progress=False, write_batch_size=4, chunk_size=4, retry=FAST)
    with pytest.raises(StoreError, match="failed permanently.*invalid parameter"):
        index.add_texts(corpus)
    assert flaky.failures == 1 and index.count() < len(corpus)
    again = MilvusIndex(client, "docs", m3, show_progress=False, write_batch_size=4)
    assert len(again.add_texts(corpus)) == len(corpus)
    assert again.count() == len(corpus)
    ref = VectorIndex(InMemoryStore(), m3)
    ref.add_texts(corpus)
    got, want = again.search("the cells", 12, mode="colbert"), ref.search("the cells", 12, mode="colbert")
    assert [h.id for h in got] == [h.id for h in want]


def test_persistent_transient_failure_gives_up(client: Any, m3: Any, corpus: list[str]) -> None:
    flaky = FlakyClient(client, "docs", fail_on=1, exc=unavailable(), times=10)
    index = MilvusIndex(flaky, "docs", m3, show_progress=False, retry=FAST)
    with pytest.raises(StoreError, match="after 3 attempts"):
        index.add_texts(corpus)


def test_is_transient_classification(client: Any) -> None:
    import grpc
    from pymilvus import MilvusException

    store = MilvusStore(client, "x")

    class Rpc(grpc.RpcError):
        def __init__(self, code: grpc.StatusCode) -> None:
            self._code = code

        def code(self) -> grpc.StatusCode:
            return self._code

    assert store.is_transient(unavailable())
    assert store.is_transient(TimeoutError("read timed out"))
    assert store.is_transient(ConnectionResetError())
    assert store.is_transient(TransientStoreError("x"))
    assert store.is_transient(Rpc(grpc.StatusCode.UNAVAILABLE))
    assert store.is_transient(Rpc(grpc.StatusCode.DEADLINE_EXCEEDED))
    assert store.is_transient(MilvusException(code=8, message="rate limit exceeded"))
    assert store.is_transient(MilvusException(code=2, message="service unavailable"))
    assert not store.is_transient(invalid())
    assert not store.is_transient(Rpc(grpc.StatusCode.INVALID_ARGUMENT))
    assert not store.is_transient(ValueError("bad"))
    assert not store.is_transient(StoreError("bad"))


def test_concurrent_search_and_ingest(client: Any, m3: Any, corpus: list[str]) -> None:
    index = MilvusIndex(client, "docs", m3, show_progress=False, write_batch_size=8)
    index.add_texts(corpus)
    words = TINY_WORDS
    batches = [[f"{words[(i * 7 + j) % len(words)]} {words[(i * 3 + j) % len(words)]} doc {t} {i}" for i in range(40)] for t, j in ((0, 1), (1, 2))]
    errors: list[BaseException] = []
    stop = threading.Event()

    def ingest(texts: list[str]) -> None:
        try:
            index.add_texts(texts)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def search(n: int) -> None:
        modes = ["dense", "sparse", "hybrid", "colbert"]
        try:
            i = 0
            while not stop.is_set() or i < 3:
                hits = index.search("the cat in the water", 5, mode=modes[(n + i) % 4])  # type: ignore[arg-type]
                assert len(hits) <= 5 and all(isinstance(h.id, str) and isinstance(h.text, str) for h in hits)
                assert all(a.score >= b.score - 1e-9 for a, b in itertools.pairwise(hits))
                i += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    writers = [threading.Thread(target=ingest, args=(b,)) for b in batches]
    readers = [threading.Thread(target=search, args=(n,)) for n in range(8)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    assert not errors, errors
    assert index.count() == len(corpus) + 80
