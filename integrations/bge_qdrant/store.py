"""``QdrantStore``: the :class:`bge_core.index.Store` protocol over a ``QdrantClient`` (the
operations live in :mod:`bge_qdrant.operations`, shared with the async store)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from bge_core.index import CollectionSpec, Record, SearchRequest
from bge_core.types import Hit
from bge_qdrant import operations as ops
from bge_qdrant.dependency import QdrantClient, models
from bge_qdrant.faults import is_transient_error
from bge_qdrant.layout import QdrantLayout
from bge_qdrant.points import METADATA_KEY, PointBuilder

__all__ = ["QdrantStore", "is_local_client"]

T = TypeVar("T")


def is_local_client(client: Any) -> bool:
    """Whether ``client`` runs Qdrant's local mode in this process (``":memory:"`` / ``path=``)."""
    inner = getattr(client, "_client", None)
    return type(inner).__name__ in ("QdrantLocal", "AsyncQdrantLocal")


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
        self,
        client: QdrantClient,
        collection_name: str,
        *,
        layout: QdrantLayout | None = None,
        owns_client: bool = False,
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

    def _run(self, op: ops.Operation[T]) -> T:
        with self._call():
            return ops.run(self.client, op)

    # -- collection ------------------------------------------------------------------------
    def ensure(self, spec: CollectionSpec) -> None:
        """Create the collection for ``spec``, or check that the existing one fits it."""
        self._run(ops.ensure(self.collection_name, spec, self.layout))

    def drop(self) -> bool:
        """Delete the collection with its points and settings; False when it does not exist."""
        return self._run(ops.drop(self.collection_name))

    def read_settings(self) -> dict[str, Any] | None:
        """Settings stored in the collection's ``metadata`` (None when absent)."""
        return self._run(ops.read_settings(self.collection_name))

    def write_settings(self, settings: dict[str, Any]) -> None:
        """Store ``settings`` in the collection's ``metadata`` (replacing earlier ones)."""
        self._run(ops.write_settings(self.collection_name, settings))

    # -- rows ------------------------------------------------------------------------------
    def upsert(self, records: Sequence[Record]) -> None:
        """Insert or replace points (waits until they are applied)."""
        self._run(ops.upsert(self.collection_name, self._points.build(records)))

    def fetch_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        """``{id: content hash}`` of the stored ids."""
        return self._run(ops.fetch_hashes(self.collection_name, ids))

    def get(self, ids: Sequence[str]) -> list[Hit]:
        """Stored rows in the order of ``ids`` (missing ids left out)."""
        return self._run(ops.get(self.collection_name, ids))

    def delete(self, ids: Sequence[str]) -> None:
        """Remove points by id (missing ids are ignored)."""
        self._run(ops.delete(self.collection_name, ids))

    def count(self) -> int:
        """Exact number of points (0 when the collection does not exist)."""
        return self._run(ops.count(self.collection_name))

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
                    self.collection_name,
                    scroll_filter=present,
                    limit=batch_size,
                    offset=offset,
                    with_payload=selector,
                    with_vectors=False,
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
        return self._run(ops.query(self.collection_name, request))

    def close(self) -> None:
        """Close the client if this store created it (idempotent)."""
        if self.owns_client and not self._closed:
            self._closed = True
            self.client.close()

    def __repr__(self) -> str:
        return f"QdrantStore(collection={self.collection_name!r}, local={self._lock is not None})"
