"""The one place that imports ``qdrant-client``: a missing install names the extra to add."""

from __future__ import annotations

from bge_core.errors import MissingDependencyError

try:
    from qdrant_client import AsyncQdrantClient, QdrantClient, models
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("qdrant-client", "qdrant", "the Qdrant adapter") from exc

__all__ = ["AsyncQdrantClient", "QdrantClient", "models"]
