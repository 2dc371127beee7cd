"""The encoding worker: a Ray Data callable class, one per actor of the pool.

Each actor loads the encoder once (``__init__``), then for every batch: computes ids and
hashes, skips rows stored unchanged (before encoding: ``Store.fetch_hashes`` on its own client
for server stores; for an embedded store, the ``{id: hash}`` map the driver fetched before the
job), encodes the rest in one call, and either writes them itself (server stores, an upsert
by deterministic id, so a retried batch never duplicates) or returns them for the driver's
single writer (embedded stores).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa

from bge_core.index import CollectionSpec, Record, RetryPolicy, split_unchanged
from bge_ray.errors import MARKER
from bge_ray.rows import PreparedRow, prepare_rows, status_table

__all__ = ["EncodeWorker", "OnError", "WorkerConfig", "build_records"]

logger = logging.getLogger(__name__)

OnError = Literal["fail", "skip"]


@dataclass(frozen=True)
class WorkerConfig:
    """What each actor needs (pickled once into the actor's constructor).

    Each call gets one block of rows (``ingest(chunk_size=...)``), encoded in one encoder call
    (length-sorted batches of ``batch_size``, as ``VectorIndex`` does per chunk) and written
    (server stores) ``batch_size`` rows per upsert.

    ``model`` is a model name / folder (loaded like ``bge index`` does) or a zero-argument
    picklable callable returning an encoder. ``store_uri`` is set for server stores (the
    worker writes); ``None`` means the driver writes.
    """

    model: str | Callable[[], Any]
    device: str
    dtype: str
    batch_size: int
    torch_threads: int
    sparse: bool
    colbert: bool
    on_error: OnError
    skip_unchanged: bool
    store_uri: str | None = None
    collection: str = "bge"
    spec: CollectionSpec | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)


def load_model(model: str | Callable[[], Any], *, device: str, dtype: str, batch_size: int) -> Any:
    """The encoder ``bge index`` would load for ``model`` (or what the factory returns)."""
    if callable(model):
        return model()
    from bge_core.cli.encoders import load_encoder

    return load_encoder(model, device=device, dtype=dtype, batch_size=batch_size)


def build_records(encoder: Any, rows: Sequence[PreparedRow], *, sparse: bool, colbert: bool) -> list[Record]:
    """Encode ``rows`` in one call and build the records exactly as ``VectorIndex`` does."""
    out = encoder.encode_outputs([r.text for r in rows], query=False, dense=True, sparse=sparse, colbert=colbert)
    records = []
    for i, r in enumerate(rows):
        sv = out.sparse[i] if sparse else None
        records.append(
            Record(
                id=r.id,
                text=r.text,
                metadata=r.metadata,
                hash=r.hash,
                dense=out.dense[i] if out.dense is not None else None,
                sparse=sv if sv is not None and len(sv) > 0 else None,
                colbert=out.colbert[i] if colbert else None,
            )
        )
    return records


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:400]


class EncodeWorker:
    """Ray Data UDF (``map_batches`` with an actor pool): pyarrow batch in, status table out."""

    def __init__(self, config: WorkerConfig, stored: Mapping[str, str] | None = None) -> None:
        import torch

        torch.set_num_threads(max(1, config.torch_threads))
        self.config = config
        self.stored: Mapping[str, str] = stored or {}
        self.pid = os.getpid()
        self.encoder = load_model(config.model, device=config.device, dtype=config.dtype, batch_size=config.batch_size)
        self.store: Any = None
        self._owner: Any = None
        if config.store_uri is not None:
            from bge_core.cli.stores import open_store

            try:
                self._owner = open_store(config.store_uri, collection=config.collection)
                self.store = self._owner
                # The driver created the collection; this validates it and tells this client
                # which vectors it holds (a store learns its layout in ensure()).
                if config.spec is not None:
                    self.store.ensure(config.spec)
            except Exception as exc:
                raise RuntimeError(f"{MARKER}store: {_one_line(exc)}") from exc

    def __call__(self, batch: pa.Table) -> pa.Table:
        cfg = self.config
        rows, problems = prepare_rows(batch)
        status: list[tuple[str | None, str, str | None]] = []
        for p in problems:
            self._row_failed(status, p.label, p.id, p.message)
        latest: dict[str, PreparedRow] = {}
        for r in rows:
            if r.id in latest:  # the last occurrence wins, as in VectorIndex
                status.append((r.id, "skipped", None))
            latest[r.id] = r
        todo = list(latest.values())
        if cfg.skip_unchanged:
            todo, unchanged = split_unchanged(todo, self._stored_hashes)
            status.extend((r.id, "skipped", None) for r in unchanged)
        records = self._encode(todo, status) if todo else []
        if self.store is not None and records:
            step = max(1, cfg.batch_size)
            for start in range(0, len(records), step):
                part = records[start : start + step]
                self._store_call(functools.partial(self.store.upsert, part), f"writing {len(part)} rows")
            status.extend((r.id, "written", None) for r in records)
            records = []
        return status_table(status, records)

    def _stored_hashes(self, ids: list[str]) -> Mapping[str, str]:
        """Hashes from this worker's store, or those the driver read for an embedded store."""
        if self.store is None:
            return self.stored
        stored: Mapping[str, str] = self._store_call(lambda: self.store.fetch_hashes(ids), "reading hashes")
        return stored

    def _store_call(self, fn: Callable[[], Any], what: str) -> Any:
        try:
            return self.config.retry.run(fn, self.store.is_transient, what)
        except Exception as exc:
            raise RuntimeError(f"{MARKER}store: {_one_line(exc)}") from exc

    def _encode(self, todo: list[PreparedRow], status: list[tuple[str | None, str, str | None]]) -> list[Record]:
        cfg = self.config
        try:
            return build_records(self.encoder, todo, sparse=cfg.sparse, colbert=cfg.colbert)
        except Exception as exc:  # noqa: BLE001 - narrowed to the failing rows below
            if len(todo) == 1:
                self._row_failed(status, todo[0].label, todo[0].id, _one_line(exc))
                return []
            logger.warning(
                "a batch of %d rows failed to encode (%s); encoding its rows one by one", len(todo), _one_line(exc)
            )
        records: list[Record] = []
        for r in todo:
            try:
                records.extend(build_records(self.encoder, [r], sparse=cfg.sparse, colbert=cfg.colbert))
            except Exception as exc:  # noqa: BLE001 - reported with the row's id
                self._row_failed(status, r.label, r.id, _one_line(exc))
        return records

    def _row_failed(
        self, status: list[tuple[str | None, str, str | None]], label: str, rid: str | None, message: str
    ) -> None:
        text = f"row {label} failed: {message}"
        if self.config.on_error == "fail":
            raise ValueError(f"{MARKER}row: {text}")
        logger.warning("skipping %s", text)
        status.append((rid, "failed", text))

    def __del__(self) -> None:
        owner = getattr(self, "_owner", None)
        if owner is not None:
            try:
                owner.close()
            except Exception as exc:  # noqa: BLE001 - best effort at interpreter exit
                logger.debug("closing the store client failed: %s", exc)
