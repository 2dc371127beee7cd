"""Resolve ``--store`` URIs to a vector-store adapter through the ``bge.stores`` entry points.

``qdrant:./bge-index`` and ``qdrant+http://host:6333`` select the ``qdrant`` entry point;
``milvus:./bge.db`` and ``milvus+http://host:19530`` the ``milvus`` one. The scheme is the text
before the first ``:`` or ``+``. Each entry point is an ``open_index(uri, *, encoder,
collection, dense, sparse, colbert, show_progress)`` function returning a ``VectorIndex``.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Callable, Sequence
from typing import Any

from bge_core.errors import BGEError, MissingDependencyError, StoreError
from bge_core.index import VectorIndex
from bge_core.types import M3Output

__all__ = ["DEFAULT_STORE", "ENTRY_POINT_GROUP", "StoreUriError", "available_schemes", "open_store", "store_scheme"]

#: Where ``bge`` keeps its index unless ``--store`` says otherwise.
DEFAULT_STORE = "qdrant:./bge-index"
#: The entry-point group adapters register their ``open_index`` in.
ENTRY_POINT_GROUP = "bge.stores"

_EXAMPLES = "qdrant:./bge-index, qdrant+http://localhost:6333, milvus:./bge.db or milvus+http://localhost:19530"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9_.-]*)[:+]")

Opener = Callable[..., VectorIndex]


class StoreUriError(StoreError):
    """A ``--store`` URI is malformed or names no installed store adapter."""


def store_scheme(uri: str) -> str:
    """The adapter name of ``uri`` (lower case), e.g. ``qdrant`` for ``qdrant+http://h:6333``."""
    match = _SCHEME.match(uri.strip())
    if match is None or len(match.group(1)) < 2:
        raise StoreUriError(f"--store {uri!r} names no store; use for example {_EXAMPLES}")
    return match.group(1).lower()


def _entry_points() -> Sequence[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def available_schemes() -> list[str]:
    """Names of the registered store adapters."""
    return sorted({ep.name for ep in _entry_points()})


def _load_opener(scheme: str, uri: str) -> Opener:
    for ep in _entry_points():
        if ep.name == scheme:
            try:
                opener: Opener = ep.load()
            except MissingDependencyError:
                raise
            except ImportError as exc:
                raise StoreUriError(
                    f"the {scheme!r} store adapter cannot be loaded ({exc}); install it with: "
                    f"pip install 'bge-integrations[{scheme}]'"
                ) from exc
            return opener
    known = ", ".join(available_schemes()) or "none installed"
    raise StoreUriError(f"unknown store {scheme!r} in --store {uri!r}; known stores: {known} (e.g. {_EXAMPLES})")


class SettingsProbe:
    """Stand-in encoder used to open a store before the model is known (reads settings only).

    Encoding with it is a bug: the CLI swaps in the real encoder before any search or write.
    """

    model_name = "(model not loaded)"
    dim = 0
    colbert_dim = 0
    supports_sparse = True
    supports_colbert = True
    max_length = 0

    def encode_outputs(
        self, texts: Sequence[str], *, query: bool, dense: bool = True, sparse: bool = True, colbert: bool = False
    ) -> M3Output:
        """Refuse: no model is loaded."""
        raise BGEError("internal error: the store was used before the model was loaded")


def open_store(uri: str, *, collection: str, show_progress: bool | None = None) -> VectorIndex:
    """Open ``collection`` in the store ``uri`` through its adapter, without loading a model.

    The returned index only serves ``read_settings`` / ``write_settings`` / ``close`` and its
    ``store``; build a :class:`VectorIndex` on ``index.store`` with the real encoder.
    """
    scheme = store_scheme(uri)
    opener = _load_opener(scheme, uri)
    kwargs: dict[str, Any] = {
        "encoder": SettingsProbe(),
        "collection": collection,
        "dense": True,
        "sparse": True,
        "colbert": True,
        "show_progress": show_progress,
    }
    return opener(uri, **kwargs)
