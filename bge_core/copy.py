"""Copy an index between two stores without re-encoding (``bge copy SRC DST``).

Vectors and payload are copied as stored, in batches, with the settings recorded by
``bge index``. A copy is resumable: each batch skips the records the destination already
holds with the same content hash, so re-running an interrupted copy writes only what is
missing. At the end the counts must be equal and a seeded sample of records must have equal
text, metadata and vectors in both stores (:class:`CopyCheckError` otherwise).
"""

from __future__ import annotations

import functools
import importlib
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bge_core.errors import IndexSettingsMismatchError, StoreError
from bge_core.export import ExportableStore
from bge_core.index import Record, RetryPolicy, Store, progress_enabled, split_unchanged

__all__ = ["CopyCheckError", "CopyReport", "as_exportable", "copy_index", "records_equal"]

logger = logging.getLogger(__name__)


class CopyCheckError(StoreError):
    """The destination does not hold what the source holds after a copy."""


@dataclass(frozen=True)
class CopyReport:
    """What a copy did: records read from the source, written, skipped (already in the
    destination), the final counts and how many sampled records were compared."""

    read: int
    written: int
    skipped: int
    source_count: int
    destination_count: int
    checked: int


def as_exportable(store: Any) -> ExportableStore:
    """``store`` if it implements :class:`ExportableStore`; otherwise the wrapper from its
    adapter's ``export`` module (``<adapter>.export.exportable``), loaded by name so that
    bge_core does not import adapters."""
    if isinstance(store, ExportableStore):
        return store
    package = type(store).__module__.split(".", 1)[0]
    try:
        module = importlib.import_module(f"{package}.export")
        wrapped = module.exportable(store)
    except (ImportError, AttributeError):
        raise StoreError(
            f"{type(store).__name__} cannot export its records with their vectors, so it cannot be copied "
            "(it needs stored_spec / export / fetch_records)"
        ) from None
    if not isinstance(wrapped, ExportableStore):  # pragma: no cover - a broken adapter
        raise StoreError(f"{package}.export.exportable did not return an exportable store")
    return wrapped


def records_equal(a: Record, b: Record, atol: float = 1e-5) -> list[str]:
    """The fields in which two records differ (vectors within ``atol``); empty if equal."""
    diffs = []
    if a.text != b.text:
        diffs.append("text")
    if a.metadata != b.metadata:
        diffs.append("metadata")
    if a.hash != b.hash:
        diffs.append("hash")
    for name in ("dense", "colbert"):
        x, y = _vector(getattr(a, name)), _vector(getattr(b, name))
        if x is None or y is None:
            if (x is None) != (y is None):
                diffs.append(name)
        elif x.shape != y.shape or not np.allclose(x, y, atol=atol):
            diffs.append(name)
    sa, sb = a.sparse, b.sparse
    if (
        (sa is None or len(sa) == 0) != (sb is None or len(sb) == 0)
        or sa is not None
        and sb is not None
        and len(sa)
        and (not np.array_equal(sa.indices, sb.indices) or not np.allclose(sa.values, sb.values, atol=atol))
    ):
        diffs.append("sparse")
    return diffs


def _vector(value: Any) -> np.ndarray[Any, Any] | None:
    """A float32 array, or None for no / empty vectors (stores differ in how they keep none)."""
    if value is None:
        return None
    arr = np.asarray(value, dtype=np.float32)
    return None if arr.size == 0 else arr


def copy_index(
    source: Store,
    destination: Store,
    *,
    batch_size: int = 256,
    sample: int = 100,
    show_progress: bool | None = None,
    retry: RetryPolicy | None = None,
    seed: int = 0,
) -> CopyReport:
    """Copy every record of ``source`` into ``destination`` (see the module docstring).

    ``source`` must implement :class:`~bge_core.export.ExportableStore` (or have an adapter
    wrapper, see :func:`as_exportable`); so must ``destination`` for the sampled check.
    The destination collection is created with the source's layout (an existing one must
    fit it) and receives the source's settings; a destination whose settings differ is
    refused before anything is written.
    """
    if batch_size < 1 or sample < 0:
        raise ValueError("batch_size must be >= 1 and sample >= 0")
    src = as_exportable(source)
    dst_export = as_exportable(destination)
    spec = src.stored_spec()
    if spec is None:
        raise StoreError(f"the source {source!r} holds no index; nothing to copy")
    settings = source.read_settings()
    have = destination.read_settings()
    if have is not None and settings is not None and have != settings:
        raise IndexSettingsMismatchError(
            f"the destination {destination!r} holds an index built with other settings ({have}) than the "
            f"source ({settings}); copy into another collection or delete the destination first"
        )
    destination.ensure(spec)
    if settings is not None and have != settings:
        destination.write_settings(settings)
    policy = retry or RetryPolicy()
    total = source.count()
    bar = _bar(show_progress, total)
    rng = random.Random(seed)
    reservoir: list[str] = []
    read = written = skipped = 0
    try:
        cursor: str | None = None
        while True:
            records, cursor = src.export(cursor, batch_size)
            for r in records:  # reservoir sample of ids for the final check
                read += 1
                if len(reservoir) < sample:
                    reservoir.append(r.id)
                elif (j := rng.randrange(read)) < sample:
                    reservoir[j] = r.id
            if records:
                todo, unchanged = split_unchanged(records, destination.fetch_hashes)
                skipped += len(unchanged)
                if todo:
                    policy.run(
                        functools.partial(destination.upsert, todo),
                        destination.is_transient,
                        f"copying {len(todo)} records",
                    )
                    written += len(todo)
                if bar is not None:
                    bar.update(len(records))
            if cursor is None:
                break
    finally:
        if bar is not None:
            bar.close()
    finish = getattr(destination, "finish_ingest", None)
    if callable(finish):
        finish()
    dst_count = destination.count()
    src_count = source.count()
    if dst_count != src_count:
        raise CopyCheckError(
            f"after the copy the destination holds {dst_count} records but the source {src_count}; "
            "the destination held other records before (copy into an empty collection), or the source changed "
            "during the copy (run the copy again)"
        )
    _check_sample(src, dst_export, reservoir)
    report = CopyReport(read, written, skipped, src_count, dst_count, len(reservoir))
    logger.info("copy done: %s", report)
    return report


def _check_sample(src: ExportableStore, dst: ExportableStore, ids: Sequence[str]) -> None:
    if not ids:
        return
    want = {r.id: r for r in src.fetch_records(ids)}
    got = {r.id: r for r in dst.fetch_records(ids)}
    for i in ids:
        if i not in got:
            raise CopyCheckError(f"record {i} is missing in the destination after the copy")
        diffs = records_equal(want[i], got[i])
        if diffs:
            raise CopyCheckError(f"record {i} differs between source and destination in: {', '.join(diffs)}")


def _bar(enabled: bool | None, total: int) -> Any:
    if not progress_enabled(enabled):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="rec", desc="copying", dynamic_ncols=True)
