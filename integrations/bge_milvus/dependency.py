"""Lazy import of the optional ``pymilvus`` package (named extra: ``milvus``)."""

from __future__ import annotations

from types import ModuleType

from bge_core.errors import MissingDependencyError

__all__ = ["require_pymilvus"]


def require_pymilvus() -> ModuleType:
    """Import and return ``pymilvus``; raise :class:`MissingDependencyError` naming the extra."""
    try:
        import pymilvus
    except ImportError as exc:
        raise MissingDependencyError("pymilvus", "milvus", "the Milvus store") from exc
    module: ModuleType = pymilvus
    return module
