"""The Milvus :class:`bge_core.index.Store`: Milvus Lite (``./x.db``) or a Milvus server.

Layout
------
Main collection ``<name>``: ``id`` VARCHAR primary key (the index's UUIDv5 ids), ``text``
VARCHAR, ``metadata`` JSON (as given at ingest), ``filter_terms`` JSON (typed copies of the
scalar metadata values, see :mod:`bge_milvus.filters`), ``hash`` VARCHAR (content hash, so
re-runs skip unchanged rows), ``colbert_tokens`` INT32 (number of ColBERT token rows, -1 for
none), ``dense`` FLOAT_VECTOR (AUTOINDEX or HNSW, metric IP or COSINE) and ``sparse``
SPARSE_FLOAT_VECTOR (SPARSE_INVERTED_INDEX, IP, drop ratio 0).

ColBERT: Milvus Lite has no multi-vector type and no VARCHAR/ARRAY large enough for a token
matrix, so token vectors live in a companion collection ``<name>_colbert`` with one row per
token: ``id`` = ``"<doc id>:<position>"``, ``doc_id``, ``pos`` INT32 and ``vector``
FLOAT_VECTOR (FLAT index, IP; it is never searched, only fetched by ``doc_id``). Float32 is
kept so MaxSim equals the reference exactly. Measured on Milvus Lite 3.2.2 (dim 1024, 20,000 tokens): 8.2 KB
per token on disk = 4.1 KB of data (vector + ~45 bytes of keys) + 4.1 KB for the persisted
FLAT index, i.e. about 1.6 MB for a 200-token BGE-M3 document (see README.md).
Creation makes the ColBERT companion first, then the main collection; a run stopped between
the two (or an index left with a main collection and no companion by an older version) is
completed by the next ``ensure`` when the settings record lists ``colbert`` or the main
collection is still empty. Searches, gets and queries load the collections they read once
per store (a Milvus Lite database opened by another process starts "released").

Writes go token rows first, then stale token rows beyond the new length are deleted by
primary key, then the main row (the "commit": its ``colbert_tokens`` bounds which token rows
are read, so an interrupted write can never mix old tokens into a score).

The translation lives in small modules: :mod:`bge_milvus.layout` (options, schemas, checks),
:mod:`bge_milvus.rows` (rows and hits; the empty-sparse placeholder), :mod:`bge_milvus.queries`
(filters, fusion, MaxSim), :mod:`bge_milvus.faults` (error classification); this class only
makes the client calls.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from bge_core.errors import StoreError
from bge_core.index import CollectionSpec, Record, SearchRequest
from bge_core.types import FloatArray, Hit
from bge_milvus.dependency import require_pymilvus
from bge_milvus.faults import is_missing_collection, is_transient_error
from bge_milvus.filters import id_list_expression
from bge_milvus.layout import (
    MAX_TEXT_BYTES,
    SETTINGS_PROPERTY,
    DenseSearch,
    MilvusLayout,
    check_colbert,
    check_main,
    colbert_schema,
    main_schema,
    raise_problems,
)
from bge_milvus.queries import (
    IDS_PER_CALL,
    MAX_TOPK,
    SPARSE_PARAMS,
    check_limits,
    filter_expression,
    fuse,
    token_counts,
    token_groups,
    tokens_by_doc,
    uses_native_rrf,
)
from bge_milvus.rows import (
    MAIN_OUTPUT,
    PLACEHOLDER_TOKEN,
    chunks,
    flatten,
    main_row,
    sparse_dict,
    stale_token_ids,
    to_hit,
    token_rows,
)

__all__ = ["MAX_TEXT_BYTES", "MAX_TOPK", "PLACEHOLDER_TOKEN", "SETTINGS_PROPERTY", "MilvusStore"]

logger = logging.getLogger(__name__)

_TOKEN_ROWS_PER_WRITE = 2048
_ROWS_PER_WRITE = 256


class MilvusStore:
    """Milvus implementation of the :class:`bge_core.index.Store` protocol.

    Args:
        client: a ``pymilvus.MilvusClient`` (Milvus Lite path ending in ``.db`` or a server URI).
        collection_name: the main collection; ColBERT tokens go to ``colbert_collection``
            (default ``<collection_name>_colbert``).
        dense_index: ``AUTOINDEX`` (default; HNSW when available, brute force otherwise on
            Milvus Lite), ``HNSW`` or ``FLAT`` (exact).
        metric: ``IP`` (default; equals cosine for the normalised BGE vectors) or ``COSINE``.
        ef: HNSW search breadth (``max(ef, limit)`` is used).
        timeout: seconds per Milvus call (``None``: the client's default).
        owns_client: close ``client`` in :meth:`close` (set by ``open_index``).
        label: how the store names its client in ``repr`` (never holds a token).
    """

    def __init__(
        self,
        client: Any,
        collection_name: str,
        *,
        colbert_collection: str | None = None,
        dense_index: str = "AUTOINDEX",
        metric: str = "IP",
        ef: int = 128,
        timeout: float | None = None,
        owns_client: bool = False,
        label: str | None = None,
    ) -> None:
        self.layout = MilvusLayout(collection_name, colbert_collection or "", dense_index, metric, ef)
        self.client = client
        self.timeout = timeout
        self._owns_client = owns_client
        self._label = label
        # What ensure() found; until then every field is assumed present (a store opened only
        # to read learns its layout from the collection on first use).
        self._spec: CollectionSpec | None = None
        self._dense = DenseSearch(self.layout.metric, self.layout.dense_index, self.layout.ef)
        self._loaded = False
        self._closed = False
        self._lock = threading.Lock()

    # Read-only views of the layout (public names kept from the single-class version).
    @property
    def collection_name(self) -> str:
        """The main collection."""
        return self.layout.collection_name

    @property
    def colbert_collection(self) -> str:
        """The ColBERT token companion collection."""
        return self.layout.colbert_collection

    @property
    def dense_index(self) -> str:
        """Dense index type used when creating the collection."""
        return self.layout.dense_index

    @property
    def metric(self) -> str:
        """Dense metric used when creating the collection."""
        return self.layout.metric

    @property
    def ef(self) -> int:
        """HNSW search breadth."""
        return self.layout.ef

    def __repr__(self) -> str:
        where = f", {self._label}" if self._label else ""
        return f"MilvusStore({self.collection_name!r}{where})"

    # -- helpers ---------------------------------------------------------------------------
    def _kw(self) -> dict[str, Any]:
        return {} if self.timeout is None else {"timeout": self.timeout}

    def _has(self, name: str) -> bool:
        return bool(self.client.has_collection(name, **self._kw()))

    def _describe_index(self, collection: str, field: str) -> dict[str, Any] | None:
        for name in self.client.list_indexes(collection, field_name=field, **self._kw()) or []:
            info = self.client.describe_index(collection, name, **self._kw())
            if info:
                return dict(info)
        return None

    def _load(self) -> bool:
        """Load the collections once per store (a database written by another process opens
        with its collections released); False when the main collection does not exist."""
        if self._loaded:
            return True
        with self._lock:
            if not self._loaded:
                if not self._has(self.collection_name):
                    return False
                self.client.load_collection(self.collection_name, **self._kw())
                if self._has(self.colbert_collection):
                    self.client.load_collection(self.colbert_collection, **self._kw())
                self._loaded = True
        return True

    # -- collection ------------------------------------------------------------------------
    def ensure(self, spec: CollectionSpec) -> None:
        """Create the collections, or validate existing ones (raise CollectionMismatchError).

        Resumable: the ColBERT companion is created before the main collection, and a
        missing companion of an existing main collection is created when the settings record
        lists ``colbert`` or the main collection is empty (a run stopped between the two)."""
        if spec.dense_dim is None and not spec.sparse:
            raise ValueError("a Milvus collection needs a dense or a sparse vector field")
        pm = require_pymilvus()
        name, cname = self.collection_name, self.colbert_collection
        with self._lock:
            has_main = self._has(name)
            colbert_info = self.client.describe_collection(cname, **self._kw()) if self._has(cname) else None
            if has_main:
                info = self.client.describe_collection(name, **self._kw())
                indexes = {f: self._describe_index(name, f) for f in ("dense", "sparse")}
                problems, dense = check_main(pm, info, indexes, spec, self.layout)
                problems += check_colbert(colbert_info, spec, self.layout)
                if spec.colbert_dim is not None and colbert_info is None and not self._colbert_resumable(info):
                    problems.append(f"its ColBERT collection {cname!r} is missing (it was built with colbert=False)")
                raise_problems(name, problems)
                self._dense = dense
            elif spec.colbert_dim is not None and colbert_info is not None:
                raise_problems(name, check_colbert(colbert_info, spec, self.layout))
            if spec.colbert_dim is not None and colbert_info is None:
                schema, index = colbert_schema(pm, self.client, spec.colbert_dim)
                self.client.create_collection(
                    cname, schema=schema, index_params=index, consistency_level="Strong", **self._kw()
                )
                logger.info("created Milvus collection %r for ColBERT token vectors", cname)
            if not has_main:
                schema, index = main_schema(pm, self.client, spec, self.layout)
                self.client.create_collection(
                    name, schema=schema, index_params=index, consistency_level="Strong", **self._kw()
                )
                logger.info("created Milvus collection %r", name)
            self._spec = spec
            for n in [name] + ([cname] if spec.colbert_dim is not None else []):
                self.client.load_collection(n, **self._kw())
            self._loaded = True

    def _colbert_resumable(self, info: dict[str, Any]) -> bool:
        """Whether a missing ColBERT companion was meant to exist: the settings record lists
        ``colbert``, or nothing was written yet (no settings, no rows)."""
        settings = _settings_of(info)
        if settings is not None:
            outputs = settings.get("outputs")
            return isinstance(outputs, list) and "colbert" in outputs
        self.client.load_collection(self.collection_name, **self._kw())
        return self._count() == 0

    def drop(self) -> bool:
        """Drop the main collection (rows and settings property) and its ColBERT companion,
        whichever exist (a run stopped between creating the two leaves one); False when
        neither does."""
        with self._lock:
            dropped = False
            for n in (self.colbert_collection, self.collection_name):
                if self._has(n):
                    self.client.drop_collection(n, **self._kw())
                    logger.info("dropped Milvus collection %r", n)
                    dropped = True
            self._spec = None
            self._loaded = False
            return dropped

    # -- writes ----------------------------------------------------------------------------
    def upsert(self, records: Sequence[Record]) -> None:
        """Insert or replace ``records`` by id (token rows first, then the main rows)."""
        if not records:
            return
        spec = self._spec
        dense = spec is None or spec.dense_dim is not None
        sparse = spec is None or spec.sparse
        rows = [main_row(r, dense=dense, sparse=sparse) for r in records]  # validates before anything is written
        if spec is None or spec.colbert_dim is not None:
            self._write_tokens(records)
        for start in range(0, len(rows), _ROWS_PER_WRITE):
            self.client.upsert(self.collection_name, rows[start : start + _ROWS_PER_WRITE], **self._kw())

    def _write_tokens(self, records: Sequence[Record]) -> None:
        stale = stale_token_ids(records, self._token_counts([r.id for r in records]))
        rows = token_rows(records)
        while batch := list(itertools.islice(rows, _TOKEN_ROWS_PER_WRITE)):
            self.client.upsert(self.colbert_collection, batch, **self._kw())
        for chunk in chunks(stale, IDS_PER_CALL):
            self.client.delete(self.colbert_collection, ids=chunk, **self._kw())

    def _query_ids(self, ids: Sequence[str], fields: list[str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for chunk in chunks(list(dict.fromkeys(ids)), IDS_PER_CALL):
            out += self.client.query(
                self.collection_name,
                filter=id_list_expression("id", chunk),
                output_fields=fields,
                limit=len(chunk),
                **self._kw(),
            )
        return out

    def _token_counts(self, ids: Sequence[str]) -> dict[str, int]:
        return {row["id"]: int(row["colbert_tokens"]) for row in self._query_ids(ids, ["id", "colbert_tokens"])}

    def fetch_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        """``{id: hash}`` of stored ids (one query per 1000 ids)."""
        if not self._load():
            return {}
        return {row["id"]: row["hash"] for row in self._query_ids(ids, ["id", "hash"])}

    def get(self, ids: Sequence[str]) -> list[Hit]:
        """Stored rows by id, in the order of ``ids`` (missing ids left out)."""
        if not self._load():
            return []
        found = {
            row["id"]: Hit(row["id"], 0.0, row["text"], dict(row.get("metadata") or {}))
            for row in self._query_ids(ids, ["id", "text", "metadata"])
        }
        return [found[i] for i in ids if i in found]

    def delete(self, ids: Sequence[str]) -> None:
        """Remove rows and their ColBERT token rows (missing ids are ignored)."""
        unique = list(dict.fromkeys(ids))
        if not unique or not self._load():
            return
        has_tokens = self._has(self.colbert_collection)
        for chunk in chunks(unique, IDS_PER_CALL):
            self.client.delete(self.collection_name, ids=chunk, **self._kw())
            if has_tokens:
                self.client.delete(self.colbert_collection, filter=id_list_expression("doc_id", chunk), **self._kw())

    def count(self) -> int:
        """Number of rows in the main collection (exact, strong consistency)."""
        return self._count() if self._load() else 0

    def _count(self) -> int:
        res = self.client.query(self.collection_name, filter="", output_fields=["count(*)"], **self._kw())
        return int(res[0]["count(*)"])

    def scan(self, keys: Sequence[str], batch_size: int = 1000) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(id, {key: metadata value})`` of every row whose metadata has ``keys[0]`` (query iterator)."""
        if not keys or not self.client.has_collection(self.collection_name, **self._kw()):
            return
        quiet = logging.getLogger("pymilvus.orm.iterator")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # Milvus Lite returns no MVCC timestamp: a harmless warning per scan
        try:
            it = self.client.query_iterator(
                self.collection_name, batch_size=batch_size, filter="", output_fields=["id", "metadata"], **self._kw()
            )
        finally:
            quiet.setLevel(level)
        try:
            while batch := it.next():
                for row in batch:
                    meta = row.get("metadata") or {}
                    if keys[0] in meta:
                        yield str(row["id"]), {k: meta.get(k) for k in keys}
        finally:
            it.close()

    def is_transient(self, exc: BaseException) -> bool:
        """Timeouts, resets, UNAVAILABLE / rate limits: see :mod:`bge_milvus.faults`."""
        return is_transient_error(exc)

    # -- settings --------------------------------------------------------------------------
    def read_settings(self) -> dict[str, Any] | None:
        """Settings recorded in the collection property ``bge.settings`` (None if absent)."""
        if not self._has(self.collection_name):
            return None
        return _settings_of(self.client.describe_collection(self.collection_name, **self._kw()))

    def write_settings(self, settings: dict[str, Any]) -> None:
        """Record ``settings`` (JSON) in the collection property ``bge.settings``."""
        raw = json.dumps(settings, sort_keys=True)
        self.client.alter_collection_properties(self.collection_name, properties={SETTINGS_PROPERTY: raw}, **self._kw())

    def close(self) -> None:
        """Close the client if this store created it (idempotent)."""
        if self._owns_client and not self._closed:
            self._closed = True
            self.client.close()

    # -- search ----------------------------------------------------------------------------
    def query(self, request: SearchRequest) -> list[Hit]:
        """Run a planned search (dense, sparse, hybrid by RRF / DBSF / weighted, colbert)."""
        request = check_limits(request)
        expr = filter_expression(request.filter)
        try:
            if not self._load():
                raise StoreError(
                    f"Milvus collection {self.collection_name!r} does not exist; add texts first "
                    "(or call ensure_collection())"
                )
            return self._query(request, expr)
        except Exception as exc:
            if is_missing_collection(exc):
                raise StoreError(
                    f"Milvus collection {self.collection_name!r} does not exist; add texts first "
                    "(or call ensure_collection())"
                ) from exc
            raise

    def _query(self, request: SearchRequest, expr: str) -> list[Hit]:
        P, limit = request.prefetch_limit, request.limit
        if request.mode == "dense":
            return [to_hit(h, {"dense": h["distance"]}) for h in self._search("dense", request.dense, limit, expr)]
        if request.mode == "sparse":
            return [to_hit(h, {"sparse": h["distance"]}) for h in self._search("sparse", request.sparse, limit, expr)]
        if uses_native_rrf(request):
            return self._native_rrf(request, expr)
        dense = self._search("dense", request.dense, P, expr) if request.dense is not None else []
        sparse = self._search("sparse", request.sparse, P, expr) if request.sparse is not None else []
        tokens = None
        if request.mode == "colbert":
            counts = token_counts({h["id"]: h for h in dense + sparse})
            tokens = self._fetch_tokens({k: n for k, n in counts.items() if n > 0})
        return fuse(request, dense, sparse, tokens)

    def _search(self, field: str, vector: Any, limit: int, expr: str) -> list[dict[str, Any]]:
        if field == "dense":
            data: list[Any] = [_float_list(vector)]
            params = self._dense.params(limit)
        else:
            if vector is None or len(vector) == 0:
                return []
            data, params = [sparse_dict(vector)], SPARSE_PARAMS
        res = self.client.search(
            self.collection_name,
            data=data,
            anns_field=field,
            filter=expr,
            limit=limit,
            output_fields=MAIN_OUTPUT,
            search_params=params,
            **self._kw(),
        )
        hits = [flatten(h) for h in res[0]]
        if field == "sparse":  # placeholder rows and non-overlapping rows are not matches
            hits = [h for h in hits if h["distance"] > 0]
        return hits

    def _native_rrf(self, request: SearchRequest, expr: str) -> list[Hit]:
        """``hybrid_search`` with ``RRFRanker(rrf_k)``: Milvus scores ``1 / (k + rank)`` with rank
        from 1 (checked numerically in the tests), which is ``rrf_fusion(..., k=rrf_k)``."""
        pm = require_pymilvus()
        P = request.prefetch_limit
        reqs = [
            pm.AnnSearchRequest([_float_list(request.dense)], "dense", self._dense.params(P), P, expr=expr or None),
            pm.AnnSearchRequest([sparse_dict(request.sparse)], "sparse", SPARSE_PARAMS, P, expr=expr or None),
        ]
        res = self.client.hybrid_search(
            self.collection_name,
            reqs,
            pm.RRFRanker(request.rrf_k),
            limit=request.limit,
            output_fields=MAIN_OUTPUT,
            **self._kw(),
        )
        return [to_hit(h, {"fusion": h["distance"]}) for h in (flatten(x) for x in res[0])]

    def _fetch_tokens(self, counts: dict[str, int]) -> dict[str, FloatArray]:
        """Token matrices of documents, in groups of at most ``MAX_TOPK`` token rows per query."""
        out: dict[str, FloatArray] = {}
        for group in token_groups(counts):
            res = self.client.query(
                self.colbert_collection,
                filter=id_list_expression("doc_id", group),
                output_fields=["doc_id", "pos", "vector"],
                limit=min(MAX_TOPK, sum(counts[k] for k in group)),
                **self._kw(),
            )
            out.update(tokens_by_doc(list(res), counts))
        return out


def _float_list(vector: Any) -> list[float]:
    return list(np.asarray(vector, dtype=np.float32).tolist())


def _settings_of(info: dict[str, Any]) -> dict[str, Any] | None:
    raw = (info.get("properties") or {}).get(SETTINGS_PROPERTY)
    if not raw:
        return None
    value = json.loads(raw)
    return value if isinstance(value, dict) else None
