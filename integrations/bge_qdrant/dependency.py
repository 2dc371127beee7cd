"""The one place that imports ``qdrant-client``: a missing install names the extra to add."""

from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import TYPE_CHECKING, Any

from bge_core.errors import MissingDependencyError

if importlib.util.find_spec("qdrant_client") is None:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("qdrant-client", "qdrant", "the Qdrant adapter")

if TYPE_CHECKING:
    from qdrant_client import AsyncQdrantClient, QdrantClient, models
else:

    class _LazyModels(ModuleType):
        """``qdrant_client.models``, imported on first attribute use: importing qdrant-client
        takes ~0.7 s, and the Edge store (bge_qdrant.filters / layout / points) never needs it."""

        def __getattr__(self, name: str) -> Any:
            from qdrant_client import models as real

            value = getattr(real, name)
            setattr(self, name, value)
            return value

    models = _LazyModels("qdrant_client.models")

    def __getattr__(name: str) -> Any:
        if name in ("AsyncQdrantClient", "QdrantClient"):
            import qdrant_client

            return getattr(qdrant_client, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AsyncQdrantClient", "QdrantClient", "models"]
