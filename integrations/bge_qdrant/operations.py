"""The Qdrant store's operations as data, shared by the sync and the async store.

Each operation is a generator: it yields a :class:`Call` (a client method name and its
arguments), receives the call's result (or has the call's exception thrown in), and returns
the operation's answer. :func:`run` drives one on a ``QdrantClient``, :func:`arun` awaits
one on an ``AsyncQdrantClient``; :class:`~bge_qdrant.QdrantStore` and
:class:`~bge_qdrant.AsyncQdrantStore` are thin shells around the same operations, so the
two cannot drift apart (the sans-IO pattern of h11 / httpcore).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bge_core.errors import StoreError
from bge_core.index import CollectionSpec, SearchRequest
from bge_core.types import Hit
from bge_qdrant.dependency import models
from bge_qdrant.layout import (
    SETTINGS_KEY,
    QdrantLayout,
    check_collection,
    check_settings_kept,
    create_kwargs,
)
from bge_qdrant.points import HASH_KEY, hits_in_order, point_ids
from bge_qdrant.queries import build_query

__all__ = [
    "Call",
    "Operation",
    "arun",
    "count",
    "delete",
    "drop",
    "ensure",
    "fetch_hashes",
    "get",
    "query",
    "read_settings",
    "run",
    "upsert",
    "write_settings",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """One client call: ``getattr(client, method)(*args, **kwargs)``."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


#: An operation: yields calls, receives their results, returns its answer.
Operation = Generator[Call, Any, T]


def run(client: Any, op: Operation[T]) -> T:
    """Run ``op`` on a synchronous client."""
    result: Any = None
    error: BaseException | None = None
    while True:
        try:
            call = op.send(result) if error is None else op.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        result, error = None, None
        try:
            result = getattr(client, call.method)(*call.args, **call.kwargs)
        except Exception as exc:  # noqa: BLE001 - handed to the operation, which re-raises what it does not handle
            error = exc


async def arun(client: Any, op: Operation[T]) -> T:
    """Run ``op`` on an asynchronous client (each call awaited)."""
    result: Any = None
    error: BaseException | None = None
    while True:
        try:
            call = op.send(result) if error is None else op.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        result, error = None, None
        try:
            result = await getattr(client, call.method)(*call.args, **call.kwargs)
        except Exception as exc:  # noqa: BLE001 - as in run()
            error = exc


def _or_empty(name: str, op: Operation[T], empty: T) -> Operation[T]:
    """``op``, answering ``empty`` when it fails because the collection does not exist (a
    missing collection holds nothing, as on every other store); other errors pass."""
    try:
        return (yield from op)
    except Exception:
        if (yield Call("collection_exists", (name,))):
            raise
        return empty


def ensure(name: str, spec: CollectionSpec, layout: QdrantLayout) -> Operation[None]:
    """Create the collection for ``spec``, or check that the existing one fits it."""
    if spec.colbert_dim:
        layout.max_colbert_vectors(spec.colbert_dim)  # a bad colbert_max_vectors fails here
    if not (yield Call("collection_exists", (name,))):
        try:
            yield Call("create_collection", (name,), create_kwargs(spec, layout))
            return
        except Exception:
            if not (yield Call("collection_exists", (name,))):  # not a lost creation race
                raise
    check_collection(name, (yield Call("get_collection", (name,))), spec, layout)


def drop(name: str) -> Operation[bool]:
    """Delete the collection (its points and the settings in its metadata); False when it
    does not exist."""
    if not (yield Call("collection_exists", (name,))):
        return False
    yield Call("delete_collection", (name,))
    return True


def read_settings(name: str) -> Operation[dict[str, Any] | None]:
    """Settings stored in the collection's ``metadata`` (None when absent)."""
    if not (yield Call("collection_exists", (name,))):
        return None
    info = yield Call("get_collection", (name,))
    value = (info.config.metadata or {}).get(SETTINGS_KEY)
    return dict(value) if isinstance(value, dict) else None


def write_settings(name: str, settings: dict[str, Any]) -> Operation[None]:
    """Store ``settings`` in the collection's ``metadata`` (replacing earlier ones)."""
    if not (yield Call("collection_exists", (name,))):
        raise StoreError(f"Qdrant collection {name!r} does not exist; call ensure_collection() first")
    yield Call("update_collection", (name,), {"metadata": {SETTINGS_KEY: dict(settings)}})
    info = yield Call("get_collection", (name,))
    check_settings_kept(name, settings, (info.config.metadata or {}).get(SETTINGS_KEY))


def upsert(name: str, points: list[Any]) -> Operation[None]:
    """Insert or replace ``points`` (waits until they are applied)."""
    if points:
        yield Call("upsert", (name,), {"points": points, "wait": True})


def fetch_hashes(name: str, ids: Sequence[str]) -> Operation[dict[str, str]]:
    """``{id: content hash}`` of the stored ids."""
    wanted = point_ids(ids)
    if not wanted:
        return {}

    def op() -> Operation[dict[str, str]]:
        found = yield Call("retrieve", (name, list(wanted)), {"with_payload": [HASH_KEY], "with_vectors": False})
        return {wanted[str(p.id)]: str((p.payload or {}).get(HASH_KEY)) for p in found if str(p.id) in wanted}

    return (yield from _or_empty(name, op(), {}))


def get(name: str, ids: Sequence[str]) -> Operation[list[Hit]]:
    """Stored rows in the order of ``ids`` (missing ids left out)."""
    wanted = point_ids(ids)
    if not wanted:
        return []

    def op() -> Operation[list[Hit]]:
        found = yield Call("retrieve", (name, list(wanted)), {"with_payload": True, "with_vectors": False})
        return hits_in_order(ids, found)

    return (yield from _or_empty(name, op(), []))


def delete(name: str, ids: Sequence[str]) -> Operation[None]:
    """Remove points by id (missing ids are ignored)."""
    wanted = point_ids(ids)
    if not wanted:
        return

    def op() -> Operation[None]:
        yield Call("delete", (name,), {"points_selector": models.PointIdsList(points=list(wanted)), "wait": True})

    yield from _or_empty(name, op(), None)


def count(name: str) -> Operation[int]:
    """Exact number of points (0 for a missing collection)."""

    def op() -> Operation[int]:
        return int((yield Call("count", (name,), {"exact": True})).count)

    return (yield from _or_empty(name, op(), 0))


def query(name: str, request: SearchRequest) -> Operation[list[Hit]]:
    """Run a planned search: one ``query_points`` call, or one ``query_batch_points`` for
    several requests (see :mod:`bge_qdrant.queries`)."""
    q = build_query(request)
    if not q.requests:
        return []
    if len(q.requests) == 1:
        r = q.requests[0]
        resp = yield Call(
            "query_points",
            (name,),
            {
                "query": r.query,
                "using": r.using,
                "prefetch": r.prefetch,
                "query_filter": r.filter,
                "limit": r.limit or 10,
                "with_payload": True,
            },
        )
        return q.finish([resp.points])
    batch = yield Call("query_batch_points", (name,), {"requests": q.requests})
    return q.finish([resp.points for resp in batch])
