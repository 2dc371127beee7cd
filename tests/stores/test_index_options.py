"""One options type for every index: ``IndexOptions`` (and its keyword form) taken the same way
by ``VectorIndex``, ``QdrantIndex``, ``AsyncQdrantIndex``, ``MilvusIndex``, ``QdrantEdgeIndex``
and both ``open_index``; and ``split_unchanged``, the skip rule of every ingest."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from bge_core.index import INDEX_OPTION_NAMES, IndexOptions, Record, RetryPolicy, VectorIndex, split_unchanged
from bge_core.reference import InMemoryStore


class _Encoder:
    """Enough of an encoder for constructors (which never encode)."""

    dim = 8
    colbert_dim = 8
    supports_sparse = True
    supports_colbert = True

    def encode_outputs(self, texts: Sequence[str], **kwargs: Any) -> Any:  # pragma: no cover - never called
        raise AssertionError("a constructor encoded")


def _vector(tmp: Path, **kw: Any) -> VectorIndex:
    return VectorIndex(InMemoryStore(), _Encoder(), **kw)


def _qdrant(tmp: Path, **kw: Any) -> VectorIndex:
    from qdrant_client import QdrantClient

    from bge_qdrant import QdrantIndex

    return QdrantIndex(QdrantClient(":memory:"), "docs", _Encoder(), owns_client=True, **kw)


def _milvus(tmp: Path, **kw: Any) -> VectorIndex:
    pytest.importorskip("pymilvus")
    from bge_milvus import MilvusIndex

    return MilvusIndex(object(), "docs", _Encoder(), metric="IP", **kw)  # the client is not called


def _edge(tmp: Path, **kw: Any) -> VectorIndex:
    pytest.importorskip("qdrant_edge")
    from bge_qdrant.edge_index import QdrantEdgeIndex

    return QdrantEdgeIndex(tmp / "edge", _Encoder(), collection_name="docs", hnsw_m=8, **kw)


BUILDERS: dict[str, Callable[..., VectorIndex]] = {
    "vector": _vector,
    "qdrant": _qdrant,
    "milvus": _milvus,
    "edge": _edge,
}


def test_options_are_validated_and_frozen() -> None:
    opts = IndexOptions(chunk_size=8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.chunk_size = 9  # type: ignore[misc]
    with pytest.raises(ValueError, match="write_batch_size and chunk_size must be >= 1"):
        IndexOptions(write_batch_size=0)
    with pytest.raises(TypeError, match="unexpected index option.* batchsize; the options are: dense, sparse"):
        IndexOptions.from_kwargs(None, batchsize=3)
    with pytest.raises(TypeError, match="must be a bge_core.index.IndexOptions"):
        IndexOptions.from_kwargs({"dense": True}, sparse=False)  # type: ignore[arg-type]
    assert IndexOptions.from_kwargs(opts) is opts
    assert IndexOptions.from_kwargs(opts, sparse=False) == IndexOptions(sparse=False, chunk_size=8)
    assert opts.sparse  # the base is unchanged
    assert INDEX_OPTION_NAMES == (
        "dense",
        "sparse",
        "colbert",
        "show_progress",
        "write_batch_size",
        "chunk_size",
        "retry",
    )


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_every_index_takes_the_same_options(kind: str, tmp_path: Path) -> None:
    build = BUILDERS[kind]
    retry = RetryPolicy(attempts=2)
    keywords = build(tmp_path, sparse=False, show_progress=False, write_batch_size=7, chunk_size=9, retry=retry)
    opts = IndexOptions(sparse=False, show_progress=False, write_batch_size=7, chunk_size=9, retry=retry)
    as_value = build(tmp_path, options=opts)
    for index in (keywords, as_value):
        assert index.options == opts
        assert (index.dense, index.sparse, index.colbert) == (True, False, True)
        assert (index.show_progress, index.write_batch_size, index.chunk_size) == (False, 7, 9)
        assert index.retry is retry
        index.close()
    # Keywords given with a value override it; the value itself is not changed.
    mixed = build(tmp_path, options=opts, chunk_size=3)
    assert (mixed.chunk_size, mixed.write_batch_size, mixed.sparse) == (3, 7, False)
    assert opts.chunk_size == 9
    mixed.close()
    with pytest.raises(TypeError, match="batchsize"):
        build(tmp_path, batchsize=3)
    with pytest.raises(ValueError, match="write_batch_size and chunk_size must be >= 1"):
        build(tmp_path, chunk_size=0)


@pytest.mark.parametrize(("kind", "write_batch_size"), [("vector", 64), ("qdrant", 64), ("milvus", 64), ("edge", 256)])
def test_default_options(kind: str, write_batch_size: int, tmp_path: Path) -> None:
    index = BUILDERS[kind](tmp_path)
    assert index.options == IndexOptions(write_batch_size=write_batch_size)
    assert (index.dense, index.sparse, index.colbert, index.chunk_size) == (True, True, True, 256)
    assert index.show_progress is None and index.retry == RetryPolicy()
    index.close()


def test_async_qdrant_index_takes_the_options() -> None:
    from qdrant_client import AsyncQdrantClient

    from bge_qdrant import AsyncQdrantIndex

    index = AsyncQdrantIndex(AsyncQdrantClient(":memory:"), "docs", _Encoder(), options=IndexOptions(colbert=False))
    assert index.spec.colbert_dim is None and index.spec.sparse


def test_qdrant_open_index_forwards_the_options() -> None:
    from bge_qdrant.store_uri import open_index

    index = open_index(
        "qdrant::memory:", encoder=_Encoder(), collection="docs", options=IndexOptions(chunk_size=5), colbert=False
    )
    assert (index.chunk_size, index.colbert, index.sparse) == (5, False, True)
    assert index.store.owns_client
    index.close()
    with pytest.raises(TypeError, match="drop owns_client"):
        open_index("qdrant::memory:", encoder=_Encoder(), collection="docs", owns_client=False)


def test_milvus_open_index_forwards_the_options_and_closes_the_client_on_bad_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("pymilvus")
    import bge_milvus.store_uri as store_uri

    closed: list[bool] = []

    class Client:
        def close(self) -> None:
            closed.append(True)

    monkeypatch.setattr(store_uri, "_connect", lambda uri, collection: (Client(), "lite='x'"))
    index = store_uri.open_index("milvus:x.db", encoder=_Encoder(), collection="docs", sparse=False, chunk_size=5)
    assert (index.chunk_size, index.sparse, index.colbert) == (5, False, True)
    assert not closed
    with pytest.raises(ValueError, match="an index needs dense or sparse"):
        store_uri.open_index("milvus:x.db", encoder=_Encoder(), collection="docs", dense=False, sparse=False)
    assert closed == [True]  # the client it created is not left open


class _Row:
    def __init__(self, id: str, hash: str) -> None:
        self.id = id
        self.hash = hash


def test_split_unchanged() -> None:
    rows = [_Row("a", "1"), _Row("b", "2"), _Row("c", "3")]
    calls: list[list[str]] = []

    def fetch(ids: list[str]) -> dict[str, str]:
        calls.append(ids)
        return {"a": "1", "b": "changed"}  # c is not stored

    to_write, unchanged = split_unchanged(rows, fetch)
    assert [r.id for r in to_write] == ["b", "c"] and [r.id for r in unchanged] == ["a"]
    assert calls == [["a", "b", "c"]]  # one look-up for all rows
    assert split_unchanged([], fetch) == ([], []) and len(calls) == 1  # none for no rows
    record = Record("a", "t", {}, "1", None, None, None)
    assert split_unchanged([record], fetch) == ([], [record])
