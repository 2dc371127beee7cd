"""The one place that imports ``qdrant-edge-py``: a missing install names the extra to add."""

from __future__ import annotations

from types import ModuleType

from bge_core.errors import MissingDependencyError

__all__ = ["require_edge"]


def require_edge() -> ModuleType:
    """The ``qdrant_edge`` module (imported on first use, so importing bge_qdrant stays cheap)."""
    try:
        import qdrant_edge
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingDependencyError("qdrant-edge-py", "edge", "the Qdrant Edge store") from exc
    return qdrant_edge
