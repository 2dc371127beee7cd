"""A small bounded cache of encoder outputs, shared by framework wrappers of one encoder.

LangChain and LlamaIndex vector stores ask for dense and sparse embeddings in two separate
calls. Wrappers that share one ``BGEM3Encoder`` use :func:`shared_cache` so the first call
computes dense and sparse in one pass and the second is served from here.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from bge_core.types import M3Output, SparseVector

__all__ = ["OutputCache", "shared_cache"]


class OutputCache:
    """LRU cache of (dense, sparse) per (text, is_query), bounded by ``max_entries``."""

    def __init__(self, encoder: Any, max_entries: int = 4096) -> None:
        self._encoder = weakref.ref(encoder)
        self._max = max_entries
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[bool, str], tuple[np.ndarray | None, SparseVector | None]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def encode(self, texts: Sequence[str], *, query: bool) -> M3Output:
        """Dense and (when the encoder has it) sparse outputs of ``texts``, encoding only misses."""
        enc = self._encoder()
        if enc is None:  # pragma: no cover - the wrapper holds the encoder
            raise RuntimeError("the encoder of this cache was garbage-collected")
        sparse = bool(getattr(enc, "supports_sparse", False))
        keys = [(query, t) for t in texts]
        # Held while encoding: a concurrent second call for the same texts then hits the cache.
        with self._lock:
            rows: dict[tuple[bool, str], tuple[np.ndarray | None, SparseVector | None]] = {}
            for key in keys:
                if key in self._items:
                    rows[key] = self._items[key]
                    self._items.move_to_end(key)
            missing = [k for k in dict.fromkeys(keys) if k not in rows]
            self.hits += len(keys) - sum(1 for k in keys if k in missing)
            self.misses += len(missing)
            if missing:
                out = enc.encode_outputs([t for _, t in missing], query=query, dense=True, sparse=sparse, colbert=False)
                for i, key in enumerate(missing):
                    row = (None if out.dense is None else out.dense[i], out.sparse[i] if sparse else None)
                    rows[key] = row
                    self._items[key] = row
                while len(self._items) > self._max:
                    self._items.popitem(last=False)
        dim = int(getattr(enc, "dim", 0))
        dense = [rows[k][0] for k in keys]
        return M3Output(
            dense=np.stack(dense).astype(np.float32) if keys else np.zeros((0, dim), np.float32),  # type: ignore[arg-type]
            sparse=[rows[k][1] for k in keys] if sparse else [],  # type: ignore[misc]
        )


_CACHES: weakref.WeakKeyDictionary[Any, OutputCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def shared_cache(encoder: Any, max_entries: int = 4096) -> OutputCache:
    """The one :class:`OutputCache` of ``encoder`` (created on first use)."""
    with _CACHES_LOCK:
        cache = _CACHES.get(encoder)
        if cache is None:
            cache = OutputCache(encoder, max_entries)
            _CACHES[encoder] = cache
        return cache
