"""Store-independent index logic shared by every vector-store adapter.

A store adapter implements the small :class:`Store` protocol (translate to its client's
calls); :class:`VectorIndex` does the rest once for all stores: input validation,
deterministic ids, streaming ingest with one encoder pass per text, skipping unchanged
texts on re-runs, overlap of encoding with writes, bounded retries, progress bars, the
search plan (modes, fusion defaults, optional cross-encoder rerank) and the ``Hit`` type.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, cast, runtime_checkable

import numpy as np

from bge_core.errors import StoreError
from bge_core.scoring import DEFAULT_RRF_K
from bge_core.types import FloatArray, Hit, M3Output, SparseVector

__all__ = [
    "DEFAULT_RRF_K",
    "ID_NAMESPACE",
    "CollectionSpec",
    "Document",
    "Fusion",
    "IndexEncoder",
    "Mode",
    "Record",
    "RerankerLike",
    "RetryPolicy",
    "SearchRequest",
    "Store",
    "VectorIndex",
    "content_hash",
    "make_id",
    "validate_filter_dict",
]

logger = logging.getLogger(__name__)

Mode = Literal["dense", "sparse", "hybrid", "colbert"]
Fusion = Literal["rrf", "dbsf", "weighted"]
MODES: tuple[str, ...] = ("dense", "sparse", "hybrid", "colbert")
FUSIONS: tuple[str, ...] = ("rrf", "dbsf", "weighted")

#: UUIDv5 namespace of all point ids written by bge-integrations.
ID_NAMESPACE = uuid.UUID("5b0e1f0e-6d2c-4c55-9a6b-3b1f4f0e9b8a")


def make_id(user_id: str | int | None, text: str) -> str:
    """Deterministic id: UUIDv5 of the user id when given, else of the text."""
    key = f"id:{user_id}" if user_id is not None else f"text:{text}"
    return str(uuid.uuid5(ID_NAMESPACE, key))


def content_hash(text: str, metadata: Mapping[str, Any]) -> str:
    """Hash of what a record stores; a re-run skips records whose hash is unchanged."""
    h = hashlib.blake2b(digest_size=16)
    h.update(text.encode("utf-8", "surrogatepass"))
    h.update(b"\x00")
    h.update(json.dumps(metadata, sort_keys=True, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    return h.hexdigest()


class IndexEncoder(Protocol):
    """What an index needs from an encoder (``BGEM3Encoder`` and ``DenseEncoder`` fit)."""

    model_name: str

    @property
    def dim(self) -> int: ...
    @property
    def colbert_dim(self) -> int: ...
    @property
    def supports_sparse(self) -> bool: ...
    @property
    def supports_colbert(self) -> bool: ...
    @property
    def max_length(self) -> int: ...

    def encode_outputs(
        self, texts: Sequence[str], *, query: bool, dense: bool = ..., sparse: bool = ..., colbert: bool = ...
    ) -> M3Output: ...


@runtime_checkable
class RerankerLike(Protocol):
    """A cross-encoder (``bge_core.Reranker`` fits)."""

    def score(self, pairs: Sequence[tuple[str, str]], *, normalize: bool = False) -> FloatArray: ...


@dataclass(frozen=True)
class Document:
    """A text to index, with optional metadata and user id."""

    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    id: str | int | None = None


@dataclass(frozen=True)
class Record:
    """One row as written to a store. Vectors are ``None`` where the index has no such output
    (and ``sparse`` is ``None`` for texts whose lexical weights are empty)."""

    id: str
    text: str
    metadata: dict[str, Any]
    hash: str
    dense: FloatArray | None
    sparse: SparseVector | None
    colbert: FloatArray | None


@dataclass(frozen=True)
class CollectionSpec:
    """The vector layout an index needs from its collection."""

    dense_dim: int | None
    sparse: bool
    colbert_dim: int | None


@dataclass(frozen=True)
class SearchRequest:
    """A planned search, handed to :meth:`Store.query`.

    The store returns up to ``limit`` hits, best first, with ``Hit.scores`` filled for the
    stages it knows. ``filter`` is a store-native filter object or a validated
    ``{metadata_key: value}`` dict (equality on the metadata given at ingest).
    """

    mode: Mode
    limit: int
    dense: FloatArray | None
    sparse: SparseVector | None
    colbert: FloatArray | None
    fusion: Fusion
    rrf_k: int
    weights: tuple[float, float]
    prefetch_limit: int
    filter: Any


class Store(Protocol):
    """The calls a vector-store adapter translates. Writes must be idempotent upserts by id."""

    def ensure(self, spec: CollectionSpec) -> None:
        """Create the collection, or validate an existing one (raise CollectionMismatchError)."""
        ...

    def upsert(self, records: Sequence[Record]) -> None:
        """Insert or replace ``records`` by id."""
        ...

    def fetch_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        """``{id: content hash}`` of the given ids that are stored."""
        ...

    def query(self, request: SearchRequest) -> list[Hit]:
        """Run a planned search."""
        ...

    def get(self, ids: Sequence[str]) -> list[Hit]:
        """Stored rows by id (score 0), in the order of ``ids``; missing ids are left out."""
        ...

    def delete(self, ids: Sequence[str]) -> None:
        """Remove rows by id (missing ids are ignored)."""
        ...

    def count(self) -> int:
        """Number of stored rows (exact)."""
        ...

    def is_transient(self, exc: BaseException) -> bool:
        """Whether a failed write may pass when retried (timeouts, resets, 5xx)."""
        ...

    def read_settings(self) -> dict[str, Any] | None:
        """The settings recorded with the collection (model, outputs, ...), or None."""
        ...

    def write_settings(self, settings: dict[str, Any]) -> None:
        """Record ``settings`` (JSON-serialisable) with the collection."""
        ...


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff for transient store errors."""

    attempts: int = 5
    initial_delay: float = 0.2
    max_delay: float = 5.0

    def run(self, fn: Callable[[], Any], is_transient: Callable[[BaseException], bool], what: str) -> Any:
        """Call ``fn``; retry transient failures; raise :class:`StoreError` on a permanent one."""
        delay = self.initial_delay
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except Exception as exc:
                if not is_transient(exc):
                    raise StoreError(f"{what} failed permanently: {type(exc).__name__}: {exc}") from exc
                if attempt == self.attempts:
                    raise StoreError(
                        f"{what} still failing after {self.attempts} attempts "
                        f"({type(exc).__name__}: {exc}); check the store and run again: "
                        "stored rows are kept and a re-run skips them"
                    ) from exc
                logger.warning("%s failed (%s: %s); retry %d/%d in %.1fs", what, type(exc).__name__, exc, attempt, self.attempts - 1, delay)
                time.sleep(delay * (0.5 + random.random() / 2))
                delay = min(delay * 2, self.max_delay)
        raise AssertionError("unreachable")  # pragma: no cover


_SCALAR = (str, int, float, bool)


def validate_filter_dict(flt: Mapping[str, Any]) -> dict[str, Any]:
    """Check a ``{metadata_key: value}`` filter: str keys, scalar (or list-of-scalar) values."""
    out: dict[str, Any] = {}
    for key, value in flt.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"filter keys must be non-empty strings, got {key!r}")
        if isinstance(value, list):
            if not value or not all(isinstance(v, _SCALAR) for v in value):
                raise ValueError(f"filter value for {key!r} must be a scalar or a non-empty list of scalars")
        elif not isinstance(value, _SCALAR):
            raise ValueError(
                f"filter value for {key!r} must be str, int, float or bool, got {type(value).__name__}"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"filter value for {key!r} must be finite")
        out[key] = value
    return out


def _check_metadata(meta: object, position: int) -> dict[str, Any]:
    if meta is None:
        return {}
    if not isinstance(meta, Mapping):
        raise TypeError(f"metadatas[{position}] must be a dict, got {type(meta).__name__}")
    for key, value in meta.items():
        if not isinstance(key, str):
            raise TypeError(f"metadatas[{position}] has a non-str key {key!r}; metadata keys must be strings")
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"metadatas[{position}][{key!r}] is not JSON-serialisable ({type(value).__name__}); "
                "store str, int, float, bool, None, or lists/dicts of them"
            ) from exc
    return dict(meta)


def _show_progress(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class _Writer:
    """Writes batches on one background thread so encoding of the next batch overlaps the
    write of this one. At most ``depth`` batches wait (bounded memory); the first error is
    re-raised on the caller's thread."""

    def __init__(self, write: Callable[[Sequence[Record]], None], depth: int = 2) -> None:
        self._write = write
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bge-writer")
        self._pending: list[Future[None]] = []
        self._depth = depth

    def submit(self, records: Sequence[Record]) -> None:
        self._pending.append(self._pool.submit(self._write, records))
        while len(self._pending) > self._depth:
            self._pending.pop(0).result()

    def close(self) -> None:
        try:
            for fut in self._pending:
                fut.result()
        finally:
            self._pending.clear()
            self._pool.shutdown(wait=True, cancel_futures=True)


class VectorIndex:
    """An index of texts in one collection of a vector store, encoded by a BGE encoder.

    Subclasses (``bge_qdrant.QdrantIndex``, ``bge_milvus.MilvusIndex``) only build the
    :class:`Store`. Nothing touches the store or the model in the constructor.

    Args:
        store: the store adapter.
        encoder: a ``BGEM3Encoder`` (dense, sparse, ColBERT) or ``DenseEncoder`` (dense only).
        dense / sparse / colbert: which outputs to store; ``sparse`` and ``colbert`` are
            switched off automatically for encoders that lack them.
        show_progress: progress bars (default: on when stderr is a terminal).
        write_batch_size: rows per store write.
        chunk_size: texts encoded per step while streaming (bounds memory).
        retry: backoff policy for transient write errors.
    """

    def __init__(
        self,
        store: Store,
        encoder: IndexEncoder,
        *,
        dense: bool = True,
        sparse: bool = True,
        colbert: bool = True,
        show_progress: bool | None = None,
        write_batch_size: int = 64,
        chunk_size: int = 256,
        retry: RetryPolicy | None = None,
    ) -> None:
        if write_batch_size < 1 or chunk_size < 1:
            raise ValueError("write_batch_size and chunk_size must be >= 1")
        self.store = store
        self.encoder = encoder
        self.dense = dense
        self.sparse = sparse and bool(getattr(encoder, "supports_sparse", False))
        self.colbert = colbert and bool(getattr(encoder, "supports_colbert", False))
        if not (self.dense or self.sparse):
            raise ValueError("an index needs dense or sparse vectors (ColBERT only reranks)")
        self.show_progress = show_progress
        self.write_batch_size = write_batch_size
        self.chunk_size = chunk_size
        self.retry = retry or RetryPolicy()
        self._ensured = False
        self._ensure_lock = threading.Lock()

    # -- collection ------------------------------------------------------------------------
    @property
    def spec(self) -> CollectionSpec:
        """The vector layout this index writes."""
        return CollectionSpec(
            dense_dim=int(self.encoder.dim) if self.dense else None,
            sparse=self.sparse,
            colbert_dim=int(self.encoder.colbert_dim) if self.colbert else None,
        )

    def ensure_collection(self) -> None:
        """Create the collection if missing; refuse an existing one that does not fit."""
        with self._ensure_lock:
            self.store.ensure(self.spec)
            self._ensured = True

    def _ensure_once(self) -> None:
        if not self._ensured:
            self.ensure_collection()

    # -- ingest ----------------------------------------------------------------------------
    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: Iterable[Mapping[str, Any] | None] | None = None,
        ids: Iterable[str | int] | None = None,
        *,
        batch_size: int | None = None,
        skip_unchanged: bool = True,
        total: int | None = None,
    ) -> list[str]:
        """Encode and store ``texts`` (any iterable, streamed in bounded memory).

        Returns the stored ids (UUIDv5 of the user id, else of the text), in input order.
        When texts, metadatas and ids are sized, their lengths and all metadata are checked
        before anything is written. ``skip_unchanged`` skips texts already stored with the
        same text and metadata, so a re-run neither duplicates nor re-encodes. ``total`` (taken
        from ``len(texts)`` when it has one) lets the progress bar show the time left.
        """
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, got a single str; wrap it: [text]")
        sized = [x for x in (texts, metadatas, ids) if x is not None]
        if all(isinstance(x, Sequence) for x in sized):
            lengths = {len(x) for x in sized}  # type: ignore[arg-type]
            if len(lengths) > 1:
                raise ValueError(
                    f"texts, metadatas and ids must have the same length, got "
                    f"{len(texts)}, {None if metadatas is None else len(metadatas)}, "  # type: ignore[arg-type]
                    f"{None if ids is None else len(ids)}"  # type: ignore[arg-type]
                )
            if metadatas is not None:
                for i, meta in enumerate(metadatas):
                    _check_metadata(meta, i)
            for i, t in enumerate(texts):
                if not isinstance(t, str):
                    raise TypeError(f"texts[{i}] is {type(t).__name__}, not str")
        docs = _zip_documents(texts, metadatas, ids)
        if total is None and isinstance(texts, Sequence):
            total = len(texts)
        return self._ingest(docs, batch_size=batch_size, skip_unchanged=skip_unchanged, total=total)

    def add_documents(
        self,
        documents: Iterable[Document | Mapping[str, Any]],
        *,
        batch_size: int | None = None,
        skip_unchanged: bool = True,
        total: int | None = None,
    ) -> list[str]:
        """Store documents: :class:`Document` objects or dicts with ``text`` and optional
        ``metadata`` / ``id`` (LangChain ``Document``-like objects with ``page_content`` work too)."""

        def convert() -> Iterator[Document]:
            for i, doc in enumerate(documents):
                if isinstance(doc, Document):
                    yield doc
                elif isinstance(doc, Mapping):
                    if not isinstance(doc.get("text"), str):
                        raise TypeError(f"documents[{i}] needs a str 'text' field")
                    yield Document(doc["text"], _check_metadata(doc.get("metadata"), i), doc.get("id"))
                elif isinstance(getattr(doc, "page_content", None), str):
                    yield Document(doc.page_content, _check_metadata(getattr(doc, "metadata", None), i), getattr(doc, "id", None))
                else:
                    raise TypeError(f"documents[{i}] is {type(doc).__name__}; pass Document objects or dicts")

        if total is None and isinstance(documents, Sequence):
            total = len(documents)
        return self._ingest(convert(), batch_size=batch_size, skip_unchanged=skip_unchanged, total=total)

    def _ingest(
        self, docs: Iterable[Document], *, batch_size: int | None, skip_unchanged: bool, total: int | None = None
    ) -> list[str]:
        self._ensure_once()
        write_size = batch_size or self.write_batch_size
        out_ids: list[str] = []
        # Room for one chunk of writes in flight, so the next chunk encodes while they run.
        writer = _Writer(self._write_with_retry, depth=max(2, math.ceil(self.chunk_size / write_size)))
        bar = _Progress(_show_progress(self.show_progress), total)
        try:
            it = iter(docs)
            position = 0
            while chunk := list(itertools.islice(it, self.chunk_size)):
                rows = []
                for offset, doc in enumerate(chunk):
                    meta = _check_metadata(doc.metadata, position + offset)
                    if not isinstance(doc.text, str):
                        raise TypeError(f"texts[{position + offset}] is {type(doc.text).__name__}, not str")
                    rows.append((make_id(doc.id, doc.text), doc.text, meta, content_hash(doc.text, meta)))
                position += len(chunk)
                out_ids.extend(r[0] for r in rows)
                # The last occurrence of an id wins (as the store would do), encoded once.
                latest = {r[0]: r for r in rows}
                todo = list(latest.values())
                if skip_unchanged and todo:
                    stored = self.store.fetch_hashes([r[0] for r in todo])
                    todo = [r for r in todo if stored.get(r[0]) != r[3]]
                skipped = len(chunk) - len(todo)
                if todo:
                    # One encode call per chunk: its batches are length-sorted over the whole
                    # chunk (less padding than per write batch); writes overlap the next chunk.
                    records = self._encode_records(todo)
                    for start in range(0, len(records), write_size):
                        writer.submit(records[start : start + write_size])
                    bar.update(len(todo), sum(len(r[1]) for r in todo))
                if skipped:
                    bar.update(skipped, 0, skipped=True)
        finally:
            try:
                writer.close()
            finally:
                bar.close()
        return out_ids

    def _encode_records(self, rows: Sequence[tuple[str, str, dict[str, Any], str]]) -> list[Record]:
        out = self.encoder.encode_outputs(
            [r[1] for r in rows], query=False, dense=self.dense, sparse=self.sparse, colbert=self.colbert
        )
        records = []
        for i, (rid, text, meta, h) in enumerate(rows):
            sv = out.sparse[i] if self.sparse else None
            records.append(
                Record(
                    id=rid,
                    text=text,
                    metadata=meta,
                    hash=h,
                    dense=out.dense[i] if (self.dense and out.dense is not None) else None,
                    sparse=sv if sv is not None and len(sv) > 0 else None,
                    colbert=out.colbert[i] if self.colbert else None,
                )
            )
        return records

    def _write_with_retry(self, records: Sequence[Record]) -> None:
        self.retry.run(lambda: self.store.upsert(records), self.store.is_transient, f"writing {len(records)} rows")

    # -- search ----------------------------------------------------------------------------
    def plan(
        self,
        query: str,
        k: int = 10,
        *,
        mode: Mode = "hybrid",
        fusion: Fusion = "rrf",
        rrf_k: int = DEFAULT_RRF_K,
        weights: tuple[float, float] = (1.0, 1.0),
        filter: Any = None,
        prefetch_limit: int | None = None,
        limit: int | None = None,
    ) -> SearchRequest:
        """Validate a search and encode the query once (all outputs the mode needs)."""
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        if not query.strip():
            raise ValueError("query is empty; pass the text to search for")
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}; use one of {', '.join(FUSIONS)}")
        if mode in ("dense", "hybrid") and not self.dense:
            raise ValueError(f"mode {mode!r} needs dense vectors but this index stores none")
        if mode in ("sparse", "hybrid") and not self.sparse:
            raise ValueError(
                f"mode {mode!r} needs sparse vectors but this index has none "
                "(use a BGEM3Encoder with sparse=True, or mode='dense')"
            )
        if mode == "colbert" and not self.colbert:
            raise ValueError("mode 'colbert' needs ColBERT vectors; create the index with a BGEM3Encoder and colbert=True")
        if isinstance(filter, Mapping):
            filter = validate_filter_dict(filter)
        want_dense = self.dense and mode in ("dense", "hybrid", "colbert")
        want_sparse = self.sparse and mode in ("sparse", "hybrid", "colbert")
        want_colbert = mode == "colbert"
        out = self.encoder.encode_outputs([query], query=True, dense=want_dense, sparse=want_sparse, colbert=want_colbert)
        limit = limit or k
        return SearchRequest(
            mode=mode,
            limit=limit,
            dense=out.dense[0] if want_dense and out.dense is not None else None,
            sparse=out.sparse[0] if want_sparse else None,
            colbert=out.colbert[0] if want_colbert else None,
            fusion=fusion,
            rrf_k=rrf_k,
            weights=(float(weights[0]), float(weights[1])),
            prefetch_limit=max(prefetch_limit or max(4 * limit, 100), limit),
            filter=filter,
        )

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        mode: Mode = "hybrid",
        fusion: Fusion = "rrf",
        rrf_k: int = DEFAULT_RRF_K,
        weights: tuple[float, float] = (1.0, 1.0),
        rerank: RerankerLike | None = None,
        rerank_candidates: int | None = None,
        filter: Any = None,
        prefetch_limit: int | None = None,
    ) -> list[Hit]:
        """Search the index.

        Modes: ``dense``, ``sparse``, ``hybrid`` (dense + sparse fused by RRF with ``rrf_k``,
        DBSF, or ``weighted`` sums with ``weights=(dense, sparse)``), ``colbert`` (hybrid
        candidates reranked by ColBERT MaxSim). ``rerank`` adds a cross-encoder pass over the
        top ``rerank_candidates`` (default ``max(k, 20)``) hits. ``filter`` is a store-native
        filter or a ``{metadata_key: value}`` dict.
        """
        limit = max(k, rerank_candidates or 20) if rerank is not None else k
        request = self.plan(
            query, k, mode=mode, fusion=fusion, rrf_k=rrf_k, weights=weights, filter=filter,
            prefetch_limit=prefetch_limit, limit=limit,
        )
        hits = self.store.query(request)
        if rerank is not None:
            hits = rerank_hits(rerank, query, hits)
        return hits[:k]

    # -- rows ------------------------------------------------------------------------------
    def get(self, ids: Sequence[str]) -> list[Hit]:
        """Stored rows by id (in the order given; missing ids are left out)."""
        return self.store.get(_check_ids(ids))

    def delete(self, ids: Sequence[str]) -> None:
        """Remove rows by id."""
        self.store.delete(_check_ids(ids))

    def count(self) -> int:
        """Number of stored rows."""
        return self.store.count()

    def close(self) -> None:
        """Release what the store opened itself (a client created from a URI); idempotent."""
        closer = getattr(self.store, "close", None)
        if callable(closer):
            closer()

    def read_settings(self) -> dict[str, Any] | None:
        """Settings recorded with the collection (see :meth:`Store.write_settings`)."""
        return self.store.read_settings()

    def write_settings(self, settings: dict[str, Any]) -> None:
        """Record settings (for example the model and max tokens used by ``bge index``)."""
        self.store.write_settings(settings)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(store={self.store!r}, encoder={self.encoder!r})"


def rerank_hits(reranker: RerankerLike, query: str, hits: list[Hit]) -> list[Hit]:
    """Reorder hits by cross-encoder score; keeps earlier stage scores in ``Hit.scores``."""
    if not hits:
        return hits
    from bge_core.ranking import top_n_order

    scores = reranker.score([(query, h.text) for h in hits])
    out = []
    for i in top_n_order(scores):
        h, s = hits[i], float(scores[i])
        out.append(Hit(h.id, s, h.text, h.metadata, {**h.scores, "rerank": s}))
    return out


def _check_ids(ids: Sequence[str]) -> list[str]:
    if isinstance(ids, str):
        raise TypeError("ids must be a list of strings; wrap it: [id]")
    out = list(ids)
    for i, x in enumerate(out):
        if not isinstance(x, str):
            raise TypeError(f"ids[{i}] is {type(x).__name__}, not str")
    return out


def _zip_documents(
    texts: Iterable[str], metadatas: Iterable[Mapping[str, Any] | None] | None, ids: Iterable[str | int] | None
) -> Iterator[Document]:
    t_it = iter(texts)
    m_it = iter(metadatas) if metadatas is not None else None
    i_it = iter(ids) if ids is not None else None
    sentinel = object()
    for pos in itertools.count():
        text = next(t_it, sentinel)
        meta = next(m_it, sentinel) if m_it is not None else None
        uid = next(i_it, sentinel) if i_it is not None else None
        if text is sentinel:
            if (m_it is not None and meta is not sentinel) or (i_it is not None and uid is not sentinel):
                raise ValueError(f"metadatas/ids are longer than texts (texts ended at {pos})")
            return
        if meta is sentinel or uid is sentinel:
            raise ValueError(f"metadatas/ids ended before texts (at position {pos})")
        # Metadata is validated (and copied) by _ingest, with its position in the error.
        yield Document(cast(str, text), cast(dict[str, Any], meta or {}), cast("str | int | None", uid))


class _Progress:
    """Documents done, their rate and (with a total) the time left; token rate estimated."""

    def __init__(self, enabled: bool, total: int | None = None) -> None:
        self._bar: Any = None
        self._chars = 0
        self._start = time.perf_counter()
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, unit="doc", desc="indexing", dynamic_ncols=True)

    def update(self, docs: int, chars: int, skipped: bool = False) -> None:
        if self._bar is None:
            return
        self._chars += chars
        self._bar.update(docs)
        rate = self._chars / max(time.perf_counter() - self._start, 1e-9)
        self._bar.set_postfix_str(f"{rate / 4:,.0f} tok/s (est)" + (" skipping stored" if skipped else ""))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()



