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
Writes go token rows first, then stale token rows beyond the new length are deleted by
primary key, then the main row (the "commit": its ``colbert_tokens`` bounds which token rows
are read, so an interrupted write can never mix old tokens into a score).

Rows whose sparse vector is empty are written with a placeholder sparse vector holding one
weight at token id ``2**32 - 2``: no query can reach it (query token ids are int32), so such
rows never appear in sparse results, while dense search finds them as usual.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from bge_core.errors import CollectionMismatchError, StoreError, TransientStoreError
from bge_core.index import CollectionSpec, Record, SearchRequest
from bge_core.reference import dbsf_fusion
from bge_core.scoring import maxsim, rrf_fusion, weighted_sum_fusion
from bge_core.types import FloatArray, Hit, SparseVector
from bge_milvus.dependency import require_pymilvus
from bge_milvus.filters import (
    TERMS_FIELD,
    dict_filter_expression,
    filter_terms,
    id_list_expression,
)

__all__ = ["MAX_TOPK", "PLACEHOLDER_TOKEN", "SETTINGS_PROPERTY", "MilvusStore"]

logger = logging.getLogger(__name__)

#: Sparse dimension of the placeholder written for rows with no lexical weights.
PLACEHOLDER_TOKEN = 2**32 - 2
_PLACEHOLDER_WEIGHT = 1e-6
#: Largest ``limit`` Milvus accepts for a search or query.
MAX_TOPK = 16384
#: Collection property that holds the JSON settings.
SETTINGS_PROPERTY = "bge.settings"
#: Longest text a Milvus VARCHAR holds (bytes).
MAX_TEXT_BYTES = 65535

_DENSE_INDEXES = ("AUTOINDEX", "HNSW", "FLAT")
_DENSE_METRICS = ("IP", "COSINE")
_MAIN_OUTPUT = ["text", "metadata", "colbert_tokens"]
_TOKEN_ROWS_PER_WRITE = 2048
_IDS_PER_CALL = 1000
_TRANSIENT_CODES = {1, 2, 3, 4, 8, 12}  # not ready, unavailable, memory/rate limits (merr)
_TRANSIENT_WORDS = ("unavailable", "deadline exceeded", "timed out", "timeout", "rate limit", "connection reset", "not ready", "too many requests")


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
        if not isinstance(collection_name, str) or not collection_name:
            raise ValueError("collection_name must be a non-empty str")
        if dense_index.upper() not in _DENSE_INDEXES:
            raise ValueError(f"dense_index must be one of {', '.join(_DENSE_INDEXES)}, got {dense_index!r}")
        if metric.upper() not in _DENSE_METRICS:
            raise ValueError(f"metric must be IP or COSINE, got {metric!r}")
        self.client = client
        self.collection_name = collection_name
        self.colbert_collection = colbert_collection or f"{collection_name}_colbert"
        self.dense_index = dense_index.upper()
        self.metric = metric.upper()
        self.ef = int(ef)
        self.timeout = timeout
        self._owns_client = owns_client
        self._label = label
        self._has_dense = True
        self._has_sparse = True
        self._has_colbert = True
        self._dense_metric = self.metric
        self._dense_index_type = self.dense_index
        self._closed = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        where = f", {self._label}" if self._label else ""
        return f"MilvusStore({self.collection_name!r}{where})"

    # -- helpers ---------------------------------------------------------------------------
    def _kw(self) -> dict[str, Any]:
        return {} if self.timeout is None else {"timeout": self.timeout}

    def _describe_index(self, collection: str, field: str) -> dict[str, Any] | None:
        for name in self.client.list_indexes(collection, field_name=field, **self._kw()) or []:
            info = self.client.describe_index(collection, name, **self._kw())
            if info:
                return dict(info)
        return None

    # -- collection ------------------------------------------------------------------------
    def ensure(self, spec: CollectionSpec) -> None:
        """Create the collections, or validate existing ones (raise CollectionMismatchError)."""
        if spec.dense_dim is None and not spec.sparse:
            raise ValueError("a Milvus collection needs a dense or a sparse vector field")
        with self._lock:
            if self.client.has_collection(self.collection_name, **self._kw()):
                self._validate(spec)
            else:
                self._create_main(spec)
            self._has_dense = spec.dense_dim is not None
            self._has_sparse = spec.sparse
            self._has_colbert = spec.colbert_dim is not None
            if spec.colbert_dim is not None and not self.client.has_collection(self.colbert_collection, **self._kw()):
                self._create_colbert(spec.colbert_dim)
            for name in [self.collection_name] + ([self.colbert_collection] if self._has_colbert else []):
                self.client.load_collection(name, **self._kw())

    def _create_main(self, spec: CollectionSpec) -> None:
        pm = require_pymilvus()
        DataType = pm.DataType
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT_BYTES)
        schema.add_field("metadata", DataType.JSON)
        schema.add_field(TERMS_FIELD, DataType.JSON)
        schema.add_field("hash", DataType.VARCHAR, max_length=64)
        schema.add_field("colbert_tokens", DataType.INT32)
        index = self.client.prepare_index_params()
        if spec.dense_dim is not None:
            schema.add_field("dense", DataType.FLOAT_VECTOR, dim=int(spec.dense_dim))
            params = {"M": 16, "efConstruction": 200} if self.dense_index == "HNSW" else {}
            index.add_index("dense", index_type=self.dense_index, metric_type=self.metric, params=params)
        if spec.sparse:
            schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
            index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="IP", params={"drop_ratio_build": 0.0})
        self.client.create_collection(
            self.collection_name, schema=schema, index_params=index, consistency_level="Strong", **self._kw()
        )
        logger.info("created Milvus collection %r", self.collection_name)

    def _create_colbert(self, dim: int) -> None:
        pm = require_pymilvus()
        DataType = pm.DataType
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=80)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=64)
        schema.add_field("pos", DataType.INT32)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=int(dim))
        index = self.client.prepare_index_params()
        index.add_index("vector", index_type="FLAT", metric_type="IP")
        self.client.create_collection(
            self.colbert_collection, schema=schema, index_params=index, consistency_level="Strong", **self._kw()
        )
        logger.info("created Milvus collection %r for ColBERT token vectors", self.colbert_collection)

    def _validate(self, spec: CollectionSpec) -> None:
        pm = require_pymilvus()
        DataType = pm.DataType
        name = self.collection_name
        info = self.client.describe_collection(name, **self._kw())
        fields = {f["name"]: f for f in info.get("fields", [])}
        problems = []
        for fname, ftype in (("id", DataType.VARCHAR), ("text", DataType.VARCHAR), ("metadata", DataType.JSON),
                             (TERMS_FIELD, DataType.JSON), ("hash", DataType.VARCHAR), ("colbert_tokens", DataType.INT32)):
            if fname not in fields or fields[fname].get("type") != ftype:
                problems.append(f"field {fname!r} ({ftype.name}) is missing")
        if "id" in fields and not fields["id"].get("is_primary"):
            problems.append("field 'id' is not the primary key")
        dense = fields.get("dense")
        if spec.dense_dim is None and dense is not None:
            problems.append("it has a dense vector but the index stores none (open it with dense=True)")
        if spec.dense_dim is not None:
            if dense is None or dense.get("type") != DataType.FLOAT_VECTOR:
                problems.append("it has no 'dense' FLOAT_VECTOR field")
            else:
                dim = int(dense.get("params", {}).get("dim", -1))
                if dim != spec.dense_dim:
                    problems.append(f"its dense dim is {dim} but the encoder gives {spec.dense_dim} (use the model it was built with)")
                idx = self._describe_index(name, "dense")
                metric = str((idx or {}).get("metric_type", "")).upper()
                if metric not in _DENSE_METRICS:
                    problems.append(f"its dense index metric is {metric or 'missing'!r}; need IP or COSINE")
                else:
                    self._dense_metric = metric
                    self._dense_index_type = str((idx or {}).get("index_type", self.dense_index)).upper()
        sparse = fields.get("sparse")
        if spec.sparse and (sparse is None or sparse.get("type") != DataType.SPARSE_FLOAT_VECTOR):
            problems.append("it has no 'sparse' SPARSE_FLOAT_VECTOR field (open it with sparse=False)")
        if not spec.sparse and sparse is not None:
            problems.append("it has a sparse vector but the index stores none (open it with sparse=True)")
        if spec.sparse and sparse is not None:
            idx = self._describe_index(name, "sparse")
            if str((idx or {}).get("metric_type", "")).upper() != "IP":
                problems.append("its sparse index is not SPARSE_INVERTED_INDEX with metric IP")
        has_colbert = self.client.has_collection(self.colbert_collection, **self._kw())
        if spec.colbert_dim is None and has_colbert:
            problems.append(f"it has ColBERT token vectors in {self.colbert_collection!r} but the index stores none (open it with colbert=True)")
        if spec.colbert_dim is not None:
            if not has_colbert:
                problems.append(f"its ColBERT collection {self.colbert_collection!r} is missing (it was built with colbert=False)")
            else:
                cfields = {f["name"]: f for f in self.client.describe_collection(self.colbert_collection, **self._kw()).get("fields", [])}
                vec = cfields.get("vector")
                cdim = int(vec.get("params", {}).get("dim", -1)) if vec else -1
                if vec is None or not {"doc_id", "pos"} <= set(cfields):
                    problems.append(f"{self.colbert_collection!r} is not a ColBERT token collection")
                elif cdim != spec.colbert_dim:
                    problems.append(f"its ColBERT dim is {cdim} but the encoder gives {spec.colbert_dim}")
        if problems:
            raise CollectionMismatchError(
                f"Milvus collection {name!r} does not fit this index: " + "; ".join(problems)
                + ". Use another collection name, or drop the collection to rebuild it."
            )

    # -- writes ----------------------------------------------------------------------------
    def upsert(self, records: Sequence[Record]) -> None:
        """Insert or replace ``records`` by id (token rows first, then the main rows)."""
        if not records:
            return
        rows = [self._main_row(r) for r in records]  # validates before anything is written
        if self._has_colbert:
            self._write_tokens(records)
        for start in range(0, len(rows), 256):
            self.client.upsert(self.collection_name, rows[start : start + 256], **self._kw())

    def _main_row(self, r: Record) -> dict[str, Any]:
        nbytes = len(r.text.encode("utf-8", "surrogatepass"))
        if nbytes > MAX_TEXT_BYTES:
            raise ValueError(
                f"text of id {r.id} is {nbytes} bytes; a Milvus VARCHAR holds at most {MAX_TEXT_BYTES}: "
                "split the document into smaller chunks"
            )
        row: dict[str, Any] = {
            "id": r.id,
            "text": r.text,
            "metadata": r.metadata,
            TERMS_FIELD: filter_terms(r.metadata),
            "hash": r.hash,
            "colbert_tokens": -1 if r.colbert is None else int(np.asarray(r.colbert).shape[0]),
        }
        if self._has_dense:
            if r.dense is None:
                raise ValueError(f"record {r.id} has no dense vector but the collection needs one")
            row["dense"] = np.asarray(r.dense, dtype=np.float32).tolist()
        if self._has_sparse:
            row["sparse"] = _sparse_dict(r.sparse)
        return row

    def _write_tokens(self, records: Sequence[Record]) -> None:
        old = self._token_counts([r.id for r in records])
        stale: list[str] = []
        for r in records:
            n = 0 if r.colbert is None else int(np.asarray(r.colbert).shape[0])
            stale.extend(f"{r.id}:{p}" for p in range(n, old.get(r.id, 0)))

        def token_rows() -> Iterator[dict[str, Any]]:
            # Rows are built one write at a time, each vector a float32 row view (pymilvus
            # packs numpy rows directly): Python lists of floats cost ~10x the memory.
            for r in records:
                if r.colbert is not None:
                    mat = np.asarray(r.colbert, dtype=np.float32)
                    for p in range(mat.shape[0]):
                        yield {"id": f"{r.id}:{p}", "doc_id": r.id, "pos": p, "vector": mat[p]}

        rows = token_rows()
        while batch := list(itertools.islice(rows, _TOKEN_ROWS_PER_WRITE)):
            self.client.upsert(self.colbert_collection, batch, **self._kw())
        for start in range(0, len(stale), _IDS_PER_CALL):
            self.client.delete(self.colbert_collection, ids=stale[start : start + _IDS_PER_CALL], **self._kw())

    def _token_counts(self, ids: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for chunk in _chunks(list(dict.fromkeys(ids)), _IDS_PER_CALL):
            res = self.client.query(
                self.collection_name, filter=id_list_expression("id", chunk), output_fields=["id", "colbert_tokens"],
                limit=len(chunk), **self._kw(),
            )
            out.update({row["id"]: int(row["colbert_tokens"]) for row in res})
        return out

    def fetch_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        """``{id: hash}`` of stored ids (one query per 1000 ids)."""
        out: dict[str, str] = {}
        for chunk in _chunks(list(dict.fromkeys(ids)), _IDS_PER_CALL):
            res = self.client.query(
                self.collection_name, filter=id_list_expression("id", chunk), output_fields=["id", "hash"],
                limit=len(chunk), **self._kw(),
            )
            out.update({row["id"]: row["hash"] for row in res})
        return out

    def get(self, ids: Sequence[str]) -> list[Hit]:
        """Stored rows by id, in the order of ``ids`` (missing ids left out)."""
        found: dict[str, Hit] = {}
        if not self.client.has_collection(self.collection_name, **self._kw()):
            return []
        for chunk in _chunks(list(dict.fromkeys(ids)), _IDS_PER_CALL):
            res = self.client.query(
                self.collection_name, filter=id_list_expression("id", chunk), output_fields=["id", "text", "metadata"],
                limit=len(chunk), **self._kw(),
            )
            for row in res:
                found[row["id"]] = Hit(row["id"], 0.0, row["text"], dict(row.get("metadata") or {}))
        return [found[i] for i in ids if i in found]

    def delete(self, ids: Sequence[str]) -> None:
        """Remove rows and their ColBERT token rows (missing ids are ignored)."""
        unique = list(dict.fromkeys(ids))
        if not unique or not self.client.has_collection(self.collection_name, **self._kw()):
            return
        has_tokens = self.client.has_collection(self.colbert_collection, **self._kw())
        for chunk in _chunks(unique, _IDS_PER_CALL):
            self.client.delete(self.collection_name, ids=chunk, **self._kw())
            if has_tokens:
                self.client.delete(self.colbert_collection, filter=id_list_expression("doc_id", chunk), **self._kw())

    def count(self) -> int:
        """Number of rows in the main collection (exact, strong consistency)."""
        if not self.client.has_collection(self.collection_name, **self._kw()):
            return 0
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
        """Timeouts, resets, UNAVAILABLE / rate limits are transient; validation errors are not."""
        if isinstance(exc, TransientStoreError):
            return True
        if isinstance(exc, (ValueError, TypeError, StoreError)):
            return False
        if isinstance(exc, (TimeoutError, ConnectionError)):
            return True
        try:
            import grpc

            if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
                return exc.code() in (
                    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED,
                )
        except ImportError:  # pragma: no cover
            pass
        try:
            pm = require_pymilvus()
        except ImportError:  # pragma: no cover
            return False
        from pymilvus.exceptions import MilvusUnavailableException

        if isinstance(exc, MilvusUnavailableException):
            return True
        if isinstance(exc, pm.MilvusException):
            message = str(getattr(exc, "message", exc)).lower()
            if getattr(exc, "code", None) in _TRANSIENT_CODES and any(w in message for w in _TRANSIENT_WORDS):
                return True
            return any(w in message for w in _TRANSIENT_WORDS[:4])
        return False

    # -- settings --------------------------------------------------------------------------
    def read_settings(self) -> dict[str, Any] | None:
        """Settings recorded in the collection property ``bge.settings`` (None if absent)."""
        if not self.client.has_collection(self.collection_name, **self._kw()):
            return None
        props = self.client.describe_collection(self.collection_name, **self._kw()).get("properties") or {}
        raw = props.get(SETTINGS_PROPERTY)
        if not raw:
            return None
        value = json.loads(raw)
        return value if isinstance(value, dict) else None

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
    def _filter(self, flt: Any) -> str:
        if flt is None:
            return ""
        if isinstance(flt, str):
            return flt
        if isinstance(flt, dict):
            return dict_filter_expression(flt) if flt else ""
        raise TypeError(
            f"Milvus filters are expression strings or {{metadata_key: value}} dicts, got {type(flt).__name__}"
        )

    def _dense_request(self, vector: FloatArray, limit: int) -> tuple[list[list[float]], dict[str, Any]]:
        params: dict[str, Any] = {"metric_type": self._dense_metric}
        if self._dense_index_type in ("HNSW", "AUTOINDEX"):
            params["params"] = {"ef": max(self.ef, limit)}
        return [np.asarray(vector, dtype=np.float32).tolist()], params

    @staticmethod
    def _sparse_params() -> dict[str, Any]:
        return {"metric_type": "IP", "params": {"drop_ratio_search": 0.0}}

    def _search(self, field: str, vector: Any, limit: int, expr: str) -> list[dict[str, Any]]:
        if field == "dense":
            data, params = self._dense_request(vector, limit)
        else:
            if vector is None or len(vector) == 0:
                return []
            data, params = [_sparse_dict(vector)], self._sparse_params()  # type: ignore[list-item]
        res = self.client.search(
            self.collection_name, data=data, anns_field=field, filter=expr, limit=limit,
            output_fields=_MAIN_OUTPUT, search_params=params, **self._kw(),
        )
        hits = [_flatten(h) for h in res[0]]
        if field == "sparse":  # placeholder rows and non-overlapping rows are not matches
            hits = [h for h in hits if h["distance"] > 0]
        return hits

    def query(self, request: SearchRequest) -> list[Hit]:
        """Run a planned search (dense, sparse, hybrid by RRF / DBSF / weighted, colbert)."""
        P, limit = request.prefetch_limit, request.limit
        if max(P, limit) > MAX_TOPK:
            raise ValueError(f"Milvus returns at most {MAX_TOPK} hits per search; lower k / prefetch_limit")
        expr = self._filter(request.filter)
        try:
            return self._query(request, expr)
        except Exception as exc:
            if _is_missing_collection(exc):
                raise StoreError(
                    f"Milvus collection {self.collection_name!r} does not exist; add texts first "
                    "(or call ensure_collection())"
                ) from exc
            raise

    def _query(self, request: SearchRequest, expr: str) -> list[Hit]:
        P, limit = request.prefetch_limit, request.limit
        if request.mode == "dense":
            return [_hit(h, {"dense": h["distance"]}) for h in self._search("dense", request.dense, limit, expr)]
        if request.mode == "sparse":
            return [_hit(h, {"sparse": h["distance"]}) for h in self._search("sparse", request.sparse, limit, expr)]
        native = request.mode == "hybrid" and request.fusion == "rrf" and 1 <= request.rrf_k < MAX_TOPK
        if native and request.dense is not None and request.sparse is not None and len(request.sparse) > 0:
            return self._native_rrf(request, expr)
        dense = self._search("dense", request.dense, P, expr) if request.dense is not None else []
        sparse = self._search("sparse", request.sparse, P, expr) if request.sparse is not None else []
        rows: dict[str, dict[str, Any]] = {}
        stage: dict[str, dict[str, float]] = {}
        for name, hits in (("dense", dense), ("sparse", sparse)):
            for h in hits:
                rows.setdefault(h["id"], h)
                stage.setdefault(h["id"], {})[name] = h["distance"]
        lists = [[(h["id"], h["distance"]) for h in hits] for hits, want in ((dense, request.dense), (sparse, request.sparse)) if want is not None]
        if request.mode == "colbert":
            assert request.colbert is not None
            ranked = self._maxsim_rank(request.colbert, rows, limit)
            name = "colbert"
        else:
            name = "fusion"
            if request.fusion == "rrf":
                ranked = rrf_fusion([[k for k, _ in lst] for lst in lists], k=request.rrf_k)[:limit]
            elif request.fusion == "dbsf":
                ranked = dbsf_fusion(lists)[:limit]
            else:
                ranked = weighted_sum_fusion(stage, dict(zip(("dense", "sparse"), request.weights)))[:limit]
        return [_hit(rows[k], {**stage.get(k, {}), name: s}, s) for k, s in ranked]

    def _native_rrf(self, request: SearchRequest, expr: str) -> list[Hit]:
        """``hybrid_search`` with ``RRFRanker(rrf_k)``: Milvus scores ``1 / (k + rank)`` with rank
        from 1 (checked numerically in the tests), which is ``rrf_fusion(..., k=rrf_k)``."""
        pm = require_pymilvus()
        P = request.prefetch_limit
        data, dparams = self._dense_request(request.dense, P)  # type: ignore[arg-type]
        reqs = [
            pm.AnnSearchRequest(data, "dense", dparams, P, expr=expr or None),
            pm.AnnSearchRequest([_sparse_dict(request.sparse)], "sparse", self._sparse_params(), P, expr=expr or None),
        ]
        res = self.client.hybrid_search(
            self.collection_name, reqs, pm.RRFRanker(request.rrf_k), limit=request.limit,
            output_fields=_MAIN_OUTPUT, **self._kw(),
        )
        return [_hit(h, {"fusion": h["distance"]}) for h in (_flatten(x) for x in res[0])]

    def _maxsim_rank(self, q: FloatArray, rows: dict[str, dict[str, Any]], limit: int) -> list[tuple[str, float]]:
        counts = {k: int(r.get("colbert_tokens", -1) if r.get("colbert_tokens") is not None else -1) for k, r in rows.items()}
        tokens = self._fetch_tokens({k: n for k, n in counts.items() if n > 0})
        dim = int(np.asarray(q).shape[1])
        scored = []
        for key, n in counts.items():
            if n < 0:
                continue  # stored without ColBERT vectors: not a ColBERT candidate (as the reference)
            mat = tokens.get(key, np.zeros((0, dim), dtype=np.float32))
            scored.append((key, maxsim(q, mat)))
        return sorted(scored, key=lambda kv: -kv[1])[:limit]

    def _fetch_tokens(self, counts: dict[str, int]) -> dict[str, FloatArray]:
        """Token matrices of documents, in groups of at most ``MAX_TOPK`` token rows per query."""
        out: dict[str, FloatArray] = {}
        for group in _token_groups(counts):
            total = sum(counts[k] for k in group)
            res = self.client.query(
                self.colbert_collection, filter=id_list_expression("doc_id", group),
                output_fields=["doc_id", "pos", "vector"], limit=min(MAX_TOPK, total), **self._kw(),
            )
            parts: dict[str, dict[int, Any]] = {}
            for row in res:
                pos = int(row["pos"])
                if pos < counts[row["doc_id"]]:
                    parts.setdefault(row["doc_id"], {})[pos] = row["vector"]
            for key, by_pos in parts.items():
                out[key] = np.asarray([by_pos[p] for p in sorted(by_pos)], dtype=np.float32)
        return out


def _is_missing_collection(exc: BaseException) -> bool:
    code = getattr(exc, "code", None)
    return code == 100 or (code is not None and "does not exist" in str(getattr(exc, "message", "")))


def _token_groups(counts: dict[str, int]) -> Iterator[list[str]]:
    group: list[str] = []
    total = 0
    for key, n in counts.items():
        if group and (total + n > MAX_TOPK or len(group) >= _IDS_PER_CALL):
            yield group
            group, total = [], 0
        group.append(key)
        total += n
    if group:
        yield group


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _sparse_dict(sv: SparseVector | None) -> dict[int, float]:
    if sv is None or len(sv) == 0:
        return {PLACEHOLDER_TOKEN: _PLACEHOLDER_WEIGHT}
    return dict(zip(sv.indices.tolist(), sv.values.tolist()))


def _flatten(hit: Any) -> dict[str, Any]:
    """A search hit as ``{id, distance, text, metadata, colbert_tokens}``."""
    entity = hit.get("entity") or {}
    return {
        "id": hit.get("id", entity.get("id")),
        "distance": float(hit.get("distance", 0.0)),
        "text": entity.get("text", ""),
        "metadata": entity.get("metadata") or {},
        "colbert_tokens": entity.get("colbert_tokens"),
    }


def _hit(h: dict[str, Any], scores: dict[str, float], score: float | None = None) -> Hit:
    return Hit(h["id"], h["distance"] if score is None else float(score), h["text"], dict(h["metadata"]), scores)
