"""``AsyncQdrantStore``: the store calls as coroutines over an ``AsyncQdrantClient``.

It runs the same operations as :class:`QdrantStore` (:mod:`bge_qdrant.operations`: every
request built and every answer read in one place); only the client calls are awaited.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from bge_core.index import CollectionSpec, Record, SearchRequest
from bge_core.types import Hit
from bge_qdrant import operations as ops
from bge_qdrant.dependency import AsyncQdrantClient
from bge_qdrant.faults import is_transient_error
from bge_qdrant.layout import QdrantLayout
from bge_qdrant.points import PointBuilder
from bge_qdrant.store import is_local_client

__all__ = ["AsyncQdrantStore"]

T = TypeVar("T")


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

    async def _run(self, op: ops.Operation[T]) -> T:
        return await ops.arun(self.client, op)

    async def ensure(self, spec: CollectionSpec) -> None:
        """Create the collection for ``spec``, or check that the existing one fits it."""
        await self._run(ops.ensure(self.collection_name, spec, self.layout))

    async def drop(self) -> bool:
        """Delete the collection with its points and settings; False when it does not exist."""
        return await self._run(ops.drop(self.collection_name))

    async def read_settings(self) -> dict[str, Any] | None:
        """Settings stored in the collection's ``metadata`` (None when absent)."""
        return await self._run(ops.read_settings(self.collection_name))

    async def write_settings(self, settings: dict[str, Any]) -> None:
        """Store ``settings`` in the collection's ``metadata``."""
        await self._run(ops.write_settings(self.collection_name, settings))

    async def upsert(self, records: Sequence[Record]) -> None:
        """Insert or replace points."""
        await self._run(ops.upsert(self.collection_name, self._points.build(records)))

    async def fetch_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        """``{id: content hash}`` of the stored ids."""
        return await self._run(ops.fetch_hashes(self.collection_name, ids))

    async def get(self, ids: Sequence[str]) -> list[Hit]:
        """Stored rows in the order of ``ids``."""
        return await self._run(ops.get(self.collection_name, ids))

    async def delete(self, ids: Sequence[str]) -> None:
        """Remove points by id."""
        await self._run(ops.delete(self.collection_name, ids))

    async def count(self) -> int:
        """Exact number of points (0 when the collection does not exist)."""
        return await self._run(ops.count(self.collection_name))

    def is_transient(self, exc: BaseException) -> bool:
        """See :mod:`bge_qdrant.faults`."""
        return is_transient_error(exc)

    async def query(self, request: SearchRequest) -> list[Hit]:
        """Run a planned search."""
        return await self._run(ops.query(self.collection_name, request))

    async def close(self) -> None:
        """Close the client if this store created it."""
        if self.owns_client and not self._closed:
            self._closed = True
            await self.client.close()

    def __repr__(self) -> str:
        return f"AsyncQdrantStore(collection={self.collection_name!r})"
