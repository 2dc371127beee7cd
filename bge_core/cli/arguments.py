"""Argument types shared by the ``bge`` sub-commands (argparse ``type=`` callables)."""

from __future__ import annotations

import argparse

__all__ = ["non_negative", "positive_int"]


def positive_int(raw: str) -> int:
    """An integer >= 1, else an argparse error (exit code 2)."""
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {raw!r}")
    return value


def non_negative(raw: str) -> float:
    """A number >= 0, else an argparse error (exit code 2)."""
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {raw!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {raw!r}")
    return value
