"""BGEHybridRetriever: LangChain's retriever suite, scores, filters, modes, rerank, async, QdrantIndex."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from conftest import LC_CORPUS
from langchain_bge import BGEHybridRetriever, BGERerank
from langchain_core.documents import Document
from langchain_tests.integration_tests import RetrieversIntegrationTests

QUERY = "cancer cells in the liver"


class TestBGEHybridRetrieverStandard(RetrieversIntegrationTests):
    """langchain-tests retriever suite over a VectorIndex on the in-memory reference store."""

    index: Any = None

    @pytest.fixture(autouse=True)
    def _index(self, lc_index: Any) -> None:
        type(self).index = lc_index

    @property
    def retriever_constructor(self) -> type[BGEHybridRetriever]:
        return BGEHybridRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"index": self.index, "mode": "colbert"}

    @property
    def retriever_query_example(self) -> str:
        return QUERY


def test_documents_carry_id_metadata_and_stage_scores(lc_index: Any) -> None:
    docs = BGEHybridRetriever(index=lc_index, k=3).invoke(QUERY)
    hits = lc_index.search(QUERY, 3)
    assert [d.id for d in docs] == [h.id for h in hits]
    assert [d.page_content for d in docs] == [h.text for h in hits]
    for d, h in zip(docs, hits):
        assert d.metadata["relevance_score"] == pytest.approx(h.score)
        assert d.metadata["scores"] == pytest.approx(h.scores)
        assert d.metadata["topic"] == h.metadata["topic"]
    assert {"dense", "sparse", "fusion"} <= set(docs[0].metadata["scores"])


@pytest.mark.parametrize("mode", ["dense", "sparse", "hybrid", "colbert"])
def test_modes_match_index(lc_index: Any, mode: str) -> None:
    docs = BGEHybridRetriever(index=lc_index, k=4, mode=mode).invoke(QUERY)  # type: ignore[arg-type]
    assert [d.id for d in docs] == [h.id for h in lc_index.search(QUERY, 4, mode=mode)]
    if mode == "colbert":
        assert "colbert" in docs[0].metadata["scores"]


def test_filter_and_call_overrides(lc_index: Any) -> None:
    r = BGEHybridRetriever(index=lc_index, k=5, filter={"topic": "bio"})
    docs = r.invoke(QUERY)
    assert docs and all(d.metadata["topic"] == "bio" for d in docs)
    animals = r.invoke(QUERY, filter={"topic": "animal"}, k=5)
    assert {d.page_content for d in animals} == {t for t, m in LC_CORPUS if m["topic"] == "animal"}
    assert len(r.invoke(QUERY, k=1, mode="dense")) == 1
    with pytest.raises(TypeError, match="unknown search option"):
        r.invoke(QUERY, top_k=3)
    with pytest.raises(ValueError, match="k must be a positive int"):
        r.invoke(QUERY, k=0)


def test_cross_encoder_stage(lc_index: Any, reranker: Any) -> None:
    plain = BGEHybridRetriever(index=lc_index, k=3, reranker=reranker).invoke(QUERY)
    wrapped = BGEHybridRetriever(index=lc_index, k=3, reranker=BGERerank(reranker=reranker)).invoke(QUERY)
    want = lc_index.search(QUERY, 3, rerank=reranker)
    assert [d.id for d in plain] == [d.id for d in wrapped] == [h.id for h in want]
    assert plain[0].metadata["relevance_score"] == pytest.approx(want[0].scores["rerank"])
    assert "rerank" in plain[0].metadata["scores"] and "fusion" in plain[0].metadata["scores"]


async def test_async_equals_sync(lc_index: Any) -> None:
    r = BGEHybridRetriever(index=lc_index, k=3, mode="colbert")
    assert await r.ainvoke(QUERY) == r.invoke(QUERY)
    assert len(await r.ainvoke(QUERY, k=2)) == 2


def test_validation() -> None:
    from pydantic import ValidationError

    with pytest.raises((TypeError, ValidationError), match="search"):
        BGEHybridRetriever(index=object())
    with pytest.raises(ValidationError):
        BGEHybridRetriever(index=_FakeIndex(), mode="bm25")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        BGEHybridRetriever(index=_FakeIndex(), k=0)


class _FakeIndex:
    def search(self, query: str, k: int | None = None, *, options: Any = None) -> list[Any]:
        from bge_core.types import Hit

        self.options = options
        return [Hit(f"id{i}", 1.0 / (i + 1), f"text {i}", {"i": i}, {"dense": 0.5}) for i in range(options.k)]


def test_any_index_with_search_fits() -> None:
    idx = _FakeIndex()
    docs = BGEHybridRetriever(index=idx, k=2, mode="dense", rrf_k=10).invoke("q")
    assert [d.id for d in docs] == ["id0", "id1"] and all(isinstance(d, Document) for d in docs)
    assert idx.options.mode == "dense" and idx.options.rrf_k == 10 and idx.options.rerank is None


# -- the Qdrant adapter (written in parallel; skipped until importable) ----------------------


def _qdrant_index(encoder: Any) -> Any:
    bge_qdrant = pytest.importorskip("bge_qdrant")
    cls = getattr(bge_qdrant, "QdrantIndex", None)
    if cls is None:
        pytest.skip("bge_qdrant.QdrantIndex is not there yet")
    from qdrant_client import QdrantClient

    params = inspect.signature(cls).parameters
    kwargs: dict[str, Any] = {}
    for name in ("client", "location", "url", "path"):
        if name in params:
            kwargs[name] = QdrantClient(":memory:") if name == "client" else ":memory:"
            break
    for name in ("collection_name", "collection"):
        if name in params:
            kwargs[name] = "langchain_bge"
            break
    if "encoder" in params:
        kwargs["encoder"] = encoder
    try:
        return cls(**kwargs)
    except TypeError as exc:
        pytest.skip(f"could not build QdrantIndex from {sorted(kwargs)}: {exc}")


def test_over_qdrant_index(m3: Any, lc_index: Any) -> None:
    index = _qdrant_index(m3)
    index.add_texts([t for t, _ in LC_CORPUS], [m for _, m in LC_CORPUS], ids=[f"doc-{m['n']}" for _, m in LC_CORPUS])
    for mode in ("dense", "sparse", "hybrid", "colbert"):
        got = BGEHybridRetriever(index=index, k=4, mode=mode).invoke(QUERY)
        want = lc_index.search(QUERY, 4, mode=mode)
        assert [d.id for d in got] == [h.id for h in want], mode
    bio = BGEHybridRetriever(index=index, k=5, filter={"topic": "bio"}).invoke(QUERY)
    assert bio and all(d.metadata["topic"] == "bio" for d in bio)
