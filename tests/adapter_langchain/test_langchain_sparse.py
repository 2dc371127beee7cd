"""Sparse wrappers: Qdrant HYBRID end to end, one encoder pass per text (the Milvus flavour: test_langchain_milvus.py)."""

from __future__ import annotations

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
