"""Read back what a store holds (vectors included) to compare two ingests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def qdrant_rows(path: Path, collection: str) -> dict[str, dict[str, Any]]:
    """``{id: {"dense", "sparse" (set of keys), "colbert" (shape), "payload"}}`` of a Qdrant folder."""
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(path))
    try:
        points, _ = client.scroll(collection, limit=100_000, with_vectors=True, with_payload=True)
    finally:
        client.close()
    out = {}
    for p in points:
        vec = p.vector if isinstance(p.vector, dict) else {"dense": p.vector}
        sparse = vec.get("sparse")
        colbert = vec.get("colbert")
        out[str(p.id)] = {
            "dense": np.asarray(vec["dense"], dtype=np.float32),
            "sparse": set(sparse.indices) if sparse is not None else set(),
            "colbert": np.asarray(colbert).shape if colbert is not None else None,
            "payload": p.payload,
        }
    return out


def milvus_rows(path: Path, collection: str) -> dict[str, dict[str, Any]]:
    """The same from a Milvus Lite file (ColBERT: the stored token count)."""
    from pymilvus import MilvusClient

    client = MilvusClient(str(path))
    try:
        fields = {f["name"] for f in client.describe_collection(collection)["fields"]}
        want = [f for f in ("id", "dense", "sparse", "colbert_tokens", "hash", "text") if f in fields]
        found = client.query(collection, filter='id != ""', output_fields=want, limit=16_384)
    finally:
        client.close()
    out = {}
    for row in found:
        sparse = row.get("sparse") or {}
        out[str(row["id"])] = {
            "dense": np.asarray(row["dense"], dtype=np.float32),
            "sparse": {int(k) for k in sparse},
            "colbert": row.get("colbert_tokens"),
            "payload": {"text": row.get("text"), "hash": row.get("hash")},
        }
    return out


def assert_same(got: dict[str, dict[str, Any]], want: dict[str, dict[str, Any]], *, min_cos: float = 0.999) -> None:
    """Same ids, dense cosine >= ``min_cos``, same sparse keys, same ColBERT shapes, same payload."""
    assert set(got) == set(want)
    assert got, "nothing stored"
    for key, w in want.items():
        g = got[key]
        cos = float(g["dense"] @ w["dense"] / (np.linalg.norm(g["dense"]) * np.linalg.norm(w["dense"])))
        assert cos >= min_cos, (key, cos)
        assert g["sparse"] == w["sparse"], key
        assert g["colbert"] == w["colbert"], key
        assert g["payload"] == w["payload"], key


def edge_rows(path: Path, collection: str) -> dict[str, dict[str, Any]]:
    """The same from a Qdrant Edge folder (payload: text, metadata and hash, as the others)."""
    from bge_qdrant.edge_store import EdgeStore

    store = EdgeStore(path, collection, show_progress=False)
    try:
        records = list(store.iter_records())
    finally:
        store.close()
    return {
        r.id: {
            "dense": np.asarray(r.dense, dtype=np.float32),
            "sparse": set(r.sparse.indices.tolist()) if r.sparse is not None else set(),
            "colbert": None if r.colbert is None else r.colbert.shape,
            "payload": {"text": r.text, "metadata": r.metadata, "hash": r.hash},
        }
        for r in records
    }
