"""Safe Milvus filter expressions.

Dict filters ``{metadata_key: value}`` (list value = any of) never put a user string into
an expression unescaped. They do not compare the raw ``metadata`` JSON (Milvus Lite treats
``true == 1``, servers may compare big ints as doubles); they compare a typed companion field,
``filter_terms``, written at ingest: each top-level scalar metadata value is stored as a
type-tagged string (``"s:<text>"``, ``"b:true"``, ``"n:<canonical number>"``), so equality
is exactly the reference semantics of :class:`bge_core.reference.InMemoryStore` (``1 == 1.0``,
``1 != True``, ``"1" != 1``). Keys and values are written as escaped string literals.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["TERMS_FIELD", "dict_filter_expression", "filter_terms", "id_list_expression", "quote", "term"]

#: JSON field holding the typed filter terms of a row.
TERMS_FIELD = "filter_terms"

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def quote(text: str) -> str:
    """A double-quoted Milvus string literal of ``text`` (backslash, quote, CR, LF, tab escaped)."""
    if not isinstance(text, str):
        raise TypeError(f"expected a str, got {type(text).__name__}")
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in text) + '"'


def term(value: Any) -> str | None:
    """The typed term of a scalar metadata value, or ``None`` for values a filter never matches."""
    if isinstance(value, bool):
        return "b:true" if value else "b:false"
    if isinstance(value, int):
        return f"n:{value}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if value.is_integer():
            return f"n:{int(value)}"
        return f"n:{value!r}"
    if isinstance(value, str):
        return "s:" + value
    return None


def filter_terms(metadata: Mapping[str, Any]) -> dict[str, str]:
    """The ``filter_terms`` JSON of a row: its top-level scalar metadata values, typed."""
    out: dict[str, str] = {}
    for key, value in metadata.items():
        t = term(value)
        if t is not None:
            out[key] = t
    return out


def dict_filter_expression(flt: Mapping[str, Any]) -> str:
    """Expression for a validated ``{metadata_key: value}`` filter (list value = any of)."""
    clauses = []
    for key, want in flt.items():
        path = f"{TERMS_FIELD}[{quote(key)}]"
        values = want if isinstance(want, list) else [want]
        # Bools match only bools, numbers match numbers by value (1 matches 1.0), strings
        # match strings: the typed terms compare exactly as the reference store does.
        terms = list(dict.fromkeys(t for t in map(term, values) if t is not None))
        if not terms:  # e.g. [nan]: validate_filter_dict checks lists' types only; NaN equals nothing
            return "false"
        ors = " or ".join(f"{path} == {quote(t)}" for t in terms)
        clauses.append(f"({ors})")
    return " and ".join(clauses)


def id_list_expression(field: str, ids: Iterable[str]) -> str:
    """``field in ["a", "b"]`` with every id escaped."""
    return f"{field} in [" + ", ".join(quote(i) for i in ids) + "]"
