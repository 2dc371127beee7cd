"""``bge_ray.ingest``: encode on a Ray Data actor pool and write through the same ``Store``.

The driver checks everything before work starts (dataset columns and types, store, model,
the settings recorded with the index, the Ray cluster and its resources), records the same
settings as ``bge index``, then runs one Ray Data pipeline:

    dataset ──map_batches(EncodeWorker, ActorPoolStrategy(size=workers))──▶ status rows
                         │ server store: every worker writes (own client)
                         └ embedded store: encoded rows stream (iter_batches) to the driver,
                           the only process that may open the store, which writes them

Ids are deterministic (UUIDv5, as ``VectorIndex``) and writes are upserts, so a batch that
Ray retries after a worker died is written again, never twice. Rows stored with the same
text and metadata are skipped before they are encoded, so a re-run after a crash (of a
worker or of the driver) only encodes what is missing.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import socket
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bge_core.errors import BGEError, MissingDependencyError
from bge_core.index import Record, RetryPolicy, VectorIndex, close_store, progress_enabled
from bge_ray.errors import RayIngestError, from_ray_exception
from bge_ray.rows import METADATA_COLUMN, check_schema, decode_records, prepare_rows
from bge_ray.workers import EncodeWorker, OnError, WorkerConfig, load_model

if TYPE_CHECKING:
    import ray.data

    from bge_core.sources import SourceReport

__all__ = ["FailedRow", "IngestProgress", "IngestResult", "ingest", "is_server_uri"]

logger = logging.getLogger(__name__)

DEFAULT_COLLECTION = "bge"
#: Rows per worker call (as ``VectorIndex.chunk_size``): on CPU, encoding 256 length-sorted rows
#: at once pads far less than 32 at a time (BENCHMARKS.md section 7).
DEFAULT_CHUNK_SIZE = 256


@dataclass(frozen=True)
class FailedRow:
    """A row left out with ``on_error="skip"``: its stored id (``None`` when it has none, e.g.
    a null text without an ``id`` column) and the error, which names the row (its user id or text)."""

    id: str | None
    message: str


@dataclass(frozen=True)
class IngestProgress:
    """Counts so far, passed to ``on_progress`` after every batch that reaches the driver."""

    rows: int
    encoded: int
    written: int
    skipped: int
    failed: int
    total: int | None
    seconds: float


@dataclass
class IngestResult:
    """What an ingest did. ``rows`` = ``encoded + skipped + failed`` (duplicates count as skipped)."""

    rows: int = 0
    encoded: int = 0
    written: int = 0
    skipped: int = 0
    failed: list[FailedRow] = field(default_factory=list)
    stored: int = 0
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)
    report: SourceReport | None = None

    @property
    def rate(self) -> float:
        """Rows per second over the whole job."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def is_server_uri(uri: str) -> bool:
    """Whether a store URI names a server (``qdrant+http://...``, ``milvus+https://...``):
    then every worker writes with its own client; else (a folder or file) the driver writes."""
    scheme = uri.split(":", 1)[0].lower()
    return scheme.endswith(("+http", "+https"))


def _require_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise MissingDependencyError("ray[data]", "ray", "distributed ingest on Ray") from exc
    return ray


# -- checks before any work -------------------------------------------------------------------
def _check_options(
    workers: int, cpus: float, gpus: float, batch_size: int, on_error: str, restarts: int, retries: int
) -> None:
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not cpus > 0:
        raise ValueError(f"cpus_per_worker must be > 0, got {cpus!r}")
    if gpus < 0:
        raise ValueError(f"gpus_per_worker must be >= 0, got {gpus!r}")
    if on_error not in ("fail", "skip"):
        raise ValueError(f"on_error must be 'fail' or 'skip', got {on_error!r}")
    if restarts < -1 or retries < -1:
        raise ValueError("max_restarts and max_task_retries must be >= -1 (-1: unlimited)")


def _check_address(address: str | None) -> None:
    """Fail fast on an unreachable ``host:port`` (``ray.init`` would wait minutes)."""
    if address is None or address in ("auto", "local"):
        return
    raw = address.removeprefix("ray://")
    host, sep, port = raw.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise RayIngestError(f"Ray address {address!r} is not HOST:PORT (or ray://HOST:PORT, or auto)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=3):
            pass
    except OSError as exc:
        raise RayIngestError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); check the address "
            "(`ray status` on the head node prints it), or drop --ray-address to start a local Ray"
        ) from None


@contextlib.contextmanager
def _ray_session(address: str | None) -> Iterator[Any]:
    ray = _require_ray()
    started = False
    if not ray.is_initialized():
        _check_address(address)
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False, include_dashboard=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RayIngestError(
                f"cannot start or join Ray (address {address or 'local'}): {' '.join(str(exc).split())[:300]}"
            ) from None
        started = True
    ctx = ray.data.DataContext.get_current()
    saved = (ctx.enable_progress_bars, ctx.print_on_execution_start)
    ctx.enable_progress_bars = False  # one progress line for the whole job: ours
    ctx.print_on_execution_start = False
    data_logger = logging.getLogger("ray.data")
    level = data_logger.level
    data_logger.setLevel(logging.ERROR)
    try:
        yield ray
    finally:
        ctx.enable_progress_bars, ctx.print_on_execution_start = saved
        data_logger.setLevel(level)
        if started:
            ray.shutdown()


def _check_resources(ray: Any, workers: int, cpus: float, gpus: float) -> None:
    have = ray.cluster_resources()
    need_cpu, need_gpu = workers * cpus, workers * gpus
    if need_cpu > have.get("CPU", 0) + 1e-9:
        raise RayIngestError(
            f"{workers} workers x {cpus:g} CPUs need {need_cpu:g} CPUs but the Ray cluster has "
            f"{have.get('CPU', 0):g}; use fewer --workers or a smaller cpus_per_worker"
        )
    if need_gpu > have.get("GPU", 0) + 1e-9:
        raise RayIngestError(
            f"{workers} workers x {gpus:g} GPUs need {need_gpu:g} GPUs but the Ray cluster has "
            f"{have.get('GPU', 0):g}; use fewer --workers or --gpus-per-worker 0 (CPU)"
        )


# -- settings (as bge index) ------------------------------------------------------------------
@dataclass
class _Plan:
    settings: dict[str, Any]
    model: str | Callable[[], Any]
    sparse: bool
    colbert: bool
    colbert_dim: int
    tokenizer: Any
    encoder: Any


def _plan(
    store: Any,
    where: str,
    model: str | os.PathLike[str] | Callable[[], Any] | None,
    *,
    max_tokens: int | None,
    colbert: bool | None,
    dtype: str,
    batch_size: int,
) -> _Plan:
    """Reconcile the options with the recorded settings (the same pure functions as ``bge index``:
    :func:`bge_core.settings.resolve_settings`) and load the model once on the driver's CPU (its
    dimension, max length and tokenizer)."""
    from bge_core.settings import (
        ModelFacts,
        SettingsRequest,
        model_to_load,
        resolve_settings,
    )

    recorded = store.read_settings()
    name = os.fspath(model) if isinstance(model, (str, os.PathLike)) else None
    request = SettingsRequest(model=name, max_tokens=max_tokens, colbert=colbert, layout="chunks")
    worker_model: str | Callable[[], Any]
    if name is None and callable(model):
        worker_model = model
    else:
        worker_model = model_to_load(request, recorded, where)
    encoder = load_model(worker_model, device="cpu", dtype=dtype, batch_size=batch_size)
    if name is None and callable(model):
        request = SettingsRequest(
            model=str(encoder.model_name), max_tokens=max_tokens, colbert=colbert, layout="chunks"
        )
    resolved = resolve_settings(request, recorded, ModelFacts.of(encoder), where)
    tokenizer = getattr(encoder, "tokenizer", None)
    return _Plan(
        resolved.settings,
        worker_model,
        resolved.kind == "m3",
        resolved.colbert,
        int(getattr(encoder, "colbert_dim", 0)),
        tokenizer,
        encoder,
    )


def _source_rows(sources: Sequence[str | os.PathLike[str]], plan: _Plan, report: SourceReport) -> list[dict[str, Any]]:
    """Chunks of SOURCE files, as ``bge index`` makes them (read on the driver)."""
    from bge_core.sources import find_source_files, iter_chunks, read_documents

    if plan.tokenizer is None:
        raise BGEError("the encoder has no tokenizer to chunk SOURCE files with; pass a ray.data.Dataset instead")
    files = find_source_files(sources, report)
    chunks = iter_chunks(read_documents(files, report), plan.tokenizer, int(plan.settings["max_tokens"]), report)
    return [{"text": c.text, "id": c.id, METADATA_COLUMN: json.dumps(c.metadata, ensure_ascii=False)} for c in chunks]


# -- progress ---------------------------------------------------------------------------------
class _ProgressLine:
    """One line for the whole job: rows done of total, encoded, written, rate and time left."""

    def __init__(self, enabled: bool, total: int | None) -> None:
        self._bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, unit="row", desc="ray ingest", dynamic_ncols=True)

    def update(self, done: int, result: IngestResult) -> None:
        if self._bar is not None:
            self._bar.update(done)
            self._bar.set_postfix_str(
                f"encoded {result.encoded}, written {result.written}, skipped {result.skipped}", refresh=False
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# -- the job ----------------------------------------------------------------------------------
def ingest(
    source: ray.data.Dataset | str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    store_uri: str,
    *,
    model: str | os.PathLike[str] | Callable[[], Any] | None = None,
    collection: str = DEFAULT_COLLECTION,
    workers: int = 1,
    gpus_per_worker: float = 0,
    cpus_per_worker: float = 1,
    batch_size: int = 32,
    chunk_size: int | None = None,
    max_tokens: int | None = None,
    colbert: bool | None = None,
    device: str = "auto",
    dtype: str = "auto",
    torch_threads: int | None = None,
    on_error: OnError = "fail",
    skip_unchanged: bool = True,
    max_restarts: int = 3,
    max_task_retries: int = 3,
    address: str | None = None,
    total: int | None = None,
    show_progress: bool | None = None,
    on_progress: Callable[[IngestProgress], None] | None = None,
    retry: RetryPolicy | None = None,
) -> IngestResult:
    """Encode ``source`` on a Ray actor pool and store it in ``store_uri`` (``collection``).

    Args:
        source: a ``ray.data.Dataset`` with a ``text`` column (optional ``id``: str or int;
            every other column becomes metadata; texts longer than the model's max length are
            truncated), or SOURCE paths as for ``bge index`` (read and chunked on the driver,
            same chunk ids and metadata).
        store_uri: as ``bge --store``: ``qdrant:./dir``, ``milvus:./file.db`` (embedded: the
            driver is the single writer) or ``qdrant+http://host:6333``,
            ``milvus+http://host:19530`` (server: every worker writes with its own client).
        model: hub id or folder (default: the recorded model, else ``BAAI/bge-m3``), or a
            picklable zero-argument callable returning an encoder. Loaded once per worker with
            the defaults of ``bge index`` (and once on the driver's CPU, for the settings).
        workers / cpus_per_worker / gpus_per_worker: the actor pool (``ActorPoolStrategy``).
        batch_size: rows per encoder forward pass and per store write.
        chunk_size: rows per ``map_batches`` block: one encode call on a worker, whose rows are
            length-sorted into batches together (less padding, as ``VectorIndex.chunk_size``),
            and the unit a retried task redoes. Default ``max(batch_size, 256)``.
        max_tokens / colbert: as ``bge index --max-tokens`` / ``--no-colbert`` (``None``: the
            recorded value).
        device / dtype: for the workers (``auto``: a GPU when the worker has one).
        torch_threads: torch intra-op threads per worker (default ``ceil(cpus_per_worker)``).
        on_error: a row that cannot be encoded (non-string text, a failing encoder call):
            ``"fail"`` stops the job with a :class:`~bge_ray.RowError` naming the row;
            ``"skip"`` leaves it out, logs it and lists it in ``IngestResult.failed``.
        skip_unchanged: skip rows stored with the same text and metadata, before encoding.
        max_restarts / max_task_retries: Ray's actor restarts and batch retries after a
            worker process dies (safe: writes are upserts by deterministic id).
        address: a Ray cluster (``HOST:PORT``, ``ray://HOST:PORT``, ``auto``); default: the
            running Ray, else a local one (shut down at the end).
        total: rows in a dataset, for the time-left estimate (counted when cheap).
        show_progress: one progress line (default: when stderr is a terminal).
        on_progress: called on the driver with an :class:`IngestProgress` after each block
            (and once at the end); ``written`` counts writes that completed.
        retry: backoff for transient store errors (driver and workers).

    Returns an :class:`IngestResult`. Raises (before any work) ``ValueError`` / ``TypeError``
    for bad input (no ``text`` column, non-string texts), ``StoreError`` for an unreachable
    store, :class:`~bge_ray.RayIngestError` for an unreachable Ray cluster or too few resources.
    """
    _check_options(workers, cpus_per_worker, gpus_per_worker, batch_size, on_error, max_restarts, max_task_retries)
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    chunk = chunk_size or max(batch_size, DEFAULT_CHUNK_SIZE)
    from bge_core.cli.stores import open_store
    from bge_core.sources import SourceReport, find_source_files

    ray = _require_ray()
    dataset: Any = None
    sources: list[str | os.PathLike[str]] = []
    report: SourceReport | None = None
    if isinstance(source, ray.data.Dataset):
        dataset = source
        check_schema(dataset.schema())
    else:
        sources = [source] if isinstance(source, (str, os.PathLike)) else list(source)
        find_source_files(sources)  # bad SOURCE arguments fail before anything is opened
        report = SourceReport()
    _check_address(address)
    retry = retry or RetryPolicy()
    server = is_server_uri(store_uri)
    start = time.perf_counter()
    probe = open_store(store_uri, collection=collection)
    try:
        where = f"the index {store_uri} (collection {collection!r})"
        plan = _plan(probe, where, model, max_tokens=max_tokens, colbert=colbert, dtype=dtype, batch_size=batch_size)
        index = VectorIndex(probe, plan.encoder, dense=True, sparse=plan.sparse, colbert=plan.colbert)
        rows_in: list[dict[str, Any]] | None = None
        if report is not None:
            rows_in = _source_rows(sources, plan, report)
            total = len(rows_in)
        plan.encoder = plan.tokenizer = None  # the workers load their own
        with _ray_session(address) as ray:
            _check_resources(ray, workers, cpus_per_worker, gpus_per_worker)
            index.ensure_collection()
            if index.read_settings() != plan.settings:
                index.write_settings(plan.settings)
            if rows_in is not None:
                dataset = ray.data.from_items(rows_in) if rows_in else None
            elif total is None and type(dataset).__name__ == "MaterializedDataset":
                total = dataset.count()
            stored: dict[str, str] = {}
            if not server and skip_unchanged and dataset is not None and index.count() > 0:
                stored = _stored_hashes(dataset, index, retry)
            config = WorkerConfig(
                model=plan.model,
                device=("cuda" if gpus_per_worker > 0 else "cpu") if device == "auto" else device,
                dtype=dtype,
                batch_size=batch_size,
                torch_threads=torch_threads or max(1, math.ceil(cpus_per_worker)),
                sparse=plan.sparse,
                colbert=plan.colbert,
                on_error=on_error,
                skip_unchanged=skip_unchanged,
                store_uri=store_uri if server else None,
                collection=collection,
                spec=index.spec,
                retry=retry,
            )
            result = IngestResult(settings=plan.settings, report=report)
            if dataset is not None:
                _run(
                    ray,
                    dataset,
                    config,
                    stored,
                    index,
                    plan.colbert_dim,
                    result,
                    workers=workers,
                    chunk=chunk,
                    cpus=cpus_per_worker,
                    gpus=gpus_per_worker,
                    max_restarts=max_restarts,
                    max_task_retries=max_task_retries,
                    total=total,
                    show_progress=show_progress,
                    on_progress=on_progress,
                    start=start,
                )
        result.stored = index.count()
        result.seconds = time.perf_counter() - start
        return result
    finally:
        close_store(probe)


def _stored_hashes(dataset: Any, index: VectorIndex, retry: RetryPolicy) -> dict[str, str]:
    """``{id: hash}`` of the dataset's rows that the embedded store holds (driver side), so the
    workers skip them before encoding."""
    stored: dict[str, str] = {}
    for table in dataset.iter_batches(batch_format="pyarrow", batch_size=2048):
        rows, _ = prepare_rows(table)
        ids = [r.id for r in rows]
        if ids:
            found = retry.run(
                functools.partial(index.store.fetch_hashes, ids), index.store.is_transient, "reading hashes"
            )
            stored.update(found)
    logger.info("%d rows of the dataset are stored already", len(stored))
    return stored


class _Writer:
    """The driver's single writer for embedded stores: one background thread, so Ray keeps
    delivering blocks while the store writes. At most one block of writes waits (bounded
    memory); ``result.written`` counts completed writes; the first error is re-raised on the
    driver's thread."""

    def __init__(self, index: VectorIndex, result: IngestResult, depth: int = 16) -> None:
        self._index = index
        self._result = result
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bge-ray-writer")
        self._pending: deque[Future[None]] = deque()
        self._depth = depth

    def _write(self, records: Sequence[Record]) -> None:
        store = self._index.store
        self._index.retry.run(
            functools.partial(store.upsert, records), store.is_transient, f"writing {len(records)} rows"
        )
        self._result.written += len(records)

    def submit(self, records: Sequence[Record]) -> None:
        self._pending.append(self._pool.submit(self._write, records))
        while len(self._pending) > self._depth or (self._pending and self._pending[0].done()):
            self._pending.popleft().result()

    def close(self) -> None:
        """Wait for every write; raise the first error."""
        while self._pending:
            self._pending.popleft().result()

    def abort(self) -> None:
        """Drop queued writes (after an error elsewhere) and stop the thread."""
        self._pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)


def _run(
    ray: Any,
    dataset: Any,
    config: WorkerConfig,
    stored: dict[str, str],
    index: VectorIndex,
    colbert_dim: int,
    result: IngestResult,
    *,
    workers: int,
    chunk: int,
    cpus: float,
    gpus: float,
    max_restarts: int,
    max_task_retries: int,
    total: int | None,
    show_progress: bool | None,
    on_progress: Callable[[IngestProgress], None] | None,
    start: float,
) -> None:
    with warnings.catch_warnings():
        # Ray 2.60 flags max_restarts / max_task_retries as "ray_remote_args" (deprecated for 2.64).
        warnings.simplefilter("ignore")
        encoded = dataset.map_batches(
            EncodeWorker,
            fn_constructor_kwargs={"config": config, "stored": stored},
            batch_size=chunk,
            batch_format="pyarrow",
            zero_copy_batch=True,
            # One block in flight per actor: blocks are seconds of work each, and a queued one
            # would leave the other actors idle at the end of the job.
            compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1),
            num_cpus=cpus,
            num_gpus=gpus or None,
            max_restarts=max_restarts,
            max_task_retries=max_task_retries,
        )
    bar = _ProgressLine(progress_enabled(show_progress), total)
    writer = _Writer(index, result)

    def report() -> None:
        if on_progress is not None:
            on_progress(
                IngestProgress(
                    result.rows,
                    result.encoded,
                    result.written,
                    result.skipped,
                    len(result.failed),
                    total,
                    time.perf_counter() - start,
                )
            )

    try:
        for table in encoded.iter_batches(batch_format="pyarrow", batch_size=None, prefetch_batches=2):
            statuses = table.column("status").to_pylist()
            n_encoded = statuses.count("encoded")
            n_written = statuses.count("written")
            result.encoded += n_encoded + n_written
            result.skipped += statuses.count("skipped")
            if "failed" in statuses:
                for rid, st, err in zip(table.column("id").to_pylist(), statuses, table.column("error").to_pylist()):
                    if st == "failed":
                        result.failed.append(FailedRow(None if rid is None else str(rid), str(err)))
            if n_encoded:
                # Written on the writer thread (batch_size rows per upsert) while the next
                # blocks arrive; the vectors are views of the block's Arrow buffers.
                records = decode_records(table, colbert_dim=colbert_dim)
                for begin in range(0, len(records), config.batch_size):
                    writer.submit(records[begin : begin + config.batch_size])
            result.written += n_written
            result.rows += table.num_rows
            bar.update(table.num_rows, result)
            report()
        writer.close()
        report()
    except BGEError:
        raise
    except Exception as exc:
        ours = from_ray_exception(exc)
        if ours is not None:
            raise ours from None
        raise
    finally:
        writer.abort()
        bar.close()
    if result.failed:
        logger.warning("%d rows failed and were skipped (see IngestResult.failed)", len(result.failed))
