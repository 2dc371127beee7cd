"""BGERerank and BGEColBERTRerank: scores equal bge_core's, top_n, metadata, async, chains."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest
from conftest import LC_CORPUS
from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda

from langchain_bge import BGEColBERTRerank, BGEHybridRetriever, BGERerank

QUERY = "cancer cells in the liver"


@pytest.fixture
def docs() -> list[Document]:
    return [Document(page_content=t, metadata=dict(m), id=f"doc-{m['n']}") for t, m in LC_CORPUS]


def test_rerank_scores_equal_core_reranker(reranker: Any, docs: list[Document]) -> None:
    rr = BGERerank(reranker=reranker, top_n=None)
    out = rr.compress_documents(docs, QUERY)
    want = reranker.score([(QUERY, d.page_content) for d in docs])
    order = np.argsort(-want, kind="stable")
    assert [d.page_content for d in out] == [docs[i].page_content for i in order]
    np.testing.assert_allclose([d.metadata["relevance_score"] for d in out], want[order], rtol=1e-6)
    assert [d.metadata["rerank_score"] for d in out] == [d.metadata["relevance_score"] for d in out]
    # ids and original metadata survive; the inputs are not mutated
    assert all(d.id == f"doc-{d.metadata['n']}" for d in out)
    assert "relevance_score" not in docs[0].metadata


def test_rerank_top_n_and_normalize(reranker: Any, docs: list[Document]) -> None:
    out = BGERerank(reranker=reranker, top_n=2, normalize=True).compress_documents(docs, QUERY)
    assert len(out) == 2
    full = reranker.score([(QUERY, d.page_content) for d in docs], normalize=True)
    np.testing.assert_allclose([d.metadata["relevance_score"] for d in out], np.sort(full)[::-1][:2], rtol=1e-6)
    assert all(0.0 <= d.metadata["relevance_score"] <= 1.0 for d in out)
    assert BGERerank(reranker=reranker).compress_documents([], QUERY) == []


def test_rerank_loads_lazily_by_name(tiny_reranker_path: Any, reranker: Any, docs: list[Document]) -> None:
    rr = BGERerank(model=str(tiny_reranker_path), device="cpu", dtype="float32", top_n=3)
    assert not rr._holder.loaded
    out = rr.compress_documents(docs, QUERY)
    assert rr._holder.loaded
    want = np.sort(reranker.score([(QUERY, d.page_content) for d in docs]))[::-1][:3]
    np.testing.assert_allclose([d.metadata["relevance_score"] for d in out], want, rtol=1e-5)


def test_rerank_errors(reranker: Any, docs: list[Document]) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        BGERerank(reranker=reranker, top_n=0)
    with pytest.raises(ValueError, match="either model or reranker"):
        BGERerank(model="x", reranker=reranker)
    with pytest.raises(TypeError, match="score"):
        BGERerank(reranker=object())
    with pytest.raises(TypeError, match="not a langchain_core Document"):
        BGERerank(reranker=reranker).compress_documents(["text"], QUERY)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="query must be a str"):
        BGERerank(reranker=reranker).compress_documents(docs, None)  # type: ignore[arg-type]


async def test_rerank_async(reranker: Any, docs: list[Document]) -> None:
    rr = BGERerank(reranker=reranker, top_n=4)
    assert await rr.acompress_documents(docs, QUERY) == rr.compress_documents(docs, QUERY)


def test_colbert_rerank_matches_maxsim(m3: Any, docs: list[Document]) -> None:
    from bge_core.scoring import maxsim

    out = BGEColBERTRerank(encoder=m3, top_n=None).compress_documents(docs, QUERY)
    q = m3.encode([QUERY], dense=False, sparse=False, colbert=True).colbert[0]
    d = m3.encode([x.page_content for x in docs], dense=False, sparse=False, colbert=True).colbert
    want = np.array([maxsim(q, v) for v in d])
    order = np.argsort(-want, kind="stable")
    assert [x.page_content for x in out] == [docs[i].page_content for i in order]
    np.testing.assert_allclose([x.metadata["colbert_score"] for x in out], want[order], rtol=1e-5)
    assert len(BGEColBERTRerank(encoder=m3, top_n=2).compress_documents(docs, QUERY)) == 2


async def test_colbert_rerank_async(m3: Any, docs: list[Document]) -> None:
    cb = BGEColBERTRerank(encoder=m3, top_n=3)
    assert await cb.acompress_documents(docs, QUERY) == cb.compress_documents(docs, QUERY)


def test_colbert_needs_colbert_head(tiny_dense_path: Any, docs: list[Document]) -> None:
    from langchain_bge import BGEEmbeddings

    dense = BGEEmbeddings(tiny_dense_path, kind="dense", device="cpu", dtype="float32")
    with pytest.raises(ValueError, match="no ColBERT head"):
        BGEColBERTRerank(encoder=dense).compress_documents(docs, QUERY)


def test_retriever_then_rerank_chain(lc_index: Any, reranker: Any) -> None:
    """A minimal compression chain with langchain_core runnables only."""
    retriever = BGEHybridRetriever(index=lc_index, k=6)
    rr = BGERerank(reranker=reranker, top_n=2)
    chain = RunnableLambda(lambda q: rr.compress_documents(retriever.invoke(q), q))
    out = chain.invoke(QUERY)
    candidates = retriever.invoke(QUERY)
    want = reranker.score([(QUERY, d.page_content) for d in candidates])
    assert [d.page_content for d in out] == [candidates[i].page_content for i in np.argsort(-want, kind="stable")[:2]]
    assert "scores" in out[0].metadata and "fusion" in out[0].metadata["scores"]


def _contextual_compression_retriever() -> Any:
    # Import the class directly: it lives in langchain_classic (or langchain, older releases).
    for module in ("langchain_classic.retrievers", "langchain.retrievers"):
        try:
            return importlib.import_module(module).ContextualCompressionRetriever
        except (ImportError, AttributeError):
            continue
    pytest.skip("ContextualCompressionRetriever lives in langchain / langchain-classic; neither is installed")


def test_contextual_compression_retriever(lc_index: Any, reranker: Any) -> None:
    ccr_cls = _contextual_compression_retriever()
    ccr = ccr_cls(
        base_compressor=BGERerank(reranker=reranker, top_n=2), base_retriever=BGEHybridRetriever(index=lc_index, k=6)
    )
    out = ccr.invoke(QUERY)
    assert len(out) == 2 and out[0].metadata["relevance_score"] >= out[1].metadata["relevance_score"]
