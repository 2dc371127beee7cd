"""Milvus rows: main rows and ColBERT token rows from records, hits from search answers.

Rows whose sparse vector is empty are written with a placeholder sparse vector holding one
weight at token id ``2**32 - 2``: no query can reach it (query token ids are int32), so such
rows never appear in sparse results, while dense search finds them as usual.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from bge_core.index import Record
from bge_core.types import Hit, SparseVector
from bge_milvus.filters import TERMS_FIELD, filter_terms
from bge_milvus.layout import MAX_TEXT_BYTES

__all__ = [
    "MAIN_OUTPUT",
    "PLACEHOLDER_TOKEN",
    "chunks",
    "colbert_length",
    "flatten",
    "main_row",
    "sparse_dict",
    "stale_token_ids",
    "to_hit",
    "token_rows",
]

#: Sparse dimension of the placeholder written for rows with no lexical weights.
PLACEHOLDER_TOKEN = 2**32 - 2
_PLACEHOLDER_WEIGHT = 1e-6
#: Fields a search returns from the main collection.
MAIN_OUTPUT = ["text", "metadata", "colbert_tokens"]


def colbert_length(r: Record) -> int:
    """Number of ColBERT token rows of ``r`` (0 without ColBERT vectors)."""
    return 0 if r.colbert is None else int(np.asarray(r.colbert).shape[0])


def main_row(r: Record, *, dense: bool, sparse: bool) -> dict[str, Any]:
    """The main-collection row of ``r`` (raises ValueError for a row Milvus cannot hold)."""
    nbytes = len(r.text.encode("utf-8", "surrogatepass"))
    if nbytes > MAX_TEXT_BYTES:
        raise ValueError(
            f"text of id {r.id} is {nbytes} bytes; a Milvus VARCHAR holds at most {MAX_TEXT_BYTES}: "
            "split the document into smaller chunks"
        )
    row: dict[str, Any] = {
        "id": r.id,
        "text": r.text,
        "metadata": r.metadata,
        TERMS_FIELD: filter_terms(r.metadata),
        "hash": r.hash,
        "colbert_tokens": -1 if r.colbert is None else colbert_length(r),
    }
    if dense:
        if r.dense is None:
            raise ValueError(f"record {r.id} has no dense vector but the collection needs one")
        row["dense"] = np.asarray(r.dense, dtype=np.float32).tolist()
    if sparse:
        row["sparse"] = sparse_dict(r.sparse)
    return row


def token_rows(records: Sequence[Record]) -> Iterator[dict[str, Any]]:
    """ColBERT token rows ``{id: "<doc id>:<pos>", doc_id, pos, vector}`` of ``records``.

    Built lazily, each vector a float32 row view (pymilvus packs numpy rows directly):
    Python lists of floats cost ~10x the memory."""
    for r in records:
        if r.colbert is not None:
            mat = np.asarray(r.colbert, dtype=np.float32)
            for p in range(mat.shape[0]):
                yield {"id": f"{r.id}:{p}", "doc_id": r.id, "pos": p, "vector": mat[p]}


def stale_token_ids(records: Sequence[Record], stored: dict[str, int]) -> list[str]:
    """Token row ids beyond each record's new length (``stored``: id -> stored token count)."""
    stale: list[str] = []
    for r in records:
        stale.extend(f"{r.id}:{p}" for p in range(colbert_length(r), stored.get(r.id, 0)))
    return stale


def sparse_dict(sv: SparseVector | None) -> dict[int, float]:
    """A sparse vector as Milvus' ``{dim: weight}`` (the placeholder when empty)."""
    if sv is None or len(sv) == 0:
        return {PLACEHOLDER_TOKEN: _PLACEHOLDER_WEIGHT}
    return dict(zip(sv.indices.tolist(), sv.values.tolist()))


def flatten(hit: Any) -> dict[str, Any]:
    """A search hit as ``{id, distance, text, metadata, colbert_tokens}``."""
    entity = hit.get("entity") or {}
    return {
        "id": hit.get("id", entity.get("id")),
        "distance": float(hit.get("distance", 0.0)),
        "text": entity.get("text", ""),
        "metadata": entity.get("metadata") or {},
        "colbert_tokens": entity.get("colbert_tokens"),
    }


def to_hit(h: dict[str, Any], scores: dict[str, float], score: float | None = None) -> Hit:
    """A flattened hit as a :class:`Hit` (``score`` defaults to its distance)."""
    return Hit(h["id"], h["distance"] if score is None else float(score), h["text"], dict(h["metadata"]), scores)


def chunks(items: list[str], size: int) -> Iterator[list[str]]:
    """``items`` in slices of ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
