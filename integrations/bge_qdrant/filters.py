"""``{metadata_key: value}`` dicts as Qdrant ``Filter`` objects.

Values travel as typed JSON inside the filter object, never spliced into an expression
string, so quotes, backslashes or expression syntax in a value cannot change the query.
Keys become the payload path ``metadata."<key>"`` (quoted, so dots and brackets in a key are
literal); a key holding a double quote cannot be expressed as a Qdrant path and is refused.
One difference from ``InMemoryStore`` is Qdrant's: a metadata value that is a list matches
when any of its elements equals the filter value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bge_core.index import validate_filter_dict
from bge_qdrant.dependency import models
from bge_qdrant.points import METADATA_KEY

__all__ = ["payload_path", "to_filter"]


def payload_path(key: str) -> str:
    """The Qdrant payload path of metadata ``key``."""
    if '"' in key:
        raise ValueError(
            f"filter key {key!r} contains a double quote, which a Qdrant payload path cannot hold; "
            "rename the metadata key or pass a qdrant_client.models.Filter"
        )
    return f'{METADATA_KEY}."{key}"'


def _condition(path: str, value: Any) -> models.FieldCondition | models.Filter:
    # Same equality as the reference store: bools only match bools, and ints and floats
    # match by numeric value (a stored 1.0 matches 1, as in Python).
    if isinstance(value, (bool, str)):
        return models.FieldCondition(key=path, match=models.MatchValue(value=value))
    if isinstance(value, int) and abs(value) > 2**53:
        # beyond float precision a range would also match neighbours: exact int match only
        return models.FieldCondition(key=path, match=models.MatchValue(value=value))
    return models.FieldCondition(key=path, range=models.Range(gte=value, lte=value))


def to_filter(flt: Any) -> models.Filter | None:
    """A Qdrant filter from a ``Filter`` (passed through), a metadata dict, or ``None``."""
    if flt is None:
        return None
    if isinstance(flt, models.Filter):
        return flt
    if not isinstance(flt, Mapping):
        raise TypeError(
            f"filter must be a {{metadata_key: value}} dict or a qdrant_client.models.Filter, got {type(flt).__name__}"
        )
    must: list[Any] = []
    for key, value in validate_filter_dict(flt).items():
        path = payload_path(key)
        if isinstance(value, list):
            must.append(models.Filter(should=[_condition(path, v) for v in value]))
        else:
            must.append(_condition(path, value))
    return models.Filter(must=must) if must else None
