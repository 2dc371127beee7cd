"""BGEHybridRetriever over bge_core vector indexes (in-memory reference, Qdrant, Milvus)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from llama_index.core.vector_stores.types import (
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from bge_core.index import VectorIndex
from bge_core.reference import InMemoryStore
from llama_index_bge import BGEHybridRetriever
from llama_index_bge.retriever import metadata_filters_to_dict


def fill(index: Any, docs: list[str]) -> Any:
    index.add_texts(docs, metadatas=[{"topic": i % 3, "n": i} for i in range(len(docs))], ids=list(range(len(docs))))
    return index


@pytest.fixture
def memory_index(m3: Any, docs: list[str]) -> VectorIndex:
    return fill(VectorIndex(InMemoryStore(), m3, show_progress=False), docs)


@pytest.mark.parametrize("mode", ["dense", "sparse", "hybrid", "colbert"])
def test_nodes_mirror_index_hits(memory_index: VectorIndex, mode: str) -> None:
    retriever = BGEHybridRetriever(memory_index, k=4, mode=mode)  # type: ignore[arg-type]
    got = retriever.retrieve("cancer cells in the blood")
    hits = memory_index.search("cancer cells in the blood", 4, mode=mode)  # type: ignore[arg-type]
    assert [n.node.node_id for n in got] == [h.id for h in hits]
    assert [n.score for n in got] == pytest.approx([h.score for h in hits])
    for n, h in zip(got, hits):
        assert n.node.get_content() == h.text
        assert n.node.metadata["n"] == h.metadata["n"]
        assert n.node.metadata["bge_scores"] == pytest.approx(h.scores)
        assert "bge_scores" not in n.node.get_content(metadata_mode="llm")  # type: ignore[arg-type]


def test_filters_and_rerank(memory_index: VectorIndex, reranker: Any) -> None:
    got = BGEHybridRetriever(memory_index, k=10, filter={"topic": 1}).retrieve("cells")
    assert got and all(n.node.metadata["topic"] == 1 for n in got)
    mf = MetadataFilters(filters=[MetadataFilter(key="n", value=[2, 5], operator=FilterOperator.IN)])
    got = BGEHybridRetriever(memory_index, k=10, filter=mf).retrieve("cells")
    assert sorted(n.node.metadata["n"] for n in got) == [2, 5]
    ranked = BGEHybridRetriever(memory_index, k=3, rerank=reranker).retrieve("liver cancer")
    scores = [n.score for n in ranked]
    assert scores == sorted(scores, reverse=True)
    want = reranker.score([("liver cancer", n.node.get_content()) for n in ranked])
    assert scores == pytest.approx(want.tolist(), rel=1e-5)
    assert all("rerank" in n.node.metadata["bge_scores"] for n in ranked)


async def test_async_retrieve(memory_index: VectorIndex) -> None:
    r = BGEHybridRetriever(memory_index, k=3)
    sync = r.retrieve("heart drug")
    got = await r.aretrieve("heart drug")
    assert [n.node.node_id for n in got] == [n.node.node_id for n in sync]


def test_bad_arguments(memory_index: VectorIndex) -> None:
    with pytest.raises(ValueError, match="unknown mode"):
        BGEHybridRetriever(memory_index, mode="bm25")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k must be"):
        BGEHybridRetriever(memory_index, k=0)
    with pytest.raises(TypeError, match="VectorIndex"):
        BGEHybridRetriever(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not supported"):
        metadata_filters_to_dict(
            MetadataFilters(filters=[MetadataFilter(key="n", value=1, operator=FilterOperator.GT)])
        )
    with pytest.raises(ValueError, match="AND"):
        metadata_filters_to_dict(MetadataFilters(filters=[MetadataFilter(key="n", value=1)], condition="or"))  # type: ignore[arg-type]


@pytest.mark.parametrize("which", ["qdrant", "milvus"])
def test_store_indexes_match_reference(
    m3: Any, docs: list[str], memory_index: VectorIndex, tmp_path: Path, which: str
) -> None:
    # Only the optional client packages may be missing; our adapters must import.
    if which == "qdrant":
        from bge_qdrant import QdrantIndex

        client = pytest.importorskip("qdrant_client").QdrantClient(":memory:")
        index: Any = QdrantIndex(client, "li", m3, show_progress=False)
    else:
        from bge_milvus import MilvusIndex

        pytest.importorskip("milvus_lite")
        client = pytest.importorskip("pymilvus").MilvusClient(str(tmp_path / "m.db"))
        index = MilvusIndex(client, "li", m3, show_progress=False)
    fill(index, docs)
    for mode in ("dense", "sparse", "hybrid"):
        got = BGEHybridRetriever(index, k=3, mode=mode).retrieve("cancer cells in the blood")  # type: ignore[arg-type]
        want = BGEHybridRetriever(memory_index, k=3, mode=mode).retrieve("cancer cells in the blood")  # type: ignore[arg-type]
        assert [n.node.node_id for n in got] == [n.node.node_id for n in want], mode
        assert [n.score for n in got] == pytest.approx([n.score for n in want], rel=1e-3, abs=1e-4), mode
    got = BGEHybridRetriever(index, k=5, filter={"topic": 2}).retrieve("cells")
    assert got and all(n.node.metadata["topic"] == 2 for n in got)
    index.close()
