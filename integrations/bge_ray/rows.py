"""Rows of a Ray dataset as the index sees them, and encoded records as Arrow columns.

Input rows have a ``text`` column, an optional ``id`` column (str or int) and any other
columns, which become metadata (``null`` values are left out: Arrow cannot tell a missing key
from a null). The reserved column ``_bge_metadata`` holds a JSON object merged into the
metadata; ``bge_ray`` uses it for chunks read from SOURCE files, whose metadata differ per
file. Ids and content hashes are computed exactly as :class:`bge_core.index.VectorIndex`
does (:func:`bge_core.index.make_id`, :func:`bge_core.index.content_hash`).

Encoded records travel between processes as ``large_binary`` columns (raw float32 / int32
bytes), which every Arrow and Ray version passes through unchanged; the worker builds each
column from one contiguous buffer and the driver reads the vectors as zero-copy numpy views.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bge_core.errors import MissingDependencyError
from bge_core.index import Record, content_hash, make_id
from bge_core.types import SparseVector

try:
    import pyarrow as pa
except ImportError as exc:  # pragma: no cover - pyarrow comes with ray[data]
    raise MissingDependencyError("ray[data]", "ray", "distributed ingest on Ray") from exc

__all__ = [
    "METADATA_COLUMN",
    "OUTPUT_SCHEMA",
    "PreparedRow",
    "RowProblem",
    "check_schema",
    "decode_records",
    "prepare_rows",
    "status_table",
]

#: Reserved input column: a JSON object merged into each row's metadata.
METADATA_COLUMN = "_bge_metadata"
_RESERVED = ("text", "id", METADATA_COLUMN)

#: Columns of what the encoding workers return.
OUTPUT_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("status", pa.string()),  # "encoded" (driver writes it), "written", "skipped", "failed"
        ("error", pa.string()),
        ("text", pa.string()),
        ("metadata", pa.string()),
        ("hash", pa.string()),
        ("dense", pa.large_binary()),
        ("sparse_indices", pa.large_binary()),
        ("sparse_values", pa.large_binary()),
        ("colbert", pa.large_binary()),
        ("colbert_rows", pa.int32()),
    ]
)


@dataclass(frozen=True)
class PreparedRow:
    """A row ready to encode: deterministic id, text, metadata and content hash."""

    id: str
    label: str
    text: str
    metadata: dict[str, Any]
    hash: str


@dataclass(frozen=True)
class RowProblem:
    """A row that cannot be indexed, and why (``label`` names the row: its id, or its text)."""

    label: str
    id: str | None
    message: str


def _json_ok(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _label(user_id: Any, text: Any, row: dict[str, Any]) -> str:
    if user_id is not None:
        return f"id={user_id!r}"
    if isinstance(text, str):
        return f"text={text[:60]!r}"
    return f"row {json.dumps(row, default=str, ensure_ascii=False)[:120]}"


def _json_type(t: pa.DataType) -> bool:
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_boolean(t) or pa.types.is_null(t):
        return True
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return True
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _json_type(t.value_type)
    if pa.types.is_struct(t):
        return all(_json_type(t.field(i).type) for i in range(t.num_fields))
    return False


def check_schema(schema: pa.Schema | Any) -> None:
    """Refuse a dataset without a string ``text`` column, or with a column that cannot be
    metadata (bytes, timestamps, tensors), before any work starts."""
    names = list(schema.names)
    types = list(schema.types)
    if "text" not in names:
        raise ValueError(
            f"the dataset has no 'text' column (columns: {', '.join(names) or 'none'}); "
            "rename the column holding the texts: ds.rename_columns({'body': 'text'})"
        )
    by_name = dict(zip(names, types))
    text_type = by_name["text"]
    if not isinstance(text_type, pa.DataType) or not (
        pa.types.is_string(text_type) or pa.types.is_large_string(text_type)
    ):
        raise TypeError(
            f"the dataset's 'text' column holds {text_type}, not strings; convert it first, "
            "e.g. ds.map(lambda r: {**r, 'text': str(r['text'])})"
        )
    id_type = by_name.get("id")
    if id_type is not None and not (
        isinstance(id_type, pa.DataType)
        and (pa.types.is_string(id_type) or pa.types.is_large_string(id_type) or pa.types.is_integer(id_type))
    ):
        raise TypeError(f"the dataset's 'id' column holds {id_type}; ids must be strings or integers")
    for name, t in by_name.items():
        if name in _RESERVED:
            continue
        if not isinstance(t, pa.DataType) or not _json_type(t):
            raise TypeError(
                f"column {name!r} holds {t}, which cannot be stored as metadata (JSON); "
                "convert it to strings or numbers, or drop it: ds.drop_columns([...])"
            )


def prepare_rows(table: pa.Table) -> tuple[list[PreparedRow], list[RowProblem]]:
    """Ids, metadata and hashes of a batch (as ``VectorIndex`` computes them); bad rows apart."""
    meta_columns = [c for c in table.column_names if c not in _RESERVED]
    texts = table.column("text").to_pylist()
    ids = table.column("id").to_pylist() if "id" in table.column_names else [None] * table.num_rows
    extra = table.column(METADATA_COLUMN).to_pylist() if METADATA_COLUMN in table.column_names else None
    meta_rows = table.select(meta_columns).to_pylist() if meta_columns else [{}] * table.num_rows
    good: list[PreparedRow] = []
    bad: list[RowProblem] = []
    for i, text in enumerate(texts):
        user_id = ids[i]
        meta = {k: v for k, v in meta_rows[i].items() if v is not None}
        if extra is not None and extra[i]:
            meta.update(json.loads(extra[i]))
        label = _label(user_id, text, meta)
        if not isinstance(text, str):
            bad.append(RowProblem(label, None, f"'text' is {type(text).__name__}, not str"))
            continue
        rid = make_id(user_id, text)
        floats = [k for k, v in meta.items() if isinstance(v, float) and not math.isfinite(v)]
        if floats or not _json_ok(meta):
            bad.append(RowProblem(label, rid, f"metadata {floats or ''} is not JSON-serialisable (NaN or infinity?)"))
            continue
        good.append(PreparedRow(rid, label, text, meta, content_hash(text, meta)))
    return good, bad


def _binary_column(arrays: Sequence[np.ndarray | None], dtype: type) -> pa.Array:
    """One ``large_binary`` column holding each array's raw bytes (``None``: null), built from
    one contiguous buffer (a single copy, no per-row ``bytes`` objects)."""
    n = len(arrays)
    valid = np.fromiter((a is not None for a in arrays), dtype=bool, count=n)
    parts: list[np.ndarray] = [np.ascontiguousarray(a, dtype=dtype).reshape(-1) for a in arrays if a is not None]
    item = np.dtype(dtype).itemsize
    lengths = np.zeros(n, dtype=np.int64)
    lengths[valid] = [p.size * item for p in parts]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
    nulls = int(n - valid.sum())
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    return pa.Array.from_buffers(
        pa.large_binary(), n, [bitmap, pa.py_buffer(offsets), pa.py_buffer(data)], null_count=nulls
    )


def status_table(rows: Sequence[tuple[str | None, str, str | None]], records: Sequence[Record] = ()) -> pa.Table:
    """The workers' output: ``(id, status, error)`` rows (id ``None``: a row whose id cannot
    be computed) plus full encoded ``records``."""
    none: list[Any] = [None] * len(rows)
    cols: dict[str, Any] = {
        "id": [r[0] for r in rows] + [r.id for r in records],
        "status": [r[1] for r in rows] + ["encoded"] * len(records),
        "error": [r[2] for r in rows] + [None] * len(records),
        "text": none + [r.text for r in records],
        "metadata": none + [json.dumps(r.metadata, ensure_ascii=False) for r in records],
        "hash": none + [r.hash for r in records],
    }
    skipped: list[np.ndarray | None] = [None] * len(rows)
    sparse = [r.sparse for r in records]
    cols["dense"] = _binary_column(skipped + [r.dense for r in records], np.float32)
    cols["sparse_indices"] = _binary_column(skipped + [None if s is None else s.indices for s in sparse], np.int32)
    cols["sparse_values"] = _binary_column(skipped + [None if s is None else s.values for s in sparse], np.float32)
    cols["colbert"] = _binary_column(skipped + [r.colbert for r in records], np.float32)
    cols["colbert_rows"] = none + [None if r.colbert is None else int(r.colbert.shape[0]) for r in records]
    return pa.Table.from_pydict(cols, schema=OUTPUT_SCHEMA)


def _views(column: pa.ChunkedArray, dtype: type) -> list[np.ndarray | None]:
    """Zero-copy numpy views of a binary column's values (``None`` for nulls)."""
    out: list[np.ndarray | None] = []
    for chunk in column.chunks:
        validity, offsets_buf, data_buf = chunk.buffers()
        offsets = np.frombuffer(offsets_buf, dtype=np.int64)[chunk.offset : chunk.offset + len(chunk) + 1]
        data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
        valid = chunk.is_valid().to_numpy(zero_copy_only=False) if validity is not None else None
        for i in range(len(chunk)):
            if valid is not None and not valid[i]:
                out.append(None)
            else:
                out.append(data[offsets[i] : offsets[i + 1]].view(dtype))
    return out


def decode_records(table: pa.Table, *, colbert_dim: int) -> list[Record]:
    """The ``encoded`` rows of a worker output table, as :class:`Record` objects (vectors are
    read-only views of the table's buffers)."""
    keep = [i for i, s in enumerate(table.column("status").to_pylist()) if s == "encoded"]
    if not keep:
        return []
    table = table.take(pa.array(keep, type=pa.int64())) if len(keep) < table.num_rows else table
    ids = table.column("id").to_pylist()
    texts = table.column("text").to_pylist()
    metas = table.column("metadata").to_pylist()
    hashes = table.column("hash").to_pylist()
    rows = table.column("colbert_rows").to_pylist()
    dense = _views(table.column("dense"), np.float32)
    sp_i = _views(table.column("sparse_indices"), np.int32)
    sp_v = _views(table.column("sparse_values"), np.float32)
    colbert = _views(table.column("colbert"), np.float32)
    out: list[Record] = []
    for i, rid in enumerate(ids):
        si, sv, cb = sp_i[i], sp_v[i], colbert[i]
        out.append(
            Record(
                rid,
                texts[i],
                json.loads(metas[i]),
                hashes[i],
                dense[i],
                None if si is None or sv is None else SparseVector(si, sv),
                None if cb is None else cb.reshape(int(rows[i]), colbert_dim),
            )
        )
    return out
