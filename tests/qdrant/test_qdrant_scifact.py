"""SciFact with all-MiniLM-L6-v2 through Qdrant local mode on disk (dense, k=100):
nDCG@10 = 0.6451 +- 0.005."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from bge_core.evaluation import evaluate_run, load_beir

logger = logging.getLogger(__name__)


@pytest.mark.slow
def test_scifact_ndcg(tmp_path: Path, scifact_minilm: Any, scifact_dir: Path) -> None:
    from qdrant_client import QdrantClient

    from bge_qdrant import QdrantIndex

    data = load_beir(scifact_dir)
    encoder = scifact_minilm  # the auto (bf16 where native) fast path, memoised per session
    client = QdrantClient(path=str(tmp_path / "qdrant"))
    try:
        index = QdrantIndex(client, "scifact", encoder, show_progress=False, write_batch_size=128, chunk_size=512)
        doc_ids = list(data.corpus)
        index.add_documents({"text": data.doc_text(d), "metadata": {"doc_id": d}, "id": d} for d in doc_ids)
        assert index.count() == len(doc_ids)
        run: dict[str, list[str]] = {}
        for qid, text in data.queries.items():
            hits = index.search(text, 100, mode="dense")
            assert len(hits) == 100
            run[qid] = [h.metadata["doc_id"] for h in hits]
        metrics = evaluate_run(run, data.qrels)
        logger.warning("SciFact via Qdrant local mode: %s", metrics)
        assert metrics["ndcg@10"] == pytest.approx(0.6451, abs=0.005)
    finally:
        client.close()
