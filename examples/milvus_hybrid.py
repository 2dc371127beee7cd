"""BGE-M3 hybrid search on Milvus Lite: dense, sparse, hybrid (RRF / DBSF / weighted) and ColBERT.

    python examples/milvus_hybrid.py [MODEL_PATH]   # or set BGE_M3_MODEL

Without a model path a tiny random checkpoint is built in a temp dir (results are then
well-formed but not meaningful). The Milvus Lite database lives in a temp dir too.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from bge_core import BGEM3Encoder
from bge_milvus import MilvusIndex

DOCS = [
    ("cancer cells grow in the liver", {"topic": "medicine"}),
    ("blood cells and the immune response", {"topic": "medicine"}),
    ("a new drug treatment for heart disease", {"topic": "medicine"}),
    ("dense sparse hybrid retrieval with colbert rerank", {"topic": "search"}),
    ("vector search index for query and document", {"topic": "search"}),
    ("the sun and the moon and the star", {"topic": "sky"}),
]


def main() -> None:
    from pymilvus import MilvusClient

    with tempfile.TemporaryDirectory() as tmp:
        model = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BGE_M3_MODEL")
        if not model:
            from bge_core.testing import build_tiny_m3

            model = str(build_tiny_m3(Path(tmp) / "tiny-m3"))
            print(f"no model given: built a tiny random checkpoint at {model}")
        encoder = BGEM3Encoder(model, device="cpu", dtype="float32")
        client = MilvusClient(str(Path(tmp) / "example.db"))
        index = MilvusIndex(client, "docs", encoder, show_progress=False)
        ids = index.add_texts([t for t, _ in DOCS], [m for _, m in DOCS])
        print(f"indexed {len(ids)} documents; count={index.count()}")
        query = "immune cells and cancer treatment"
        runs = [
            ("dense", "rrf", None),
            ("sparse", "rrf", None),
            ("hybrid", "rrf", None),
            ("hybrid", "dbsf", None),
            ("hybrid", "weighted", None),
            ("colbert", "rrf", None),
            ("hybrid", "rrf", {"topic": "search"}),
        ]
        for mode, fusion, flt in runs:
            hits = index.search(query, 3, mode=mode, fusion=fusion, filter=flt)  # type: ignore[arg-type]
            label = f"mode={mode} fusion={fusion}" + (f" filter={flt}" if flt else "")
            print(label)
            for h in hits:
                print(f"  {h.score:.4f}  {h.text}  {h.metadata}")
        client.close()


if __name__ == "__main__":
    main()
