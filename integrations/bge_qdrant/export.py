"""Reading Qdrant collections back with their vectors (:class:`bge_core.export.ExportableStore`)
for ``bge copy``: small functions taking the client, and :func:`exportable` that gives a
``QdrantStore`` those methods."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bge_core.index import CollectionSpec, Record
from bge_core.types import SparseVector
from bge_qdrant.layout import COLBERT, DENSE, SPARSE
from bge_qdrant.points import HASH_KEY, METADATA_KEY, TEXT_KEY, point_ids

__all__ = ["ExportableQdrantStore", "exportable", "qdrant_export", "qdrant_fetch_records", "qdrant_stored_spec"]


def qdrant_stored_spec(client: Any, name: str) -> CollectionSpec | None:
    """The BGE vector layout of collection ``name`` (None when it does not exist)."""
    if not client.collection_exists(name):
        return None
    params = client.get_collection(name).config.params
    vectors = params.vectors if isinstance(params.vectors, Mapping) else {}
    dense = vectors.get(DENSE)
    colbert = vectors.get(COLBERT)
    return CollectionSpec(
        dense_dim=None if dense is None else int(dense.size),
        sparse=SPARSE in (params.sparse_vectors or {}),
        colbert_dim=None if colbert is None else int(colbert.size),
    )


def record_from_point(point: Any, given_id: str | None = None) -> Record:
    """A :class:`Record` from a retrieved Qdrant point with payload and vectors."""
    payload = point.payload or {}
    vec = point.vector if isinstance(point.vector, Mapping) else {}
    meta = payload.get(METADATA_KEY)
    sparse = vec.get(SPARSE)
    dense = vec.get(DENSE)
    colbert = vec.get(COLBERT)
    return Record(
        id=given_id or str(point.id),
        text=str(payload.get(TEXT_KEY, "")),
        metadata=dict(meta) if isinstance(meta, dict) else {},
        hash=str(payload.get(HASH_KEY, "")),
        dense=None if dense is None else np.asarray(dense, dtype=np.float32),
        sparse=None if sparse is None else SparseVector(np.asarray(sparse.indices), np.asarray(sparse.values)),
        colbert=None if colbert is None else np.asarray(colbert, dtype=np.float32),
    )


def qdrant_export(client: Any, name: str, cursor: str | None, limit: int) -> tuple[list[Record], str | None]:
    """One page of ``scroll`` (id order) with vectors; returns the records and the next cursor."""
    points, nxt = client.scroll(name, limit=limit, offset=cursor, with_payload=True, with_vectors=True)
    return [record_from_point(p) for p in points], (None if nxt is None else str(nxt))


def qdrant_fetch_records(client: Any, name: str, ids: Sequence[str]) -> list[Record]:
    """Records by id with vectors, in the order of ``ids`` (missing ids left out)."""
    wanted = point_ids(ids)
    if not wanted:
        return []
    found = {str(p.id): p for p in client.retrieve(name, list(wanted), with_payload=True, with_vectors=True)}
    by_given = {given: record_from_point(found[c], given) for c, given in wanted.items() if c in found}
    return [by_given[i] for i in ids if i in by_given]


class ExportableQdrantStore:
    """A ``QdrantStore`` plus the :class:`~bge_core.export.ExportableStore` methods (every
    other attribute is the wrapped store's)."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def stored_spec(self) -> CollectionSpec | None:
        """See :func:`qdrant_stored_spec`."""
        with self._store._call():
            return qdrant_stored_spec(self._store.client, self._store.collection_name)

    def export(self, cursor: str | None, limit: int) -> tuple[list[Record], str | None]:
        """See :func:`qdrant_export`."""
        with self._store._call():
            return qdrant_export(self._store.client, self._store.collection_name, cursor, limit)

    def fetch_records(self, ids: Sequence[str]) -> list[Record]:
        """See :func:`qdrant_fetch_records`."""
        with self._store._call():
            return qdrant_fetch_records(self._store.client, self._store.collection_name, ids)

    def __repr__(self) -> str:
        return repr(self._store)


def exportable(store: Any) -> ExportableQdrantStore:
    """``store`` (a ``QdrantStore``) with the export methods ``bge copy`` needs."""
    return ExportableQdrantStore(store)
