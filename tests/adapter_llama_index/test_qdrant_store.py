"""VectorStoreIndex over llama-index's QdrantVectorStore (hybrid) with our embedding and sparse functions."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("llama_index.vector_stores.qdrant")

from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import (
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)
from llama_index.vector_stores.qdrant import QdrantVectorStore
from qdrant_client import QdrantClient

from bge_core.cache import shared_cache
from bge_core.scoring import lexical_score
from llama_index_bge import BGEEmbedding, bge_m3_sparse_functions


def make_nodes(texts: list[str]) -> list[TextNode]:
    # "topic" is stored and filterable but not embedded: the embed text is the plain text.
    return [
        TextNode(text=t, metadata={"topic": i}, excluded_embed_metadata_keys=["topic"]) for i, t in enumerate(texts)
    ]


def build(encoder: Any, texts: list[str], collection: str = "li") -> tuple[VectorStoreIndex, QdrantVectorStore]:
    emb = BGEEmbedding(encoder=encoder)
    doc_fn, query_fn = bge_m3_sparse_functions(emb)
    store = QdrantVectorStore(
        collection_name=collection,
        client=QdrantClient(":memory:"),
        enable_hybrid=True,
        sparse_doc_fn=doc_fn,
        sparse_query_fn=query_fn,
    )
    index = VectorStoreIndex(
        make_nodes(texts), storage_context=StorageContext.from_defaults(vector_store=store), embed_model=emb
    )
    return index, store


def test_hybrid_end_to_end(m3: Any, docs: list[str]) -> None:
    texts = [*docs, "", "zzz qqq"]  # empty and no-known-token texts are stored too
    index, _ = build(m3, texts)
    retriever = index.as_retriever(similarity_top_k=3, sparse_top_k=10, vector_store_query_mode="hybrid")
    for i in (0, 2, 5, 8):
        got = retriever.retrieve(docs[i])
        assert got[0].node.get_content() == docs[i]
        assert len(got) == 3


def test_sparse_mode_scores_are_lexical_scores(m3: Any, docs: list[str]) -> None:
    index, _ = build(m3, docs)
    query = "cancer cells in the blood"
    retriever = index.as_retriever(similarity_top_k=5, vector_store_query_mode="sparse")
    got = retriever.retrieve(query)
    assert got
    q = m3.encode([query], dense=False).sparse[0]
    want = {t: lexical_score(q, s) for t, s in zip(docs, m3.encode(docs, dense=False).sparse)}
    for item in got:
        assert item.score == pytest.approx(want[item.node.get_content()], rel=1e-4)
    best = sorted(want.values(), reverse=True)[: len(got)]
    assert [item.score for item in got] == pytest.approx(best, rel=1e-4)


def test_metadata_filter(m3: Any, docs: list[str]) -> None:
    index, _ = build(m3, docs)
    filters = MetadataFilters(filters=[MetadataFilter(key="topic", value=3, operator=FilterOperator.EQ)])
    got = index.as_retriever(similarity_top_k=5, vector_store_query_mode="hybrid", filters=filters).retrieve("cells")
    assert [n.node.metadata["topic"] for n in got] == [3]


def test_each_node_goes_through_the_model_once(fresh_m3: Any, count_forward: Any, docs: list[str]) -> None:
    counter = count_forward(fresh_m3.model)
    index, _ = build(fresh_m3, docs)
    # Dense (VectorStoreIndex) and sparse (QdrantVectorStore) come from one pass: N texts, not 2N.
    assert counter.texts == len(docs)
    cache = shared_cache(fresh_m3)
    assert cache.misses == len(docs) and cache.hits >= len(docs)
    index.as_retriever(similarity_top_k=2, vector_store_query_mode="hybrid").retrieve("heart disease drug")
    assert counter.texts == len(docs) + 1  # the query: dense and sparse in one pass too
