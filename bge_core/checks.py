"""Checks of values before they reach a tokenizer or a store, with messages that say where and why.

Store-independent rules, so a row that one store would refuse is refused the same way for all:

- text (and every string in metadata) must be valid Unicode: an unpaired surrogate
  (``"\\ud800"``, which JSON's ``\\uXXXX`` escapes can produce) cannot be encoded as UTF-8,
  so tokenizers and stores fail on it;
- floats must be finite (JSON has no NaN or Infinity; Qdrant and Milvus refuse them);
- integers must fit in a signed 64-bit integer (Milvus stores JSON integers as int64;
  store larger numbers as strings).

Nothing here imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "check_max_length",
    "check_unicode",
    "unpaired_surrogate",
    "value_problem",
]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def unpaired_surrogate(text: str) -> int | None:
    """Position of the first unpaired surrogate in ``text`` (None when it is valid Unicode)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return int(exc.start)
    return None


def check_unicode(texts: Iterable[str], what: str = "texts") -> None:
    """Raise ``ValueError`` naming the first text that holds an unpaired surrogate.

    Encoders call this before tokenizing (with `encoder_base.check_texts`), so ``encode(["\\ud800abc"])`` fails with a message
    that names the text and the fix instead of a ``TypeError`` from inside the tokenizer.
    """
    for i, text in enumerate(texts):
        if isinstance(text, str):
            pos = unpaired_surrogate(text)
            if pos is not None:
                raise ValueError(
                    f"{what}[{i}] holds an unpaired surrogate {text[pos]!r} at position {pos}, which is not "
                    "valid Unicode; remove it or decode the source with errors='replace'"
                )


def value_problem(value: Any, path: str = "") -> str | None:
    """What is wrong with a metadata value (recursively), or None when every store keeps it."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        pos = unpaired_surrogate(value)
        if pos is not None:
            return f"{path or 'value'} holds an unpaired surrogate at position {pos} (not valid Unicode)"
        return None
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            return f"{path or 'value'} is an integer outside the 64-bit range (store it as a string)"
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return f"{path or 'value'} is {value} (NaN and Infinity are not JSON; use null or a string)"
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and unpaired_surrogate(key) is not None:
                return f"field name {sub!r} holds an unpaired surrogate (not valid Unicode)"
            problem = value_problem(item, sub)
            if problem:
                return problem
        return None
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            problem = value_problem(item, f"{path}[{i}]")
            if problem:
                return problem
        return None
    return None


def check_max_length(max_length: object, model_max: int | None = None) -> int:
    """Validate an encoder's ``max_length``: an int of at least 2 (room for one token between
    the special tokens) and at most ``model_max`` when given. Returns it; raises ``ValueError``
    (``TypeError`` for a non-int)."""
    if isinstance(max_length, bool) or not isinstance(max_length, int):
        raise TypeError(f"max_length must be an int, got {type(max_length).__name__}")
    if max_length < 3:
        raise ValueError(
            f"max_length={max_length} leaves no room for text (a text needs its special tokens and at least "
            "one token); use 8 or more, or leave it unset for the model's maximum"
        )
    if model_max is not None and max_length > model_max:
        raise ValueError(f"max_length={max_length} is more than the model takes ({model_max}); use at most that")
    return max_length
