"""Reading an index back out of a store: stored records WITH their vectors.

:class:`ExportableStore` is an optional protocol next to :class:`bge_core.index.Store`: a store
that implements it can be the source of :func:`bge_core.copy.copy_index` (and the checked
destination). Implemented by ``InMemoryStore``, ``bge_qdrant.EdgeStore`` and, through small
wrappers, Qdrant (``bge_qdrant.export``) and Milvus (``bge_milvus.export``) stores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from bge_core.index import CollectionSpec, Record

__all__ = ["ExportableStore"]


@runtime_checkable
class ExportableStore(Protocol):
    """A store whose records can be read back with their vectors (in a stable order)."""

    def stored_spec(self) -> CollectionSpec | None:
        """The vector layout of the stored collection (None when it does not exist)."""
        ...

    def export(self, cursor: str | None, limit: int) -> tuple[list[Record], str | None]:
        """Up to ``limit`` records from ``cursor`` (None: the start), in a stable order, and
        the cursor of the next page (None: no more records)."""
        ...

    def fetch_records(self, ids: Sequence[str]) -> list[Record]:
        """Stored records by id with their vectors, in the order of ``ids`` (missing ids left out)."""
        ...
