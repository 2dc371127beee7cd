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
from bge_qdrant.points import METADATA_KEY

__all__ = ["BOOL_MIRROR_KEY", "bool_mirror", "to_edge_filter"]


#: Payload field mirroring bool metadata as "true" / "false": qdrant-edge-py 0.9 reads a Python
#: bool given to ``MatchValue`` / ``MatchAny`` as an integer, so a bool filter would never match a
#: stored bool. Filters on bools match this mirror instead (written by the Edge store).
BOOL_MIRROR_KEY = "metadata_bool"


def bool_mirror(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The mirror of ``metadata``'s bool values (and of the bools inside list values)."""
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, list) and any(isinstance(v, bool) for v in value):
            out[key] = ["true" if v else "false" for v in value if isinstance(v, bool)]
    return out


def _edge_path(key: str, root: str = METADATA_KEY) -> str:
    if "\\" in key:
        raise ValueError(
            f"filter key {key!r} contains a backslash, which a Qdrant Edge payload path cannot hold; "
            "rename the metadata key or pass a qdrant_edge.Filter"
        )
    return payload_path(key).replace(METADATA_KEY, root, 1)


def _condition(qe: Any, key: str, value: Any) -> Any:
    # As bge_qdrant.filters: bools only match bools; ints and floats match by numeric value.
    if isinstance(value, bool):
        return qe.FieldCondition(
            key=_edge_path(key, BOOL_MIRROR_KEY), match=qe.MatchValue("true" if value else "false")
        )
    path = _edge_path(key)
    if isinstance(value, str):
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
        if isinstance(value, list):
            must.append(qe.Filter(should=[_condition(qe, key, v) for v in value]))
        else:
            must.append(_condition(qe, key, value))
    return qe.Filter(must=must) if must else None
