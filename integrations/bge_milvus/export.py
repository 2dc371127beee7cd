"""Reading a Milvus index back with its vectors (:class:`bge_core.export.ExportableStore`) for
``bge copy``: small functions taking the store's client, and :func:`exportable` that gives a
``MilvusStore`` those methods.

Pages are in id order: the first call lists the collection's ids once (a query iterator over
the ``id`` field only), later pages fetch their rows by id.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

import numpy as np

from bge_core.index import CollectionSpec, Record
from bge_core.types import SparseVector
from bge_milvus.filters import id_list_expression
from bge_milvus.store import PLACEHOLDER_TOKEN, MilvusStore

__all__ = ["ExportableMilvusStore", "exportable", "milvus_fetch_records", "milvus_ids", "milvus_stored_spec"]

_IDS_PER_CALL = 1000


def milvus_stored_spec(store: MilvusStore) -> CollectionSpec | None:
    """The BGE vector layout of the store's collections (None when missing)."""
    client = store.client
    if not client.has_collection(store.collection_name):
        return None
    fields = {f["name"]: f for f in client.describe_collection(store.collection_name)["fields"]}
    dense = fields.get("dense")
    colbert_dim = None
    if client.has_collection(store.colbert_collection):
        cf = {f["name"]: f for f in client.describe_collection(store.colbert_collection)["fields"]}
        colbert_dim = int(cf["vector"]["params"]["dim"])
    return CollectionSpec(
        dense_dim=None if dense is None else int(dense["params"]["dim"]),
        sparse="sparse" in fields,
        colbert_dim=colbert_dim,
    )


def milvus_ids(store: MilvusStore) -> list[str]:
    """Every id of the main collection, sorted."""
    it = store.client.query_iterator(store.collection_name, batch_size=1000, filter="", output_fields=["id"])
    ids: list[str] = []
    try:
        while page := it.next():
            ids.extend(str(r["id"]) for r in page)
    finally:
        it.close()
    return sorted(ids)


def _sparse(row: dict[str, Any]) -> SparseVector | None:
    value = row.get("sparse")
    if not value:
        return None
    if isinstance(value, dict):
        items = sorted((int(k), float(v)) for k, v in value.items() if int(k) != PLACEHOLDER_TOKEN)
    else:  # a scipy sparse row
        coo = value.tocoo()
        items = sorted((int(c), float(v)) for c, v in zip(coo.col, coo.data) if int(c) != PLACEHOLDER_TOKEN)
    if not items:
        return None
    return SparseVector(np.array([i for i, _ in items]), np.array([v for _, v in items]))


def milvus_fetch_records(store: MilvusStore, ids: Sequence[str]) -> list[Record]:
    """Records by id with dense, sparse and ColBERT vectors, in the order of ``ids``."""
    client = store.client
    spec = milvus_stored_spec(store)
    if spec is None:
        return []
    fields = ["id", "text", "metadata", "hash", "colbert_tokens"]
    if spec.dense_dim is not None:
        fields.append("dense")
    if spec.sparse:
        fields.append("sparse")
    rows: dict[str, dict[str, Any]] = {}
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), _IDS_PER_CALL):
        chunk = unique[start : start + _IDS_PER_CALL]
        for row in client.query(
            store.collection_name, filter=id_list_expression("id", chunk), output_fields=fields, limit=len(chunk)
        ):
            rows[str(row["id"])] = row
    counts = {k: int(r.get("colbert_tokens", -1)) for k, r in rows.items() if int(r.get("colbert_tokens", -1)) > 0}
    tokens = store._fetch_tokens(counts) if counts and spec.colbert_dim else {}
    out = []
    for i in ids:
        row = rows.get(i)
        if row is None:
            continue
        n = int(row.get("colbert_tokens", -1))
        colbert = None
        if n >= 0 and spec.colbert_dim:
            colbert = tokens.get(i, np.zeros((0, spec.colbert_dim), dtype=np.float32))
        out.append(
            Record(
                id=i,
                text=str(row.get("text", "")),
                metadata=dict(row.get("metadata") or {}),
                hash=str(row.get("hash", "")),
                dense=None if row.get("dense") is None else np.asarray(row["dense"], dtype=np.float32),
                sparse=_sparse(row),
                colbert=colbert,
            )
        )
    return out


class ExportableMilvusStore:
    """A ``MilvusStore`` plus the :class:`~bge_core.export.ExportableStore` methods (every
    other attribute is the wrapped store's)."""

    def __init__(self, store: MilvusStore) -> None:
        self._store = store
        self._ids: list[str] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def stored_spec(self) -> CollectionSpec | None:
        """See :func:`milvus_stored_spec`."""
        return milvus_stored_spec(self._store)

    def export(self, cursor: str | None, limit: int) -> tuple[list[Record], str | None]:
        """A page of records in id order starting at id ``cursor``."""
        if self._ids is None or cursor is None:
            self._ids = milvus_ids(self._store)
        start = 0 if cursor is None else bisect.bisect_left(self._ids, cursor)
        page = self._ids[start : start + limit]
        nxt = self._ids[start + limit] if start + limit < len(self._ids) else None
        return milvus_fetch_records(self._store, page), nxt

    def fetch_records(self, ids: Sequence[str]) -> list[Record]:
        """See :func:`milvus_fetch_records`."""
        return milvus_fetch_records(self._store, ids)

    def __repr__(self) -> str:
        return repr(self._store)


def exportable(store: MilvusStore) -> ExportableMilvusStore:
    """``store`` with the export methods ``bge copy`` needs."""
    return ExportableMilvusStore(store)
