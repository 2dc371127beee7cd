"""Keeping an index in step with its SOURCE files: what a run added, updated, left unchanged
and which stored chunks it made stale.

Every chunk ``bge index`` writes records ``source_root`` (the absolute folder its ``source``
name is relative to), so the file it came from is ``source_root/source``. After a complete
run over SOURCE paths, a stored chunk is *stale* when its file lies under one of those paths
and the run did not produce its id: the file is gone, got shorter, or a row was removed.
Chunks of files under other folders, of files that could not be read in full this time, and
rows written without ``source_root`` (the Python API) are never touched.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["ScanningStore", "SyncCounts", "TrackingStore", "find_stale", "is_under"]

_SCAN_KEYS = ("source_root", "source")


@runtime_checkable
class ScanningStore(Protocol):
    """A store that can list its rows' ids with some metadata (Qdrant and Milvus stores can)."""

    def scan(self, keys: Sequence[str], batch_size: int = ...) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(id, {key: metadata value})`` of every row whose metadata has ``keys[0]``."""
        ...


@dataclass
class SyncCounts:
    """Chunks a run added (new ids), updated (changed text or metadata), left unchanged, removed."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0


class TrackingStore:
    """Wraps a store and counts, from the hash look-ups of an ingest, what was new, changed or
    unchanged. Every other call goes to the wrapped store."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.counts = SyncCounts()
        self._existing: set[str] = set()

    @property
    def inner_store(self) -> Any:
        """The wrapped store."""
        return self._inner

    def fetch_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        """The wrapped store's hashes; records which ids were missing."""
        stored: dict[str, str] = self._inner.fetch_hashes(ids)
        self.counts.added += sum(1 for i in ids if i not in stored)
        self._existing.update(stored)
        return stored

    def upsert(self, records: Sequence[Any]) -> None:
        """Write through; rows that existed with another hash are counted as updated."""
        self._inner.upsert(records)
        for r in records:
            if r.id in self._existing:
                self._existing.discard(r.id)
                self.counts.updated += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def is_under(path: str, folders: Iterable[str]) -> bool:
    """Whether ``path`` is one of ``folders`` or lies below one of them (absolute paths)."""
    for folder in folders:
        if path == folder or path.startswith(folder.rstrip(os.sep) + os.sep):
            return True
    return False


def find_stale(
    store: ScanningStore,
    covered: Sequence[str],
    produced: set[str],
    incomplete: Iterable[str] = (),
) -> list[str]:
    """Ids of stored chunks whose file lies under ``covered`` (absolute SOURCE paths) but that
    the run did not produce, skipping files and folders in ``incomplete``."""
    skip = list(incomplete)
    stale = []
    for row_id, meta in store.scan(list(_SCAN_KEYS)):
        root, source = meta.get("source_root"), meta.get("source")
        if not isinstance(root, str) or not isinstance(source, str) or row_id in produced:
            continue
        path = os.path.normpath(os.path.join(root, source))
        if is_under(path, covered) and not is_under(path, skip):
            stale.append(row_id)
    return stale
