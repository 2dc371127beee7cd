"""An exact, in-process store in numpy: the reference every store adapter is tested against,
and a zero-dependency store for small corpora and tests.

Search semantics (the ones all adapters implement):
- ``dense``: inner product of normalised vectors; ``sparse``: lexical score.
- ``hybrid``: top ``prefetch_limit`` of dense and of sparse, fused by RRF
  (``1 / (rrf_k + rank)``, rank from 1), DBSF, or a weighted sum of raw scores.
- ``colbert``: the union of those two candidate lists, scored by ColBERT MaxSim.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from bge_core.errors import CollectionMismatchError, TransientStoreError
from bge_core.fusion import dbsf_fusion, fuse
from bge_core.index import CollectionSpec, Record, SearchRequest
from bge_core.scoring import lexical_score, maxsim
from bge_core.types import Hit

# ``dbsf_fusion`` is re-exported for old imports; it lives in bge_core.fusion.
__all__ = ["InMemoryStore", "dbsf_fusion"]


class InMemoryStore:
    """Brute-force exact store (thread-safe). Filters: ``{metadata_key: value}`` dicts."""

    def __init__(self) -> None:
        self._rows: dict[str, Record] = {}
        self._spec: CollectionSpec | None = None
        self._lock = threading.Lock()
        self._settings: dict[str, Any] | None = None

    def read_settings(self) -> dict[str, Any] | None:
        """Recorded settings."""
        return None if self._settings is None else dict(self._settings)

    def write_settings(self, settings: dict[str, Any]) -> None:
        """Record settings."""
        self._settings = dict(settings)

    def ensure(self, spec: CollectionSpec) -> None:
        """Remember the layout; refuse a different one."""
        with self._lock:
            if self._spec is not None and self._spec != spec:
                raise CollectionMismatchError(f"store holds layout {self._spec}, index wants {spec}")
            self._spec = spec

    def drop(self) -> bool:
        """Forget the rows, the layout and the settings; True when there was anything."""
        with self._lock:
            existed = self._spec is not None or bool(self._rows) or self._settings is not None
            self._rows.clear()
            self._spec = None
            self._settings = None
            return existed

    def upsert(self, records: Sequence[Record]) -> None:
        """Insert or replace by id."""
        with self._lock:
            for r in records:
                self._rows[r.id] = r

    def fetch_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        """Hashes of stored ids."""
        with self._lock:
            return {i: self._rows[i].hash for i in ids if i in self._rows}

    def get(self, ids: Sequence[str]) -> list[Hit]:
        """Rows by id."""
        with self._lock:
            return [Hit(i, 0.0, self._rows[i].text, dict(self._rows[i].metadata)) for i in ids if i in self._rows]

    def delete(self, ids: Sequence[str]) -> None:
        """Remove rows."""
        with self._lock:
            for i in ids:
                self._rows.pop(i, None)

    def count(self) -> int:
        """Stored rows."""
        with self._lock:
            return len(self._rows)

    def is_transient(self, exc: BaseException) -> bool:
        """Only an explicit :class:`TransientStoreError` (nothing else fails transiently in memory)."""
        return isinstance(exc, TransientStoreError)

    # -- export (bge_core.export.ExportableStore) -------------------------------------------
    def stored_spec(self) -> CollectionSpec | None:
        """The layout given to :meth:`ensure` (None before)."""
        return self._spec

    def export(self, cursor: str | None, limit: int) -> tuple[list[Record], str | None]:
        """Records in id order from id ``cursor``; returns the next page's first id or None."""
        with self._lock:
            keys = sorted(k for k in self._rows if cursor is None or k >= cursor)
            return [self._rows[k] for k in keys[:limit]], (keys[limit] if len(keys) > limit else None)

    def fetch_records(self, ids: Sequence[str]) -> list[Record]:
        """Stored records by id, with their vectors."""
        with self._lock:
            return [self._rows[i] for i in ids if i in self._rows]

    # -- search -----------------------------------------------------------------------------
    def _candidates(self, flt: Any) -> list[Record]:
        rows = list(self._rows.values())
        if not flt:
            return rows
        if not isinstance(flt, dict):
            raise TypeError("InMemoryStore filters are {metadata_key: value} dicts")

        def same(have: Any, want: Any) -> bool:
            # bools match only bools; numbers match by value (1 == 1.0); strings exactly.
            if isinstance(have, bool) or isinstance(want, bool):
                return isinstance(have, bool) and isinstance(want, bool) and have == want
            if isinstance(want, (int, float)):
                return isinstance(have, (int, float)) and have == want
            return isinstance(have, str) and have == want

        def ok(r: Record) -> bool:
            for key, want in flt.items():
                have = r.metadata.get(key)
                wants = want if isinstance(want, list) else [want]
                if not any(same(have, w) for w in wants):
                    return False
            return True

        return [r for r in rows if ok(r)]

    @staticmethod
    def _rank(items: list[tuple[str, float]], limit: int) -> list[tuple[str, float]]:
        return sorted(items, key=lambda kv: -kv[1])[:limit]

    def dense_ranking(self, rows: list[Record], q: np.ndarray, limit: int) -> list[tuple[str, float]]:
        """Top ``limit`` rows by dense score."""
        return self._rank([(r.id, float(np.dot(q, r.dense))) for r in rows if r.dense is not None], limit)

    def sparse_ranking(self, rows: list[Record], q: Any, limit: int) -> list[tuple[str, float]]:
        """Top ``limit`` rows by lexical score (rows with no overlap are not matches)."""
        scored = []
        for r in rows:
            if r.sparse is None or len(np.intersect1d(q.indices, r.sparse.indices)) == 0:
                continue
            scored.append((r.id, lexical_score(q, r.sparse)))
        return self._rank(scored, limit)

    def query(self, request: SearchRequest) -> list[Hit]:
        """Exact search with the semantics in the module docstring."""
        with self._lock:
            rows = self._candidates(request.filter)
            by_id = {r.id: r for r in rows}
        stage: dict[str, dict[str, float]] = {}
        P = request.prefetch_limit

        def note(name: str, items: list[tuple[str, float]]) -> None:
            for key, s in items:
                stage.setdefault(key, {})[name] = s

        if request.mode == "dense":
            ranked = self.dense_ranking(rows, request.dense, request.limit)  # type: ignore[arg-type]
            note("dense", ranked)
        elif request.mode == "sparse":
            ranked = self.sparse_ranking(rows, request.sparse, request.limit)
            note("sparse", ranked)
        else:
            lists: dict[str, list[tuple[str, float]]] = {}
            if request.dense is not None:
                lists["dense"] = self.dense_ranking(rows, request.dense, P)
                note("dense", lists["dense"])
            if request.sparse is not None:
                lists["sparse"] = self.sparse_ranking(rows, request.sparse, P)
                note("sparse", lists["sparse"])
            if request.mode == "hybrid":
                weights = dict(zip(("dense", "sparse"), request.weights))
                ranked = fuse(request.fusion, lists, rrf_k=request.rrf_k, weights=weights)[: request.limit]
                note("fusion", ranked)
            else:
                keys = dict.fromkeys(k for lst in lists.values() for k, _ in lst)
                assert request.colbert is not None
                ranked = self._rank(
                    [(k, maxsim(request.colbert, c)) for k in keys if (c := by_id[k].colbert) is not None],
                    request.limit,
                )
                note("colbert", ranked)
        return [
            Hit(key, score, by_id[key].text, dict(by_id[key].metadata), dict(stage.get(key, {})))
            for key, score in ranked
        ]

    def query_batch(self, requests: Sequence[SearchRequest]) -> list[list[Hit]]:
        """Run several planned searches (one hit list per request, in order)."""
        return [self.query(r) for r in requests]
