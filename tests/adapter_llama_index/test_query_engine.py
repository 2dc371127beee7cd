"""A LlamaIndex query engine (MockLLM) with BGE embeddings and postprocessors, sync and async."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import TextNode

from bge_core.index import VectorIndex
from bge_core.reference import InMemoryStore
from llama_index_bge import (
    BGEColBERTRerank,
    BGEEmbedding,
    BGEHybridRetriever,
    BGERerank,
)

QUERY = "heart disease drug treatment"


def check_response(response: Any, reranker: Any, top_n: int) -> None:
    nodes = response.source_nodes
    assert len(nodes) == top_n
    want = reranker.score([(QUERY, n.node.get_content()) for n in nodes])
    assert [n.score for n in nodes] == pytest.approx(want.tolist(), rel=1e-5)
    assert [n.score for n in nodes] == sorted((n.score for n in nodes), reverse=True)
    assert str(response).startswith("text")  # MockLLM's answer went through the engine


def make_engine(m3: Any, reranker: Any, docs: list[str]) -> Any:
    index = VectorStoreIndex([TextNode(text=t) for t in docs], embed_model=BGEEmbedding(encoder=m3))
    return index.as_query_engine(
        similarity_top_k=6,
        node_postprocessors=[BGEColBERTRerank(encoder=m3, top_n=4), BGERerank(reranker=reranker, top_n=2)],
    )


def test_query_engine_with_postprocessors(m3: Any, reranker: Any, docs: list[str]) -> None:
    response = make_engine(m3, reranker, docs).query(QUERY)
    check_response(response, reranker, 2)
    assert set(response.source_nodes[0].node.metadata["bge_scores"]) >= {"retrieval", "colbert", "rerank"}


async def test_query_engine_async(m3: Any, reranker: Any, docs: list[str]) -> None:
    engine = make_engine(m3, reranker, docs)
    response = await engine.aquery(QUERY)
    check_response(response, reranker, 2)
    sync = engine.query(QUERY)
    assert [n.node.node_id for n in response.source_nodes] == [n.node.node_id for n in sync.source_nodes]


def test_retriever_query_engine(m3: Any, reranker: Any, docs: list[str]) -> None:
    index = VectorIndex(InMemoryStore(), m3, show_progress=False)
    index.add_texts(docs)
    engine = RetrieverQueryEngine.from_args(
        BGEHybridRetriever(index, k=6, mode="hybrid"), node_postprocessors=[BGERerank(reranker=reranker, top_n=3)]
    )
    check_response(engine.query(QUERY), reranker, 3)
