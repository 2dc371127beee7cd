"""``{metadata_key: value}`` dicts as Qdrant Edge ``Filter`` objects.

The same semantics as :mod:`bge_qdrant.filters` (server / local mode), built from
``qdrant_edge`` classes: values travel as typed values inside filter objects, never spliced
into a string, so quotes or expression syntax in a value cannot widen a query. Keys become
the payload path ``metadata."<key>"`` (:func:`bge_qdrant.filters.payload_path`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bge_core.index import validate_filter_dict
from bge_qdrant.edge_dependency import require_edge
from bge_qdrant.filters import payload_path

__all__ = ["to_edge_filter"]


def _condition(qe: Any, path: str, value: Any) -> Any:
    # As bge_qdrant.filters: bools only match bools; ints and floats match by numeric value.
    if isinstance(value, (bool, str)):
        return qe.FieldCondition(key=path, match=qe.MatchValue(value))
    if isinstance(value, int) and abs(value) > 2**53:
        return qe.FieldCondition(key=path, match=qe.MatchValue(value))
    return qe.FieldCondition(key=path, range=qe.RangeFloat(gte=float(value), lte=float(value)))


def to_edge_filter(flt: Any) -> Any:
    """A ``qdrant_edge.Filter`` from a ``qdrant_edge.Filter`` (passed through), a metadata
    dict, or ``None``."""
    if flt is None:
        return None
    qe = require_edge()
    if isinstance(flt, qe.Filter):
        return flt
    if not isinstance(flt, Mapping):
        raise TypeError(
            f"filter must be a {{metadata_key: value}} dict or a qdrant_edge.Filter, got {type(flt).__name__}"
        )
    must: list[Any] = []
    for key, value in validate_filter_dict(flt).items():
        path = payload_path(key)
        if isinstance(value, list):
            must.append(qe.Filter(should=[_condition(qe, path, v) for v in value]))
        else:
            must.append(_condition(qe, path, value))
    return qe.Filter(must=must) if must else None
