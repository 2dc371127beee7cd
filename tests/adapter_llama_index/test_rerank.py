"""BGERerank (cross-encoder) and BGEColBERTRerank (M3 MaxSim) node postprocessors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from bge_core.scoring import maxsim
from llama_index_bge import BGEColBERTRerank, BGEEmbedding, BGERerank

QUERY = "cancer cells in the liver"


def nodes_of(texts: list[str]) -> list[NodeWithScore]:
    return [
        NodeWithScore(node=TextNode(text=t, id_=f"n{i}", metadata={"i": i}), score=1.0 - i / 100)
        for i, t in enumerate(texts)
    ]


def test_rerank_scores_equal_core_reranker(reranker: Any, docs: list[str]) -> None:
    nodes = nodes_of(docs)
    out = BGERerank(reranker=reranker, top_n=4).postprocess_nodes(nodes, query_str=QUERY)
    want = reranker.score([(QUERY, t) for t in docs])
    order = np.argsort(-want, kind="stable")[:4]
    assert [n.node.get_content() for n in out] == [docs[i] for i in order]
    assert [n.score for n in out] == pytest.approx([float(want[i]) for i in order], rel=1e-5)
    first = out[0].node.metadata["bge_scores"]
    assert first["rerank"] == pytest.approx(out[0].score)
    assert first["retrieval"] == pytest.approx(nodes[int(order[0])].score)
    # The stage scores stay out of the LLM / embedding text; input nodes are not changed.
    assert "bge_scores" not in out[0].node.get_content(metadata_mode="llm")  # type: ignore[arg-type]
    assert all("bge_scores" not in n.node.metadata for n in nodes)
    assert out[0].node.node_id == nodes[int(order[0])].node.node_id


def test_rerank_normalize_and_keep_all(reranker: Any, docs: list[str]) -> None:
    out = BGERerank(reranker=reranker, normalize=True).postprocess_nodes(nodes_of(docs[:5]), query_str=QUERY)
    assert len(out) == 5
    want = reranker.score([(QUERY, t) for t in docs[:5]], normalize=True)
    assert sorted(n.score for n in out) == pytest.approx(sorted(want.tolist()), rel=1e-5)
    assert all(0.0 <= n.score <= 1.0 for n in out)


def test_rerank_loads_model_by_name_lazily(tiny_reranker_path: Any, reranker: Any) -> None:
    post = BGERerank(str(tiny_reranker_path), device="cpu", dtype="float32", top_n=2)
    assert post.model == str(tiny_reranker_path)
    out = post.postprocess_nodes(nodes_of(["blood cells", "the cat", "liver cancer"]), query_str=QUERY)
    want = sorted(
        reranker.score([(QUERY, t) for t in ["blood cells", "the cat", "liver cancer"]]).tolist(), reverse=True
    )
    assert [n.score for n in out] == pytest.approx(want[:2], rel=1e-4)


def test_colbert_order_equals_maxsim(m3: Any, docs: list[str]) -> None:
    emb = BGEEmbedding(encoder=m3)
    out = BGEColBERTRerank(encoder=emb, top_n=5).postprocess_nodes(nodes_of(docs), query_str=QUERY)
    q = m3.encode([QUERY], dense=False, sparse=False, colbert=True).colbert[0]
    d = m3.encode(docs, dense=False, sparse=False, colbert=True).colbert
    want = np.array([maxsim(q, x) for x in d])
    order = np.argsort(-want, kind="stable")[:5]
    assert [n.node.get_content() for n in out] == [docs[i] for i in order]
    assert [n.score for n in out] == pytest.approx(want[order].tolist(), rel=1e-5)
    assert out[0].node.metadata["bge_scores"]["colbert"] == pytest.approx(out[0].score)


async def test_async_postprocess(reranker: Any, m3: Any, docs: list[str]) -> None:
    nodes = nodes_of(docs[:6])
    for post in (BGERerank(reranker=reranker, top_n=3), BGEColBERTRerank(encoder=m3, top_n=3)):
        sync = post.postprocess_nodes(nodes, query_bundle=QueryBundle(QUERY))
        got = await post.apostprocess_nodes(nodes, query_str=QUERY)
        assert [n.node.node_id for n in got] == [n.node.node_id for n in sync]
        assert [n.score for n in got] == pytest.approx([n.score for n in sync])


def test_bad_input(reranker: Any, m3: Any) -> None:
    with pytest.raises(ValueError, match="top_n"):
        BGERerank(reranker=reranker, top_n=0)
    with pytest.raises(TypeError, match="Reranker"):
        BGERerank(reranker=object())
    with pytest.raises(ValueError, match="needs the query"):
        BGERerank(reranker=reranker).postprocess_nodes(nodes_of(["a"]))
    assert BGEColBERTRerank(encoder=m3).postprocess_nodes([], query_str="x") == []
