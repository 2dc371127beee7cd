"""Collection layout, refusal of mismatched collections, settings, constructor side effects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient, models

from bge_core.errors import CollectionMismatchError, StoreError
from bge_qdrant import COLBERT_MAX_FLOATS, QdrantIndex, QdrantLayout


class _NoCalls:
    """A client that fails on any call: proves the constructor sends nothing."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise AssertionError(f"constructor called client.{name}")


def test_constructor_sends_nothing(m3: Any) -> None:
    index = QdrantIndex(_NoCalls(), "docs", m3)  # type: ignore[arg-type]
    assert index.collection_name == "docs"
    assert "docs" in repr(index)


def test_async_client_is_refused_with_a_hint(m3: Any) -> None:
    from qdrant_client import AsyncQdrantClient

    with pytest.raises(TypeError, match="AsyncQdrantIndex"):
        QdrantIndex(AsyncQdrantClient(":memory:"), "docs", m3)  # type: ignore[arg-type]


def test_ensure_creates_the_layout(memory_client: Any, make_index: Any, m3: Any) -> None:
    index = make_index(memory_client)
    assert not memory_client.collection_exists("docs")
    index.ensure_collection()
    params = memory_client.get_collection("docs").config.params
    dense, colbert = params.vectors["dense"], params.vectors["colbert"]
    assert dense.size == m3.dim and dense.distance == models.Distance.COSINE
    assert dense.multivector_config is None
    assert colbert.size == m3.colbert_dim
    assert colbert.multivector_config.comparator == models.MultiVectorComparator.MAX_SIM
    assert colbert.hnsw_config.m == 0  # ColBERT only reranks: no graph by default
    assert params.sparse_vectors["sparse"].modifier in (None, models.Modifier.NONE)
    index.ensure_collection()  # idempotent


def test_layout_options(memory_client: Any, make_index: Any) -> None:
    make_index(memory_client, sparse_idf=True, colbert_hnsw=True, colbert_on_disk=True).ensure_collection()
    params = memory_client.get_collection("docs").config.params
    assert params.sparse_vectors["sparse"].modifier == models.Modifier.IDF
    info = memory_client.get_collection("docs").config
    assert params.vectors["colbert"].hnsw_config is None  # no m=0 override: the collection's graph
    assert info.hnsw_config.m > 0
    assert params.vectors["colbert"].on_disk is True
    # the same options open it again; a different IDF setting is refused
    make_index(memory_client, sparse_idf=True).ensure_collection()
    with pytest.raises(CollectionMismatchError, match="IDF"):
        make_index(memory_client).ensure_collection()


def test_dense_only_encoder_and_flags(memory_client: Any, make_index: Any, tmp_path: Path) -> None:
    from bge_core import DenseEncoder
    from bge_core.testing import build_tiny_m3

    enc = DenseEncoder(build_tiny_m3(tmp_path / "dense", heads=False, seed=3), device="cpu", dtype="float32")
    index = make_index(memory_client, "dense_only", encoder=enc)
    index.add_texts(["the cat", "the dog"])
    params = memory_client.get_collection("dense_only").config.params
    assert set(params.vectors) == {"dense"} and not params.sparse_vectors
    assert [h.text for h in index.search("the cat", 1, mode="dense")] == ["the cat"]
    with pytest.raises(ValueError, match="sparse"):
        index.search("the cat", mode="hybrid")
    no_colbert = make_index(memory_client, "no_colbert", colbert=False)
    no_colbert.ensure_collection()
    assert set(memory_client.get_collection("no_colbert").config.params.vectors) == {"dense"}


def _create(client: Any, name: str, dense: int, sparse: bool = True, colbert: int | None = None) -> None:
    vectors = {"dense": models.VectorParams(size=dense, distance=models.Distance.COSINE)}
    if colbert:
        vectors["colbert"] = models.VectorParams(
            size=colbert,
            distance=models.Distance.COSINE,
            multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM),
        )
    client.create_collection(
        name, vectors_config=vectors, sparse_vectors_config={"sparse": models.SparseVectorParams()} if sparse else None
    )


def test_mismatched_collections_are_refused(memory_client: Any, make_index: Any, m3: Any) -> None:
    _create(memory_client, "small", dense=m3.dim + 1, colbert=m3.colbert_dim)
    with pytest.raises(
        CollectionMismatchError, match=rf"'dense' vectors have {m3.dim + 1} dims but the encoder makes {m3.dim}"
    ):
        make_index(memory_client, "small").ensure_collection()
    _create(memory_client, "nosparse", dense=m3.dim, sparse=False, colbert=m3.colbert_dim)
    with pytest.raises(CollectionMismatchError, match="no 'sparse' sparse vector"):
        make_index(memory_client, "nosparse").add_texts(["the cat"])
    assert memory_client.count("nosparse").count == 0  # refused before anything was written
    _create(memory_client, "nocolbert", dense=m3.dim)
    with pytest.raises(CollectionMismatchError, match="no 'colbert' vector"):
        make_index(memory_client, "nocolbert").ensure_collection()
    make_index(memory_client, "nocolbert", colbert=False).ensure_collection()  # fits without ColBERT
    memory_client.create_collection(
        "unnamed", vectors_config=models.VectorParams(size=m3.dim, distance=models.Distance.COSINE)
    )
    with pytest.raises(CollectionMismatchError) as err:
        make_index(memory_client, "unnamed").ensure_collection()
    assert "'dense'" in str(err.value) and "'sparse'" in str(err.value) and "'colbert'" in str(err.value)


def test_settings_round_trip_in_memory_and_on_disk(make_index: Any, tmp_path: Path) -> None:
    settings = {"model": "BAAI/bge-m3", "outputs": ["dense", "sparse", "colbert"], "max_tokens": 8192}
    index = make_index()
    assert index.read_settings() is None  # no collection yet
    index.write_settings(settings)  # creates the collection first
    assert index.read_settings() == settings
    index.write_settings({"model": "other"})
    assert index.read_settings() == {"model": "other"}  # replaced, not merged

    path = str(tmp_path / "q")
    client = QdrantClient(path=path)
    make_index(client).write_settings(settings)
    client.close()
    client = QdrantClient(path=path)
    try:
        assert make_index(client).read_settings() == settings
    finally:
        client.close()


def test_store_write_settings_without_collection_is_a_clear_error(make_index: Any) -> None:
    with pytest.raises(StoreError, match="ensure_collection"):
        make_index().store.write_settings({"a": 1})


def test_colbert_cap_defaults() -> None:
    assert COLBERT_MAX_FLOATS == 1_048_576
    assert QdrantLayout().max_colbert_vectors(1024) == 1024
    assert QdrantLayout().max_colbert_vectors(32) == 32768
    assert QdrantLayout(colbert_max_vectors=10).max_colbert_vectors(1024) == 10
    with pytest.raises(ValueError, match="exceeds Qdrant's multivector cap"):
        QdrantLayout(colbert_max_vectors=2000).max_colbert_vectors(1024)
    with pytest.raises(ValueError, match=">= 1"):
        QdrantLayout(colbert_max_vectors=0)


def test_nothing_torch_on_import() -> None:
    import subprocess
    import sys

    code = (
        "import sys, bge_qdrant; assert 'qdrant_client' not in sys.modules; "
        "from bge_qdrant import QdrantIndex, AsyncQdrantIndex; import bge_qdrant.store_uri; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr


def test_server_dropping_metadata_is_reported(memory_client: Any, make_index: Any) -> None:
    class NoMetadata:
        """A client whose server ignores collection metadata (older Qdrant servers)."""

        def update_collection(self, *args: Any, **kwargs: Any) -> bool:
            kwargs.pop("metadata", None)
            return True

        def __getattr__(self, name: str) -> Any:
            return getattr(memory_client, name)

    index = make_index(NoMetadata())
    index.ensure_collection()
    with pytest.raises(StoreError, match="lacks collection metadata"):
        index.write_settings({"model": "tiny"})
