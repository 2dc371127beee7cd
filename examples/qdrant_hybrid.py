"""BGE-M3 hybrid search in Qdrant: dense + sparse + ColBERT in one collection.

Usage:
    python examples/qdrant_hybrid.py [MODEL_PATH] [--path QDRANT_FOLDER]

The model is MODEL_PATH, else the environment variable BGE_M3_MODEL, else a tiny random
checkpoint built in a temporary folder (scores are then meaningless, but every step runs
offline). Qdrant runs in local mode: in memory, or in QDRANT_FOLDER with --path.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from qdrant_client import QdrantClient

from bge_core import BGEM3Encoder
from bge_qdrant import QdrantIndex

DOCS = [
    ("cancer cells grow in the liver", {"topic": "bio"}),
    ("blood cells and the immune response", {"topic": "bio"}),
    ("a new drug treatment for heart disease", {"topic": "bio"}),
    ("dense sparse hybrid retrieval with colbert rerank", {"topic": "search"}),
    ("the dog is in the water", {"topic": "animal"}),
    ("the sun and the moon and the star", {"topic": "sky"}),
]
QUERY = "cancer cells in the blood"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=os.environ.get("BGE_M3_MODEL"))
    parser.add_argument("--path", help="Qdrant local-mode folder (default: in memory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if not model:
            from bge_core.testing import build_tiny_m3

            model = str(build_tiny_m3(Path(tmp) / "tiny-m3"))
            print(f"no model given: built a tiny random checkpoint at {model}")
        encoder = BGEM3Encoder(model, device="cpu", dtype="float32")
        client = QdrantClient(path=args.path) if args.path else QdrantClient(":memory:")
        try:
            index = QdrantIndex(client, "example", encoder)
            ids = index.add_texts([t for t, _ in DOCS], [m for _, m in DOCS])
            print(f"indexed {len(ids)} documents; count={index.count()}")
            runs = [
                ("dense", "rrf"),
                ("sparse", "rrf"),
                ("hybrid", "rrf"),
                ("hybrid", "dbsf"),
                ("hybrid", "weighted"),
                ("colbert", "rrf"),
            ]
            for mode, fusion in runs:
                label = mode if mode in ("dense", "sparse", "colbert") else f"hybrid/{fusion}"
                print(f"== {label}")
                for hit in index.search(QUERY, 3, mode=mode, fusion=fusion):  # type: ignore[arg-type]
                    stages = ", ".join(f"{k}={v:.4f}" for k, v in hit.scores.items())
                    print(f"  {hit.score:.4f}  {hit.text!r}  [{stages}]")
            print("== hybrid with filter topic=bio")
            for hit in index.search(QUERY, 3, filter={"topic": "bio"}):
                print(f"  {hit.score:.4f}  {hit.text!r}  {hit.metadata}")
        finally:
            client.close()


if __name__ == "__main__":
    main()
