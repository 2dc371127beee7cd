"""``AsyncQdrantStore``: the store calls as coroutines over an ``AsyncQdrantClient``.

It shares every translation (layout, points, filters, queries) with :class:`QdrantStore`;
only the client calls are awaited.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bge_core.errors import StoreError
from bge_core.index import CollectionSpec, Record, SearchRequest
from bge_core.types import Hit
from bge_qdrant.dependency import AsyncQdrantClient, models
from bge_qdrant.faults import is_transient_error
from bge_qdrant.layout import (
    SETTINGS_KEY,
    QdrantLayout,
    check_collection,
    check_settings_kept,
    create_kwargs,
)
from bge_qdrant.points import HASH_KEY, PointBuilder, hits_in_order, point_ids
from bge_qdrant.queries import build_query
from bge_qdrant.store import is_local_client

__all__ = ["AsyncQdrantStore"]


class AsyncQdrantStore:
    """One Qdrant collection over an ``AsyncQdrantClient`` (same arguments and semantics as
    :class:`bge_qdrant.QdrantStore`; every call is a coroutine). Nothing is sent in the
    constructor."""

    def __init__(
        self,
        client: AsyncQdrantClient,
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
        self._closed = False

    async def ensure(self, spec: CollectionSpec) -> None:
        """Create the collection for ``spec``, or check that the existing one fits it."""
        if spec.colbert_dim:
            self.layout.max_colbert_vectors(spec.colbert_dim)
        name = self.collection_name
        if not await self.client.collection_exists(name):
            try:
                await self.client.create_collection(name, **create_kwargs(spec, self.layout))
                return
            except Exception:
                if not await self.client.collection_exists(name):
                    raise
        check_collection(name, await self.client.get_collection(name), spec, self.layout)

    async def read_settings(self) -> dict[str, Any] | None:
        """Settings stored in the collection's ``metadata`` (None when absent)."""
        if not await self.client.collection_exists(self.collection_name):
            return None
        meta = (await self.client.get_collection(self.collection_name)).config.metadata or {}
        value = meta.get(SETTINGS_KEY)
        return dict(value) if isinstance(value, dict) else None

    async def write_settings(self, settings: dict[str, Any]) -> None:
        """Store ``settings`` in the collection's ``metadata``."""
        if not await self.client.collection_exists(self.collection_name):
            raise StoreError(f"Qdrant collection {self.collection_name!r} does not exist; call ensure_collection() first")
        await self.client.update_collection(self.collection_name, metadata={SETTINGS_KEY: dict(settings)})
        info = await self.client.get_collection(self.collection_name)
        check_settings_kept(self.collection_name, settings, (info.config.metadata or {}).get(SETTINGS_KEY))

    async def upsert(self, records: Sequence[Record]) -> None:
        """Insert or replace points."""
        points = self._points.build(records)
        if points:
            await self.client.upsert(self.collection_name, points=points, wait=True)

    async def fetch_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        """``{id: content hash}`` of the stored ids."""
        wanted = point_ids(ids)
        if not wanted:
            return {}
        found = await self.client.retrieve(self.collection_name, list(wanted), with_payload=[HASH_KEY], with_vectors=False)
        return {wanted[str(p.id)]: str((p.payload or {}).get(HASH_KEY)) for p in found if str(p.id) in wanted}

    async def get(self, ids: Sequence[str]) -> list[Hit]:
        """Stored rows in the order of ``ids``."""
        wanted = point_ids(ids)
        if not wanted:
            return []
        found = await self.client.retrieve(self.collection_name, list(wanted), with_payload=True, with_vectors=False)
        return hits_in_order(ids, found)

    async def delete(self, ids: Sequence[str]) -> None:
        """Remove points by id."""
        wanted = point_ids(ids)
        if wanted:
            await self.client.delete(self.collection_name, points_selector=models.PointIdsList(points=list(wanted)), wait=True)

    async def count(self) -> int:
        """Exact number of points."""
        return int((await self.client.count(self.collection_name, exact=True)).count)

    def is_transient(self, exc: BaseException) -> bool:
        """See :mod:`bge_qdrant.faults`."""
        return is_transient_error(exc)

    async def query(self, request: SearchRequest) -> list[Hit]:
        """Run a planned search."""
        q = build_query(request)
        if not q.requests:
            return []
        if len(q.requests) == 1:
            r = q.requests[0]
            resp = await self.client.query_points(
                self.collection_name, query=r.query, using=r.using, prefetch=r.prefetch, query_filter=r.filter,
                limit=r.limit or 10, with_payload=True,
            )
            return q.finish([resp.points])
        batch = await self.client.query_batch_points(self.collection_name, requests=q.requests)
        return q.finish([resp.points for resp in batch])

    async def close(self) -> None:
        """Close the client if this store created it."""
        if self.owns_client and not self._closed:
            self._closed = True
            await self.client.close()

    def __repr__(self) -> str:
        return f"AsyncQdrantStore(collection={self.collection_name!r})"
