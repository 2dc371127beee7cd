"""Batch search on Qdrant: many planned searches in ONE ``query_batch_points`` call.

``query_batch`` / ``aquery_batch`` take the client, so the store classes can call them from a
``query_batch`` method; :class:`BatchQdrantStore` is ``QdrantStore`` with that method (what
:class:`bge_qdrant.QdrantIndex` builds), until ``QdrantStore`` has it itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bge_core.index import SearchRequest
from bge_core.types import Hit
from bge_qdrant.queries import QdrantQuery, build_query
from bge_qdrant.store import QdrantStore

__all__ = ["BatchQdrantStore", "aquery_batch", "query_batch"]


def _split(queries: Sequence[QdrantQuery], responses: Sequence[Sequence[Any]]) -> list[list[Hit]]:
    out: list[list[Hit]] = []
    start = 0
    for q in queries:
        n = len(q.requests)
        out.append(q.finish(responses[start : start + n]) if n else [])
        start += n
    return out


def query_batch(client: Any, collection_name: str, requests: Sequence[SearchRequest]) -> list[list[Hit]]:
    """Run ``requests`` in one ``query_batch_points`` call (a ``weighted`` hybrid sends two
    requests of its own); one hit list per request, in order, equal to ``QdrantStore.query``."""
    queries = [build_query(r) for r in requests]
    flat = [req for q in queries for req in q.requests]
    responses = [resp.points for resp in client.query_batch_points(collection_name, requests=flat)] if flat else []
    return _split(queries, responses)


async def aquery_batch(client: Any, collection_name: str, requests: Sequence[SearchRequest]) -> list[list[Hit]]:
    """:func:`query_batch` over an ``AsyncQdrantClient``."""
    queries = [build_query(r) for r in requests]
    flat = [req for q in queries for req in q.requests]
    responses = (
        [resp.points for resp in await client.query_batch_points(collection_name, requests=flat)] if flat else []
    )
    return _split(queries, responses)


class BatchQdrantStore(QdrantStore):
    """``QdrantStore`` with :meth:`query_batch` (the batch protocol of ``VectorIndex.search_batch``)."""

    def query_batch(self, requests: Sequence[SearchRequest]) -> list[list[Hit]]:
        """Run planned searches in one round trip; one hit list per request."""
        with self._call():
            return query_batch(self.client, self.collection_name, requests)
