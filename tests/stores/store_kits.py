"""The stores of the conformance suite (``tests/stores``): every :class:`bge_core.index.Store` runs it.

How a new store joins
---------------------
Write one factory ``def _my_store(tmp_path) -> StoreKit`` below and add its name to
``KITS``. A kit says how to open the store on a collection (again and again on the same
data: a second ``open`` is how the suite "restarts" after a crash), how to wrap its client for
fault injection, and which errors of its client are transient and permanent. Nothing else:
every test in ``tests/stores`` then runs on it. Skip a kit (``pytest.importorskip`` inside
the factory) when its client package is not installed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bge_core.index import RetryPolicy, Store, VectorIndex

#: Retries without waiting (RetryPolicy has no injectable sleep yet: a zero delay keeps the
#: fault tests instant and deterministic).
NO_WAIT = RetryPolicy(attempts=3, initial_delay=0.0, max_delay=0.0)

Wrap = Callable[[Any], Any]


@dataclass
class StoreKit:
    """How the conformance suite drives one kind of store.

    ``open(collection, wrap)`` returns a store on ``collection`` of this test's backing
    (every call sees the same data); ``wrap`` (optional) maps the store's client, or the store
    itself for a store without a client, to a proxy (see ``store_checks.FlakyProxy``).
    ``write_method`` is the wrapped object's method that writes rows and ``write_targets``
    the collections it writes to, each a place where a fault is injected (``None``: the
    method takes no collection name); ``transient()`` / ``permanent()`` build errors of the
    kind its client raises."""

    name: str
    open: Callable[[str, Wrap | None], Store]
    write_method: str
    transient: Callable[[], BaseException]
    permanent: Callable[[], BaseException]
    write_targets: tuple[str | None, ...] = ("{collection}",)
    closers: list[Callable[[], None]] = field(default_factory=list)

    def index(self, encoder: Any, *, collection: str = "docs", wrap: Wrap | None = None, **options: Any) -> VectorIndex:
        """A VectorIndex over a store of this kit (no progress bars, instant retries)."""
        options.setdefault("show_progress", False)
        options.setdefault("retry", NO_WAIT)
        return VectorIndex(self.open(collection, wrap), encoder, **options)


def _memory(tmp_path: Path) -> StoreKit:
    from bge_core.errors import StoreError, TransientStoreError
    from bge_core.reference import InMemoryStore

    stores: dict[str, InMemoryStore] = {}

    def open_(collection: str, wrap: Wrap | None) -> Store:
        store = stores.setdefault(collection, InMemoryStore())
        return wrap(store) if wrap else store

    return StoreKit(
        "memory", open_, "upsert", lambda: TransientStoreError("flaky"), lambda: StoreError("broken"), (None,)
    )


def _qdrant(client: Any) -> Callable[[str, Wrap | None], Store]:
    from bge_qdrant import QdrantStore

    def open_(collection: str, wrap: Wrap | None) -> Store:
        return QdrantStore(wrap(client) if wrap else client, collection)

    return open_


def _qdrant_errors() -> tuple[Callable[[], BaseException], Callable[[], BaseException]]:
    import httpx
    from qdrant_client.http.exceptions import (
        ResponseHandlingException,
        UnexpectedResponse,
    )

    return (
        lambda: ResponseHandlingException(httpx.ReadTimeout("timed out")),
        lambda: UnexpectedResponse(400, "Bad Request", b'{"status": {"error": "Wrong input"}}', httpx.Headers()),
    )


def _qdrant_memory(tmp_path: Path) -> StoreKit:
    pytest.importorskip("qdrant_client")
    from qdrant_client import QdrantClient

    client = QdrantClient(":memory:")
    kit = StoreKit("qdrant-memory", _qdrant(client), "upsert", *_qdrant_errors())
    kit.closers.append(client.close)
    return kit


def _qdrant_path(tmp_path: Path) -> StoreKit:
    pytest.importorskip("qdrant_client")
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(tmp_path / "qdrant"))
    kit = StoreKit("qdrant-path", _qdrant(client), "upsert", *_qdrant_errors())
    kit.closers.append(client.close)
    return kit


def _milvus_lite(tmp_path: Path) -> StoreKit:
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
    from pymilvus import MilvusClient, MilvusException
    from pymilvus.exceptions import MilvusUnavailableException
    from store_checks import release_milvus

    from bge_milvus import MilvusStore

    path = tmp_path / "milvus.db"
    client = MilvusClient(str(path))

    def open_(collection: str, wrap: Wrap | None) -> Store:
        return MilvusStore(wrap(client) if wrap else client, collection)

    kit = StoreKit(
        "milvus-lite",
        open_,
        "upsert",
        lambda: MilvusUnavailableException(message="service unavailable: connection reset by peer"),
        lambda: MilvusException(code=1100, message="invalid parameter: field dense dim mismatch"),
        ("{collection}", "{collection}_colbert"),  # main rows and ColBERT token rows
    )
    kit.closers += [client.close, lambda: release_milvus(path)]
    return kit


def _edge(tmp_path: Path) -> StoreKit:
    pytest.importorskip("qdrant_edge")
    from bge_core.errors import StoreError, TransientStoreError
    from bge_qdrant.edge_store import EdgeStore

    # One folder per collection. An embedded engine takes one handle per folder in a process,
    # so every open of a collection shares that handle ("restart" and "another handle" are the
    # same store here; reopening after a real kill is tested in tests/edge/test_edge_durability).
    opened: dict[str, EdgeStore] = {}

    def open_(collection: str, wrap: Wrap | None) -> Store:
        store = opened.get(collection)
        if store is None:
            store = opened[collection] = EdgeStore(tmp_path / "edge" / collection, collection, show_progress=False)
        return wrap(store) if wrap else store

    kit = StoreKit("edge", open_, "upsert", lambda: TransientStoreError("flaky"), lambda: StoreError("broken"), (None,))
    kit.closers.append(lambda: [s.close() for s in opened.values()] and None)
    return kit


#: Characters a store's filter paths cannot hold: a filter key with one is refused with a
#: ValueError that says so (Qdrant Edge's path parser has no escape for a backslash).
REFUSED_KEY_CHARS: dict[str, str] = {"edge": "\\"}

#: Every store of the suite. A new store: one factory above, one entry here.
KITS: dict[str, Callable[[Path], StoreKit]] = {
    "memory": _memory,
    "qdrant-memory": _qdrant_memory,
    "qdrant-path": _qdrant_path,
    "milvus-lite": _milvus_lite,
    "edge": _edge,
}
