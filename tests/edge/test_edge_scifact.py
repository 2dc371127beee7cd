"""SciFact with all-MiniLM-L6-v2 through Qdrant Edge (dense, k=100, HNSW built):
nDCG@10 = 0.6451 +- 0.005."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from bge_core.evaluation import evaluate_run, load_beir

logger = logging.getLogger(__name__)


@pytest.mark.slow
def test_scifact_ndcg_through_edge(tmp_path: Path, scifact_minilm: Any, scifact_dir: Path) -> None:
    from bge_qdrant import QdrantEdgeIndex

    data = load_beir(scifact_dir)
    doc_ids = list(data.corpus)
    # build_threshold=1000: the graph is built during the ingest as well as at its end, so
    # the search below runs on HNSW segments, not brute force
    with QdrantEdgeIndex(
        tmp_path / "edge", scifact_minilm, show_progress=False, chunk_size=512, build_threshold=1000
    ) as index:
        index.add_documents({"text": data.doc_text(d), "metadata": {"doc_id": d}, "id": d} for d in doc_ids)
        assert index.count() == len(doc_ids)
        run: dict[str, list[str]] = {}
        for qid, text in data.queries.items():
            hits = index.search(text, 100, mode="dense")
            assert len(hits) == 100
            run[qid] = [h.metadata["doc_id"] for h in hits]
    metrics = evaluate_run(run, data.qrels)
    logger.warning("SciFact via Qdrant Edge: %s", metrics)
    assert metrics["ndcg@10"] == pytest.approx(0.6451, abs=0.005)
