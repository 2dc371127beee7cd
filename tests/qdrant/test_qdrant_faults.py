"""Fault injection: transient write errors are retried, permanent ones raise StoreError and a
re-run completes; error classification."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from qdrant_client import QdrantClient
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from bge_core.errors import StoreError, TransientStoreError
from bge_core.index import RetryPolicy, make_id
from bge_qdrant.faults import is_transient_error

TEXTS = [
    f"{a} {b}"
    for a in ("the cat", "the dog", "a fish", "the bird")
    for b in ("in the water", "on the tree", "at night")
]


def _http(status: int) -> UnexpectedResponse:
    return UnexpectedResponse(status, "x", b"{}", httpx.Headers())


class FlakyClient:
    """Delegates to a real client; upsert call number ``fail_on`` (1-based) raises ``error``
    ``times`` times."""

    def __init__(self, inner: QdrantClient, fail_on: int, error: BaseException, times: int = 1) -> None:
        self.inner = inner
        self.fail_on = fail_on
        self.error = error
        self.times = times
        self.calls = 0

    def upsert(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls >= self.fail_on and self.times > 0:
            self.times -= 1
            raise self.error
        return self.inner.upsert(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize(
    "error",
    [
        ResponseHandlingException(httpx.ConnectError("connection reset")),
        ResponseHandlingException(httpx.ReadTimeout("timed out")),
        _http(503),
        ConnectionResetError("reset by peer"),
        TimeoutError("deadline"),
        TransientStoreError("flaky"),
    ],
)
def test_transient_batch_failure_is_retried(make_index: Any, error: BaseException) -> None:
    inner = QdrantClient(":memory:")
    flaky = FlakyClient(inner, fail_on=2, error=error, times=2)
    index = make_index(flaky, write_batch_size=3, chunk_size=6, retry=RetryPolicy(attempts=3, initial_delay=0.01))
    ids = index.add_texts(TEXTS)
    assert ids == [make_id(None, t) for t in TEXTS]
    assert index.count() == len(TEXTS) == len(set(ids))
    stored = {str(p.id) for p in inner.scroll("docs", limit=100)[0]}
    assert stored == set(ids)  # no duplicates, nothing lost
    assert flaky.calls == len(TEXTS) // 3 + 2


@pytest.mark.parametrize("error", [_http(400), ValueError("bad vector"), _http(404)])
def test_permanent_failure_raises_and_rerun_completes(make_index: Any, error: BaseException) -> None:
    inner = QdrantClient(":memory:")
    flaky = FlakyClient(inner, fail_on=2, error=error)
    index = make_index(flaky, write_batch_size=3, chunk_size=6, retry=RetryPolicy(attempts=3, initial_delay=0.01))
    with pytest.raises(StoreError, match="failed permanently"):
        index.add_texts(TEXTS)
    assert flaky.times == 0  # the failure happened once and was not retried into success
    partial = index.count()
    assert 3 <= partial < len(TEXTS)
    rerun = make_index(inner, write_batch_size=3, chunk_size=6)
    calls = {"n": 0}
    original = inner.upsert

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        return original(*args, **kwargs)

    inner.upsert = counting  # type: ignore[method-assign]
    assert rerun.add_texts(TEXTS) == [make_id(None, t) for t in TEXTS]
    assert rerun.count() == len(TEXTS)
    assert calls["n"] <= (len(TEXTS) - partial + 2) // 3 + 2  # stored rows were skipped


def test_retries_exhausted_raise_store_error(make_index: Any) -> None:
    flaky = FlakyClient(QdrantClient(":memory:"), fail_on=1, error=_http(502), times=10)
    index = make_index(flaky, retry=RetryPolicy(attempts=3, initial_delay=0.01))
    with pytest.raises(StoreError, match="still failing after 3 attempts"):
        index.add_texts(TEXTS)


def test_classification() -> None:
    assert is_transient_error(ResponseHandlingException(httpx.ConnectError("refused")))
    assert is_transient_error(ResponseHandlingException(httpx.PoolTimeout("pool")))
    assert is_transient_error(httpx.RemoteProtocolError("closed"))
    assert is_transient_error(ConnectionRefusedError())
    assert is_transient_error(TimeoutError())
    for status in (429, 500, 502, 503, 504):
        assert is_transient_error(_http(status))
    for status in (400, 401, 403, 404, 409, 422):
        assert not is_transient_error(_http(status))
    assert not is_transient_error(ValueError("Wrong input: Vector dimension error"))
    assert not is_transient_error(StoreError("permanent"))
    assert not is_transient_error(ResponseHandlingException(ValueError("bad json")))

    class RpcError(Exception):
        def __init__(self, name: str) -> None:
            self._name = name

        def code(self) -> Any:
            return type("Code", (), {"name": self._name})()

    assert is_transient_error(RpcError("UNAVAILABLE"))
    assert is_transient_error(RpcError("DEADLINE_EXCEEDED"))
    assert not is_transient_error(RpcError("INVALID_ARGUMENT"))
