"""Sparse wrappers: Qdrant HYBRID end to end, one encoder pass per text, the Milvus variant."""

from __future__ import annotations

import importlib
import sys
import types
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import pytest
from conftest import LC_CORPUS

from langchain_bge import BGEEmbeddings

qdrant_client = pytest.importorskip("qdrant_client")
langchain_qdrant = pytest.importorskip("langchain_qdrant")

from langchain_qdrant import QdrantVectorStore, RetrievalMode  # noqa: E402
from qdrant_client import QdrantClient, models  # noqa: E402

from langchain_bge import BGEM3SparseEmbeddings  # noqa: E402

TEXTS = [t for t, _ in LC_CORPUS]


def _hybrid_store(encoder: Any, name: str = "docs") -> QdrantVectorStore:
    client = QdrantClient(":memory:")
    client.create_collection(
        name,
        vectors_config={"dense": models.VectorParams(size=encoder.dim, distance=models.Distance.COSINE)},
        sparse_vectors_config={"sparse": models.SparseVectorParams()},
    )
    return QdrantVectorStore(
        client,
        name,
        embedding=BGEEmbeddings(encoder=encoder),
        sparse_embedding=BGEM3SparseEmbeddings(encoder=encoder),
        retrieval_mode=RetrievalMode.HYBRID,
        vector_name="dense",
        sparse_vector_name="sparse",
    )


def test_is_a_qdrant_sparse_embeddings(m3: Any) -> None:
    sp = BGEM3SparseEmbeddings(encoder=m3)
    assert isinstance(sp, langchain_qdrant.SparseEmbeddings)
    vec = sp.embed_query("cancer cells")
    assert isinstance(vec, langchain_qdrant.SparseVector)
    docs = sp.embed_documents(["cancer cells", "", "zzz qqq"])
    assert all(isinstance(v, langchain_qdrant.SparseVector) for v in docs)
    expected = m3.encode(["cancer cells", "", "zzz qqq"], dense=False, sparse=True).sparse
    for got, want in zip(docs, expected):
        assert got.indices == want.indices.tolist()
        np.testing.assert_allclose(got.values, want.values, rtol=1e-6)
    assert docs[1].indices == [] and docs[1].values == []
    assert vec.indices == sorted(set(vec.indices)) and all(v > 0 for v in vec.values)


async def test_async_sparse(m3: Any) -> None:
    sp = BGEM3SparseEmbeddings(encoder=m3)
    assert await sp.aembed_query("gene protein") == sp.embed_query("gene protein")
    assert await sp.aembed_documents(["the cat", "the dog"]) == sp.embed_documents(["the cat", "the dog"])


def test_sparse_errors(tiny_dense_path: Any, m3: Any) -> None:
    sp = BGEM3SparseEmbeddings(encoder=BGEEmbeddings(tiny_dense_path, kind="dense", device="cpu", dtype="float32"))
    with pytest.raises(ValueError, match="no sparse head"):
        sp.embed_query("cat")
    with pytest.raises(TypeError, match="single str"):
        BGEM3SparseEmbeddings(encoder=m3).embed_documents("x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="query must be a str"):
        BGEM3SparseEmbeddings(encoder=m3).embed_query(None)  # type: ignore[arg-type]
    assert BGEM3SparseEmbeddings(encoder=m3).embed_documents([]) == []


def test_hybrid_store_end_to_end(m3: Any) -> None:
    store = _hybrid_store(m3)
    metadatas = [m for _, m in LC_CORPUS]
    ids = store.add_texts(TEXTS, metadatas=metadatas)
    assert len(ids) == len(TEXTS)
    for i, text in enumerate(TEXTS):
        hits = store.similarity_search(text, k=1)
        assert hits[0].page_content == text
        assert hits[0].metadata["n"] == i
    scored = store.similarity_search_with_score("cancer cells grow in the liver", k=3)
    assert len(scored) == 3 and scored[0][1] >= scored[1][1] >= scored[2][1]
    # The store's hybrid ranking fuses exactly our dense and sparse vectors.
    point = store.client.retrieve(store.collection_name, [ids[2]], with_vectors=True)[0]
    dense = np.asarray(point.vector["dense"])  # type: ignore[index]
    np.testing.assert_allclose(dense, m3.encode([TEXTS[2]], sparse=False).dense[0], rtol=1e-5, atol=1e-6)
    sp = point.vector["sparse"]  # type: ignore[index]
    want = m3.encode([TEXTS[2]], dense=False).sparse[0]
    assert sorted(sp.indices) == want.indices.tolist()


async def test_hybrid_store_async(m3: Any) -> None:
    store = _hybrid_store(m3, "adocs")
    await store.aadd_texts(TEXTS[:5])
    hits = await store.asimilarity_search("the dog is in the water", k=2)
    assert hits[0].page_content == "the dog is in the water"


def test_hybrid_ingest_encodes_each_text_once(fresh_m3: Any, count_forward: Any) -> None:
    store = _hybrid_store(fresh_m3)
    counter = count_forward(fresh_m3.model)
    store.add_texts(TEXTS)
    assert counter.texts == len(TEXTS), f"{counter.texts} texts went through the model for {len(TEXTS)} inputs"
    counter.reset()
    store.similarity_search("blood cells", k=2)
    assert counter.texts == 1  # the query: one pass serves its dense and sparse vectors


def test_without_sharing_each_text_is_encoded_twice(tiny_m3_path: Any, count_forward: Any) -> None:
    """The baseline the shared cache removes: two encoders -> two passes per text."""
    from bge_core import BGEM3Encoder

    a = BGEM3Encoder(tiny_m3_path, device="cpu", dtype="float32")
    b = BGEM3Encoder(tiny_m3_path, device="cpu", dtype="float32")
    ca, cb = count_forward(a.model), count_forward(b.model)
    BGEEmbeddings(encoder=a).embed_documents(TEXTS)
    BGEM3SparseEmbeddings(encoder=b).embed_documents(TEXTS)
    assert ca.texts + cb.texts == 2 * len(TEXTS)


# -- Milvus ---------------------------------------------------------------------------------


class _FakeBaseSparseEmbedding(ABC):
    """The interface of langchain_milvus.utils.sparse.BaseSparseEmbedding (0.3/0.4)."""

    @abstractmethod
    def embed_query(self, query: str) -> dict[int, float]: ...

    @abstractmethod
    def embed_documents(self, texts: list[str]) -> list[dict[int, float]]: ...


@pytest.fixture
def fake_langchain_milvus(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Stand-in for langchain_milvus where the ``langchain-milvus`` extra is not installed
    (the real package is tested by test_milvus_hybrid_store_real)."""
    if importlib.util.find_spec("langchain_milvus") is not None:
        pytest.skip("langchain_milvus is installed; the real-package test covers it")
    pkg = types.ModuleType("langchain_milvus")
    utils = types.ModuleType("langchain_milvus.utils")
    sparse = types.ModuleType("langchain_milvus.utils.sparse")
    sparse.BaseSparseEmbedding = _FakeBaseSparseEmbedding  # type: ignore[attr-defined]
    for name, mod in [
        ("langchain_milvus", pkg),
        ("langchain_milvus.utils", utils),
        ("langchain_milvus.utils.sparse", sparse),
    ]:
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.delitem(sys.modules, "langchain_bge.milvus_sparse", raising=False)
    yield importlib.import_module("langchain_bge.milvus_sparse")
    sys.modules.pop("langchain_bge.milvus_sparse", None)


def test_milvus_sparse_returns_dicts(fake_langchain_milvus: Any, m3: Any) -> None:
    cls = fake_langchain_milvus.BGEM3MilvusSparseEmbeddings
    sp = cls(encoder=m3)
    assert isinstance(sp, _FakeBaseSparseEmbedding)
    q = sp.embed_query("cancer cells")
    want = m3.encode(["cancer cells"], dense=False).sparse[0]
    assert isinstance(q, dict) and q == want.to_dict()
    assert all(isinstance(k, int) and isinstance(v, float) for k, v in q.items())
    docs = sp.embed_documents(["the cat", ""])
    assert docs[1] == {} and docs[0] == m3.encode(["the cat"], dense=False).sparse[0].to_dict()


def test_missing_langchain_milvus_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from bge_core.errors import MissingDependencyError

    if importlib.util.find_spec("langchain_milvus") is not None:
        pytest.skip("langchain_milvus is installed")
    monkeypatch.delitem(sys.modules, "langchain_bge.milvus_sparse", raising=False)
    with pytest.raises(MissingDependencyError, match=r"langchain-milvus.*bge-integrations\[langchain-milvus\]"):
        importlib.import_module("langchain_bge.milvus_sparse")


def test_milvus_hybrid_store_real(m3: Any, tmp_path: Any) -> None:
    """BGEM3MilvusSparseEmbeddings inside the real ``langchain_milvus.Milvus`` on Milvus Lite:
    sparse search equals the exact lexical score, hybrid (dense + sparse, RRF) equals the
    reference store's hybrid search on the same texts."""
    pytest.importorskip(
        "langchain_milvus",
        reason="pip install 'bge-integrations[langchain-milvus]' (langchain-milvus 0.3.3, pymilvus<2.6.10)",
    )
    pytest.importorskip("milvus_lite")
    from langchain_core.documents import Document
    from langchain_milvus import Milvus
    from store_checks import assert_same_hits

    from bge_core.index import VectorIndex
    from bge_core.reference import InMemoryStore
    from bge_core.testing import TINY_CORPUS
    from bge_core.types import Hit
    from langchain_bge import BGEEmbeddings, BGEM3MilvusSparseEmbeddings

    texts = list(TINY_CORPUS[:10])
    dense, sparse = BGEEmbeddings(encoder=m3), BGEM3MilvusSparseEmbeddings(encoder=m3)
    exact = {"index_type": "FLAT", "metric_type": "IP"}
    lexical = {"index_type": "SPARSE_INVERTED_INDEX", "metric_type": "IP", "params": {"drop_ratio_build": 0.0}}
    docs = [Document(page_content=t, metadata={"i": i}) for i, t in enumerate(texts)]
    where = {"uri": str(tmp_path / "lc.db"), "db_name": "default"}
    sparse_params = {"metric_type": "IP", "params": {"drop_ratio_search": 0.0}}
    lexical_only = Milvus.from_documents(
        docs,
        embedding=sparse,
        vector_field="sparse",
        index_params=lexical,
        search_params=sparse_params,
        connection_args=where,
        collection_name="lc_sparse",
        consistency_level="Strong",
        drop_old=True,
    )
    hybrid = Milvus.from_documents(
        docs,
        embedding=[dense, sparse],
        vector_field=["dense", "sparse"],
        index_params=[exact, lexical],
        search_params=[{"metric_type": "IP", "params": {}}, sparse_params],
        connection_args=where,
        collection_name="lc",
        consistency_level="Strong",
        drop_old=True,
    )
    ref = VectorIndex(InMemoryStore(), m3, show_progress=False)
    ref.add_texts(texts)
    for query in ("cancer cells in the liver", "the cat on the mat", "heart disease drug"):
        want_sparse = ref.search(query, 4, mode="sparse")
        got_sparse = lexical_only.similarity_search_with_score(query, k=len(want_sparse))
        assert want_sparse and [d.page_content for d, _ in got_sparse] == [h.text for h in want_sparse]
        assert [score for _, score in got_sparse] == pytest.approx([h.score for h in want_sparse], rel=1e-5)
        got = hybrid.similarity_search_with_score(query, k=4, fetch_k=4, ranker_type="rrf", ranker_params={"k": 60})
        want = ref.search(query, 4, mode="hybrid", rrf_k=60, prefetch_limit=4)
        # RRF ties (rank 2 in one list vs rank 2 in the other) may come in either order
        as_hits = [Hit(d.page_content, score, d.page_content, {}) for d, score in got]
        assert_same_hits([Hit(h.text, h.score, h.text, {}) for h in want], as_hits)
