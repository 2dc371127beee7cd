"""Resolve ``--store`` URIs to a vector-store adapter through the ``bge.stores`` entry points.

``qdrant:./bge-index`` and ``qdrant+http://host:6333`` select the ``qdrant`` entry point;
``milvus:./bge.db`` and ``milvus+http://host:19530`` the ``milvus`` one. The scheme is the text
before the first ``:`` or ``+``. Each entry point is an ``open_store(uri, *, collection)``
function returning a :class:`bge_core.index.Store` that owns the client it created (its
``close()`` closes it). Old ``open_index(uri, *, encoder, ...)`` entry points still work
(deprecated).
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bge_core.errors import MissingDependencyError, StoreError
from bge_core.index import Store

__all__ = [
    "DEFAULT_STORE",
    "ENTRY_POINT_GROUP",
    "StoreUriError",
    "available_schemes",
    "open_store",
    "resolve_default_store",
    "store_scheme",
]

#: Where ``bge`` keeps its index unless ``--store`` says otherwise: Qdrant Edge (Qdrant's engine,
#: HNSW, in-process). A folder that an older version filled in Qdrant local mode (the default
#: before Edge) is still opened as ``qdrant:`` (see :func:`resolve_default_store`).
DEFAULT_STORE = "edge:./bge-index"
#: The entry-point group adapters register their ``open_store`` in.
ENTRY_POINT_GROUP = "bge.stores"

_EXAMPLES = "edge:./bge-index, qdrant:./bge-index, qdrant+http://localhost:6333, milvus:./bge.db or milvus+http://localhost:19530"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9_.-]*)[:+]")

Opener = Callable[..., Any]


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


def _is_legacy(opener: Callable[..., Any]) -> bool:
    """Whether ``opener`` is an old-style ``open_index(uri, *, encoder, ...)`` entry point."""
    try:
        return "encoder" in inspect.signature(opener).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return False


def resolve_default_store(uri: str) -> str:
    """``uri``, except that the default ``edge:`` folder holding a Qdrant local-mode index (made
    by ``bge`` before Edge became the default) is opened as ``qdrant:`` so it keeps working."""
    scheme, _, path = uri.partition(":")
    if scheme != "edge" or uri != DEFAULT_STORE:
        return uri
    folder = Path(path).expanduser()
    if (folder / "meta.json").is_file() and (folder / "collection").is_dir():
        logging.getLogger("bge_core.cli").info(
            "%s holds a Qdrant local-mode index: opening it as qdrant:%s", folder, path
        )
        return f"qdrant:{path}"
    return uri


def open_store(uri: str, *, collection: str) -> Store:
    """Open ``collection`` in the store ``uri`` through its adapter's ``bge.stores`` entry point.

    Nothing is loaded: the caller reads the recorded settings from the store, loads the model
    and builds a :class:`~bge_core.index.VectorIndex` on it. Close the store with its
    ``close()`` (or the index's).

    An old-style entry point (``open_index(uri, *, encoder, ...)`` returning an index) still
    works, with a :class:`DeprecationWarning`: it is called without an encoder and its
    index's store is used.
    """
    uri = resolve_default_store(uri)
    scheme = store_scheme(uri)
    opener = _load_opener(scheme, uri)
    if _is_legacy(opener):
        # The installed metadata may still name a module's old open_index (an editable install
        # from before the switch): use the module's open_store when it has one.
        module = sys.modules.get(getattr(opener, "__module__", "") or "")
        modern = getattr(module, "open_store", None)
        if callable(modern) and not _is_legacy(modern):
            opener = modern
        else:
            warnings.warn(
                f"the {scheme!r} store adapter's entry point returns an index; register a function "
                "open_store(uri, *, collection) -> Store in the 'bge.stores' group instead",
                DeprecationWarning,
                stacklevel=2,
            )
            index = opener(uri, encoder=None, collection=collection, dense=True, sparse=True, colbert=True)
            store: Store = index.store
            return store
    opened: Store = opener(uri, collection=collection)
    return opened
