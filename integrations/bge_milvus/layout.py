"""Milvus collection layout: options, schemas and the checks of an existing collection.

Everything here is pure (it builds schema / index parameters through the pymilvus module
and the client's ``create_schema`` / ``prepare_index_params`` factories, and reads
``describe_collection`` / ``describe_index`` answers); the calls live in
:class:`bge_milvus.store.MilvusStore`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bge_core.errors import CollectionMismatchError
from bge_core.index import CollectionSpec
from bge_milvus.filters import TERMS_FIELD

__all__ = [
    "DENSE_INDEXES",
    "DENSE_METRICS",
    "MAX_TEXT_BYTES",
    "SETTINGS_PROPERTY",
    "DenseSearch",
    "MilvusLayout",
    "check_colbert",
    "check_main",
    "colbert_schema",
    "main_schema",
    "raise_problems",
]

#: Collection property that holds the JSON settings.
SETTINGS_PROPERTY = "bge.settings"
#: Longest text a Milvus VARCHAR holds (bytes).
MAX_TEXT_BYTES = 65535
DENSE_INDEXES = ("AUTOINDEX", "HNSW", "FLAT")
DENSE_METRICS = ("IP", "COSINE")


@dataclass(frozen=True)
class MilvusLayout:
    """Collection names and index options of one Milvus index (validated)."""

    collection_name: str
    colbert_collection: str = ""
    dense_index: str = "AUTOINDEX"
    metric: str = "IP"
    ef: int = 128

    def __post_init__(self) -> None:
        if not isinstance(self.collection_name, str) or not self.collection_name:
            raise ValueError("collection_name must be a non-empty str")
        if self.dense_index.upper() not in DENSE_INDEXES:
            raise ValueError(f"dense_index must be one of {', '.join(DENSE_INDEXES)}, got {self.dense_index!r}")
        if self.metric.upper() not in DENSE_METRICS:
            raise ValueError(f"metric must be IP or COSINE, got {self.metric!r}")
        object.__setattr__(self, "colbert_collection", self.colbert_collection or f"{self.collection_name}_colbert")
        object.__setattr__(self, "dense_index", self.dense_index.upper())
        object.__setattr__(self, "metric", self.metric.upper())
        object.__setattr__(self, "ef", int(self.ef))


@dataclass(frozen=True)
class DenseSearch:
    """How the dense field of a collection is searched (read from its index)."""

    metric: str
    index_type: str
    ef: int

    def params(self, limit: int) -> dict[str, Any]:
        """``search_params`` of a dense search returning ``limit`` hits."""
        params: dict[str, Any] = {"metric_type": self.metric}
        if self.index_type in ("HNSW", "AUTOINDEX"):
            params["params"] = {"ef": max(self.ef, limit)}
        return params


def main_schema(pm: Any, client: Any, spec: CollectionSpec, layout: MilvusLayout) -> tuple[Any, Any]:
    """``(schema, index_params)`` of the main collection for ``spec``."""
    DataType = pm.DataType
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT_BYTES)
    schema.add_field("metadata", DataType.JSON)
    schema.add_field(TERMS_FIELD, DataType.JSON)
    schema.add_field("hash", DataType.VARCHAR, max_length=64)
    schema.add_field("colbert_tokens", DataType.INT32)
    index = client.prepare_index_params()
    if spec.dense_dim is not None:
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=int(spec.dense_dim))
        params = {"M": 16, "efConstruction": 200} if layout.dense_index == "HNSW" else {}
        index.add_index("dense", index_type=layout.dense_index, metric_type=layout.metric, params=params)
    if spec.sparse:
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        index.add_index(
            "sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="IP", params={"drop_ratio_build": 0.0}
        )
    return schema, index


def colbert_schema(pm: Any, client: Any, dim: int) -> tuple[Any, Any]:
    """``(schema, index_params)`` of the ColBERT token companion collection."""
    DataType = pm.DataType
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=80)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=64)
    schema.add_field("pos", DataType.INT32)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=int(dim))
    index = client.prepare_index_params()
    index.add_index("vector", index_type="FLAT", metric_type="IP")
    return schema, index


def _fields(info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in info.get("fields", [])}


def _base_problems(pm: Any, fields: dict[str, dict[str, Any]]) -> list[str]:
    DataType = pm.DataType
    problems = [
        f"field {name!r} ({ftype.name}) is missing"
        for name, ftype in (
            ("id", DataType.VARCHAR),
            ("text", DataType.VARCHAR),
            ("metadata", DataType.JSON),
            (TERMS_FIELD, DataType.JSON),
            ("hash", DataType.VARCHAR),
            ("colbert_tokens", DataType.INT32),
        )
        if name not in fields or fields[name].get("type") != ftype
    ]
    if "id" in fields and not fields["id"].get("is_primary"):
        problems.append("field 'id' is not the primary key")
    return problems


def _dense_problems(
    pm: Any, field: dict[str, Any] | None, index: dict[str, Any] | None, spec: CollectionSpec, layout: MilvusLayout
) -> tuple[list[str], DenseSearch]:
    found = DenseSearch(layout.metric, layout.dense_index, layout.ef)
    if spec.dense_dim is None:
        return (["it has a dense vector but the index stores none (open it with dense=True)"] if field else []), found
    if field is None or field.get("type") != pm.DataType.FLOAT_VECTOR:
        return ["it has no 'dense' FLOAT_VECTOR field"], found
    problems = []
    dim = int(field.get("params", {}).get("dim", -1))
    if dim != spec.dense_dim:
        problems.append(
            f"its dense dim is {dim} but the encoder gives {spec.dense_dim} (use the model it was built with)"
        )
    metric = str((index or {}).get("metric_type", "")).upper()
    if metric not in DENSE_METRICS:
        problems.append(f"its dense index metric is {metric or 'missing'!r}; need IP or COSINE")
        return problems, found
    index_type = str((index or {}).get("index_type", layout.dense_index)).upper()
    return problems, DenseSearch(metric, index_type, layout.ef)


def _sparse_problems(
    pm: Any, field: dict[str, Any] | None, index: dict[str, Any] | None, spec: CollectionSpec
) -> list[str]:
    if not spec.sparse:
        return ["it has a sparse vector but the index stores none (open it with sparse=True)"] if field else []
    if field is None or field.get("type") != pm.DataType.SPARSE_FLOAT_VECTOR:
        return ["it has no 'sparse' SPARSE_FLOAT_VECTOR field (open it with sparse=False)"]
    if str((index or {}).get("metric_type", "")).upper() != "IP":
        return ["its sparse index is not SPARSE_INVERTED_INDEX with metric IP"]
    return []


def check_main(
    pm: Any,
    info: dict[str, Any],
    indexes: dict[str, dict[str, Any] | None],
    spec: CollectionSpec,
    layout: MilvusLayout,
) -> tuple[list[str], DenseSearch]:
    """Problems of an existing main collection (``describe_collection`` answer ``info``,
    ``describe_index`` answers by field in ``indexes``) for ``spec``, and how to search its
    dense field."""
    fields = _fields(info)
    problems = _base_problems(pm, fields)
    dense_problems, dense = _dense_problems(pm, fields.get("dense"), indexes.get("dense"), spec, layout)
    problems += dense_problems
    problems += _sparse_problems(pm, fields.get("sparse"), indexes.get("sparse"), spec)
    return problems, dense


def check_colbert(info: dict[str, Any] | None, spec: CollectionSpec, layout: MilvusLayout) -> list[str]:
    """Problems of the ColBERT companion (``info`` None: it does not exist) for ``spec``.

    A missing companion is not a problem when ``spec`` wants one: it is created (an earlier
    run may have stopped between creating the two collections)."""
    name = layout.colbert_collection
    if info is None:
        return []
    if spec.colbert_dim is None:
        return [f"it has ColBERT token vectors in {name!r} but the index stores none (open it with colbert=True)"]
    fields = _fields(info)
    vec = fields.get("vector")
    if vec is None or not {"doc_id", "pos"} <= set(fields):
        return [f"{name!r} is not a ColBERT token collection"]
    dim = int(vec.get("params", {}).get("dim", -1))
    if dim != spec.colbert_dim:
        return [f"its ColBERT dim is {dim} but the encoder gives {spec.colbert_dim}"]
    return []


def raise_problems(name: str, problems: list[str]) -> None:
    """Raise :class:`CollectionMismatchError` listing ``problems`` (none: return)."""
    if problems:
        raise CollectionMismatchError(
            f"Milvus collection {name!r} does not fit this index: "
            + "; ".join(problems)
            + ". Use another collection name, or drop the collection to rebuild it."
        )
