"""SciFact with all-MiniLM-L6-v2 through Milvus Lite (dense, k=100): nDCG@10 = 0.6451 +- 0.005."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from store_checks import release_milvus as release

from bge_core.evaluation import evaluate_run, load_beir
from bge_milvus import MilvusIndex

logger = logging.getLogger(__name__)


@pytest.mark.slow
def test_scifact_ndcg(tmp_path: Path, scifact_minilm: Any, scifact_dir: Path) -> None:
    from pymilvus import MilvusClient

    data = load_beir(scifact_dir)
    encoder = scifact_minilm  # the auto (bf16 where native) fast path, memoised per session
    client = MilvusClient(str(tmp_path / "scifact.db"))
    try:
        index = MilvusIndex(client, "scifact", encoder, show_progress=False, write_batch_size=128, chunk_size=512)
        doc_ids = list(data.corpus)
        index.add_documents({"text": data.doc_text(d), "metadata": {"doc_id": d}, "id": d} for d in doc_ids)
        assert index.count() == len(doc_ids)
        run: dict[str, list[str]] = {}
        for qid, text in data.queries.items():
            run[qid] = [h.metadata["doc_id"] for h in index.search(text, 100, mode="dense")]
        metrics = evaluate_run(run, data.qrels)
        logger.warning("SciFact via Milvus Lite: %s", metrics)
        assert metrics["ndcg@10"] == pytest.approx(0.6451, abs=0.005)
    finally:
        client.close()
        release(tmp_path / "scifact.db")
