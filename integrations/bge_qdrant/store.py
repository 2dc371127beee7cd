"""``QdrantStore``: the :class:`bge_core.index.Store` protocol over a ``QdrantClient``."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from bge_core.errors import StoreError
from bge_core.index import CollectionSpec, Record, SearchRequest
from bge_core.types import Hit
from bge_qdrant.dependency import QdrantClient, models
from bge_qdrant.faults import is_transient_error
from bge_qdrant.layout import (
    SETTINGS_KEY,
    QdrantLayout,
    check_collection,
    check_settings_kept,
    create_kwargs,
)
from bge_qdrant.points import (
    HASH_KEY,
    METADATA_KEY,
    PointBuilder,
    hits_in_order,
    point_ids,
)
from bge_qdrant.queries import build_query

__all__ = ["QdrantStore", "is_local_client"]


def is_local_client(client: Any) -> bool:
    """Whether ``client`` runs Qdrant's local mode in this process (``":memory:"`` / ``path=``)."""
    inner = getattr(client, "_client", None)
    return type(inner).__name__ in ("QdrantLocal", "AsyncQdrantLocal")


def run_query(client: Any, name: str, requests: list[models.QueryRequest]) -> list[list[Any]]:
    """Send ``requests``: one ``query_points`` call, or one ``query_batch_points`` for several."""
    if len(requests) == 1:
        r = requests[0]
        resp = client.query_points(
            name, query=r.query, using=r.using, prefetch=r.prefetch, query_filter=r.filter,
            limit=r.limit or 10, with_payload=True,
        )
        return [resp.points]
    return [resp.points for resp in client.query_batch_points(name, requests=requests)]


class QdrantStore:
    """One Qdrant collection as a BGE index store.

    Args:
        client: a ``QdrantClient`` (``":memory:"``, ``path=...``, or a server / cluster URL).
        collection_name: the collection (created by :meth:`ensure` when missing).
        layout: collection options (see :class:`bge_qdrant.QdrantLayout`).
        owns_client: close ``client`` in :meth:`close` (set when the client was created from
            a URI by :func:`bge_qdrant.store_uri.open_index`).

    Calls on a local-mode client are serialised with a lock (local mode is not thread-safe);
    server clients are called concurrently. Nothing is sent in the constructor.
    """

    def __init__(
        self, client: QdrantClient, collection_name: str, *, layout: QdrantLayout | None = None, owns_client: bool = False
    ) -> None:
        if not isinstance(collection_name, str) or not collection_name:
            raise ValueError("collection_name must be a non-empty string")
        self.client = client
        self.collection_name = collection_name
        self.layout = layout or QdrantLayout()
        self.owns_client = owns_client
        self._points = PointBuilder(self.layout, numpy_vectors=is_local_client(client))
        self._lock: threading.RLock | None = threading.RLock() if is_local_client(client) else None
        self._closed = False

    @contextlib.contextmanager
    def _call(self) -> Iterator[None]:
        if self._lock is None:
            yield
        else:
            with self._lock:
                yield

    # -- collection ------------------------------------------------------------------------
    def ensure(self, spec: CollectionSpec) -> None:
        """Create the collection for ``spec``, or check that the existing one fits it."""
        if spec.colbert_dim:
            self.layout.max_colbert_vectors(spec.colbert_dim)  # a bad colbert_max_vectors fails here
        name = self.collection_name
        with self._call():
            if not self.client.collection_exists(name):
                try:
                    self.client.create_collection(name, **create_kwargs(spec, self.layout))
                    return
                except Exception:
                    if not self.client.collection_exists(name):  # not a lost creation race
                        raise
            check_collection(name, self.client.get_collection(name), spec, self.layout)

    def read_settings(self) -> dict[str, Any] | None:
        """Settings stored in the collection's ``metadata`` (None when absent)."""
        with self._call():
            if not self.client.collection_exists(self.collection_name):
                return None
            meta = self.client.get_collection(self.collection_name).config.metadata or {}
        value = meta.get(SETTINGS_KEY)
        return dict(value) if isinstance(value, dict) else None

    def write_settings(self, settings: dict[str, Any]) -> None:
        """Store ``settings`` in the collection's ``metadata`` (replacing earlier ones)."""
        with self._call():
            if not self.client.collection_exists(self.collection_name):
                raise StoreError(
                    f"Qdrant collection {self.collection_name!r} does not exist; call ensure_collection() first"
                )
            self.client.update_collection(self.collection_name, metadata={SETTINGS_KEY: dict(settings)})
            stored = (self.client.get_collection(self.collection_name).config.metadata or {}).get(SETTINGS_KEY)
        check_settings_kept(self.collection_name, settings, stored)

    # -- rows ------------------------------------------------------------------------------
    def upsert(self, records: Sequence[Record]) -> None:
        """Insert or replace points (waits until they are applied)."""
        points = self._points.build(records)
        if points:
            with self._call():
                self.client.upsert(self.collection_name, points=points, wait=True)

    def fetch_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        """``{id: content hash}`` of the stored ids."""
        wanted = point_ids(ids)
        if not wanted:
            return {}
        with self._call():
            found = self.client.retrieve(self.collection_name, list(wanted), with_payload=[HASH_KEY], with_vectors=False)
        return {wanted[str(p.id)]: str((p.payload or {}).get(HASH_KEY)) for p in found if str(p.id) in wanted}

    def get(self, ids: Sequence[str]) -> list[Hit]:
        """Stored rows in the order of ``ids`` (missing ids left out)."""
        wanted = point_ids(ids)
        if not wanted:
            return []
        with self._call():
            found = self.client.retrieve(self.collection_name, list(wanted), with_payload=True, with_vectors=False)
        return hits_in_order(ids, found)

    def delete(self, ids: Sequence[str]) -> None:
        """Remove points by id (missing ids are ignored)."""
        wanted = point_ids(ids)
        if wanted:
            with self._call():
                self.client.delete(self.collection_name, points_selector=models.PointIdsList(points=list(wanted)), wait=True)

    def count(self) -> int:
        """Exact number of points."""
        with self._call():
            return int(self.client.count(self.collection_name, exact=True).count)

    def scan(self, keys: Sequence[str], batch_size: int = 1000) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(id, {key: metadata value})`` of every point whose metadata has ``keys[0]`` (paged scroll)."""
        if not keys or not self.client.collection_exists(self.collection_name):
            return
        present = models.Filter(
            must_not=[models.IsEmptyCondition(is_empty=models.PayloadField(key=f"{METADATA_KEY}.{keys[0]}"))]
        )
        selector = [f"{METADATA_KEY}.{k}" for k in keys]
        offset: Any = None
        while True:
            with self._call():
                points, offset = self.client.scroll(
                    self.collection_name, scroll_filter=present, limit=batch_size, offset=offset,
                    with_payload=selector, with_vectors=False,
                )
            for p in points:
                meta = (p.payload or {}).get(METADATA_KEY) or {}
                yield str(p.id), {k: meta.get(k) for k in keys}
            if offset is None:
                return

    def is_transient(self, exc: BaseException) -> bool:
        """Timeouts, connection errors, 429/5xx, gRPC UNAVAILABLE: see :mod:`bge_qdrant.faults`."""
        return is_transient_error(exc)

    # -- search ----------------------------------------------------------------------------
    def query(self, request: SearchRequest) -> list[Hit]:
        """Run a planned search (see :mod:`bge_qdrant.queries`)."""
        q = build_query(request)
        if not q.requests:
            return []
        with self._call():
            responses = run_query(self.client, self.collection_name, q.requests)
        return q.finish(responses)

    def close(self) -> None:
        """Close the client if this store created it (idempotent)."""
        if self.owns_client and not self._closed:
            self._closed = True
            self.client.close()

    def __repr__(self) -> str:
        return f"QdrantStore(collection={self.collection_name!r}, local={self._lock is not None})"

