"""Open a :class:`QdrantEdgeIndex` from a store URI (the ``bge.stores`` entry point ``edge``).

URI: ``edge:PATH``, the index folder (``~`` is expanded). One process at a time may hold a
folder open; every failure is one :class:`bge_core.errors.StoreError` line.
"""

from __future__ import annotations

import logging
from typing import Any

from bge_core.errors import StoreError
from bge_core.index import IndexEncoder
from bge_qdrant.edge_index import QdrantEdgeIndex
from bge_qdrant.edge_store import EdgeStore

__all__ = ["open_index", "open_store"]

logger = logging.getLogger("bge_qdrant")

_USAGE = "use edge:PATH, for example edge:./bge-index"


def _path(uri: str) -> str:
    if not isinstance(uri, str):
        raise StoreError(f"a store URI must be a str, got {type(uri).__name__}; {_USAGE}")
    scheme, sep, path = uri.partition(":")
    if scheme.lower() != "edge" or not sep:
        raise StoreError(f"not an Edge store URI: {uri!r}; {_USAGE}")
    if not path.strip():
        raise StoreError(f"malformed Edge URI {uri!r}: no path; {_USAGE}")
    if path.startswith("//"):
        raise StoreError(f"malformed Edge URI {uri!r}: Edge is an embedded store with no server; {_USAGE}")
    return path


def open_store(uri: str, *, collection: str, show_progress: bool | None = None) -> EdgeStore:
    """The Edge store of ``collection`` in the folder named by ``uri`` (``edge:PATH``); nothing
    is opened until it is used. ``store.close()`` builds the HNSW graph over what was written,
    flushes and releases the folder."""
    path = _path(uri)
    try:
        store = EdgeStore(path, collection, show_progress=show_progress)
    except ValueError as exc:
        raise StoreError(f"cannot open Edge index {uri!r}: {exc}") from None
    logger.info("Edge store at %s, collection %r", path, collection)
    return store


def open_index(
    uri: str,
    *,
    encoder: IndexEncoder,
    collection: str,
    dense: bool = True,
    sparse: bool = True,
    colbert: bool = True,
    show_progress: bool | None = None,
    **options: Any,
) -> QdrantEdgeIndex:
    """A :class:`QdrantEdgeIndex` on the folder named by ``uri`` (``edge:PATH``).

    Nothing is opened until the index is used; ``index.close()`` builds the HNSW graph over
    what was written, flushes and releases the folder. Extra keyword ``options`` go to
    :class:`QdrantEdgeIndex` (for example ``payload_indexes={"source": "keyword"}``).
    """
    path = _path(uri)
    try:
        index = QdrantEdgeIndex(
            path,
            encoder,
            collection_name=collection,
            dense=dense,
            sparse=sparse,
            colbert=colbert,
            show_progress=show_progress,
            **options,
        )
    except ValueError as exc:
        raise StoreError(f"cannot open Edge index {uri!r}: {exc}") from None
    logger.info("Edge store at %s, collection %r", path, collection)
    return index
