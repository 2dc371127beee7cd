"""Store-independent index logic shared by every vector-store adapter.

A store adapter implements the small :class:`Store` protocol (translate to its client's
calls); :class:`VectorIndex` does the rest once for all stores: input validation,
deterministic ids, streaming ingest with one encoder pass per text, skipping unchanged
texts on re-runs, overlap of encoding with writes, bounded retries of every idempotent store
call, progress bars, the search plan (one :class:`~bge_core.search_options.SearchOptions`
value: modes, fusion defaults, optional cross-encoder rerank), batch search and the ``Hit`` type.
"""

from __future__ import annotations

import dataclasses
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
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol, TypedDict, TypeVar, cast, runtime_checkable

import numpy as np

from bge_core.errors import BGEError, StoreError
from bge_core.fusion import DEFAULT_RRF_K
from bge_core.search_options import (
    FUSIONS,
    MODES,
    Fusion,
    Mode,
    RerankerLike,
    SearchKwargs,
    SearchOptions,
    validate_filter_dict,
)
from bge_core.types import FloatArray, Hit, M3Output, SparseVector

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "DEFAULT_RRF_K",
    "FUSIONS",
    "ID_NAMESPACE",
    "INDEX_OPTION_NAMES",
    "MODES",
    "BatchStore",
    "CollectionSpec",
    "Document",
    "DroppableStore",
    "EncodedQueries",
    "Fusion",
    "Hashed",
    "IndexEncoder",
    "IndexKwargs",
    "IndexOptions",
    "Mode",
    "Record",
    "RerankerLike",
    "RetryPolicy",
    "SearchKwargs",
    "SearchOptions",
    "SearchRequest",
    "Store",
    "VectorIndex",
    "close_on_error",
    "content_hash",
    "make_id",
    "split_unchanged",
    "validate_filter_dict",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
# Mode, Fusion, MODES, FUSIONS, RerankerLike and validate_filter_dict live in
# bge_core.search_options and stay importable from here.
_REEXPORTED = (FUSIONS, MODES, Fusion, Mode, RerankerLike, validate_filter_dict)

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


class Hashed(Protocol):
    """A row with a deterministic id and a content hash (:class:`Record`, rows about to be encoded)."""

    @property
    def id(self) -> str: ...

    @property
    def hash(self) -> str: ...


HashedT = TypeVar("HashedT", bound=Hashed)


def split_unchanged(
    rows: Sequence[HashedT], fetch_hashes: Callable[[list[str]], Mapping[str, str]]
) -> tuple[list[HashedT], list[HashedT]]:
    """``(to_write, unchanged)``: the rows whose id the store does not hold with the same content
    hash, and those it does (a re-run skips them). ``fetch_hashes`` (``Store.fetch_hashes``,
    under whatever retry the caller uses) is called once with all ids, and not at all for no rows."""
    if not rows:
        return [], []
    stored = fetch_hashes([r.id for r in rows])
    to_write: list[HashedT] = []
    unchanged: list[HashedT] = []
    for r in rows:
        (unchanged if stored.get(r.id) == r.hash else to_write).append(r)
    return to_write, unchanged


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
class EncodedQueries:
    """Queries encoded once (:meth:`VectorIndex.encode_queries`), to search them in several
    modes without encoding them again: pass it to :meth:`VectorIndex.search_batch`."""

    texts: tuple[str, ...]
    outputs: M3Output
    dense: bool
    sparse: bool
    colbert: bool

    def __len__(self) -> int:
        return len(self.texts)


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
    #: The caller's options as given (``None`` for requests built by hand).
    options: SearchOptions | None = None

    def __post_init__(self) -> None:
        # The same refusal on every store (a store client would take True as 1, or fail raw).
        for name in ("limit", "prefetch_limit"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")


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
        """Whether a failed call may pass when retried (timeouts, resets, 5xx)."""
        ...

    def read_settings(self) -> dict[str, Any] | None:
        """The settings recorded with the collection (model, outputs, ...), or None."""
        ...

    def write_settings(self, settings: dict[str, Any]) -> None:
        """Record ``settings`` (JSON-serialisable) with the collection."""
        ...


@runtime_checkable
class BatchStore(Store, Protocol):
    """A store that runs many planned searches in one round trip (optional: ``VectorIndex``
    loops over :meth:`Store.query` for stores without it)."""

    def query_batch(self, requests: Sequence[SearchRequest]) -> list[list[Hit]]:
        """Run ``requests``; one hit list per request, in order."""
        ...


@runtime_checkable
class DroppableStore(Store, Protocol):
    """A store that can delete its whole collection (optional: ``bge drop`` and
    ``bge index --recreate`` need it; every bundled store has it)."""

    def drop(self) -> bool:
        """Delete the collection with everything that belongs to it (companion collections,
        the settings record); True when something was deleted, False when there was nothing.
        Never creates a store or a collection."""
        ...


_WRITE_HINT = "check the store and run again: stored rows are kept and a re-run skips them"
_READ_HINT = "check the store and try again"
#: Errors a read lets through unchanged when not transient: our own errors (they say how to
#: fix the problem) and bad arguments (a filter the store cannot express, ...).
_READ_PASSTHROUGH: tuple[type[BaseException], ...] = (BGEError, ValueError, TypeError)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff (with jitter) for transient store errors.

    Applied by :class:`VectorIndex` to every idempotent store call: writes (upserts by id),
    reads (hash fetches, searches, gets, counts, settings) and deletes. ``sleep`` and
    ``jitter`` are injectable so tests never really wait.
    """

    attempts: int = 5
    initial_delay: float = 0.2
    max_delay: float = 5.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)
    jitter: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or self.attempts < 1:
            raise ValueError(f"attempts must be an int >= 1 (1 means no retry), got {self.attempts!r}")
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("initial_delay and max_delay must be >= 0 seconds")

    def run(
        self,
        fn: Callable[[], T],
        is_transient: Callable[[BaseException], bool],
        what: str,
        *,
        passthrough: tuple[type[BaseException], ...] = (),
        hint: str = _WRITE_HINT,
    ) -> T:
        """Call ``fn``; retry transient failures; raise :class:`StoreError` on a permanent one
        (errors of a ``passthrough`` type are re-raised as they are)."""
        delay = self.initial_delay
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except Exception as exc:
                if not is_transient(exc):
                    if isinstance(exc, passthrough):
                        raise
                    raise StoreError(f"{what} failed permanently: {type(exc).__name__}: {exc}") from exc
                if attempt == self.attempts:
                    raise StoreError(
                        f"{what} still failing after {self.attempts} attempts ({type(exc).__name__}: {exc}); {hint}"
                    ) from exc
                logger.warning(
                    "%s failed (%s: %s); retry %d/%d in %.1fs",
                    what,
                    type(exc).__name__,
                    exc,
                    attempt,
                    self.attempts - 1,
                    delay,
                )
                self.sleep(delay * (0.5 + self.jitter() / 2))
                delay = min(delay * 2, self.max_delay)
        raise AssertionError("unreachable")  # pragma: no cover


class IndexKwargs(TypedDict, total=False):
    """The keyword form of :class:`IndexOptions`: the options every index constructor takes
    (``VectorIndex``, ``QdrantIndex``, ``MilvusIndex``, ``QdrantEdgeIndex``, ``open_index``)."""

    dense: bool
    sparse: bool
    colbert: bool
    show_progress: bool | None
    write_batch_size: int
    chunk_size: int
    retry: RetryPolicy | None


@dataclass(frozen=True)
class IndexOptions:
    """How an index writes: built once, validated, shared by every index class.

    Args:
        dense / sparse / colbert: which outputs to store; ``sparse`` and ``colbert`` are
            switched off automatically for encoders that lack them.
        show_progress: progress bars (default: on when stderr is a terminal).
        write_batch_size: rows per store write.
        chunk_size: texts encoded per step while streaming (bounds memory).
        retry: backoff policy for transient store errors (default: ``RetryPolicy()``).
    """

    dense: bool = True
    sparse: bool = True
    colbert: bool = True
    show_progress: bool | None = None
    write_batch_size: int = 64
    chunk_size: int = 256
    retry: RetryPolicy | None = None

    def __post_init__(self) -> None:
        if self.write_batch_size < 1 or self.chunk_size < 1:
            raise ValueError("write_batch_size and chunk_size must be >= 1")

    @classmethod
    def from_kwargs(cls, base: IndexOptions | None = None, /, **kwargs: Any) -> IndexOptions:
        """``base`` (default: the defaults) with ``kwargs`` applied; unknown names are refused."""
        unknown = sorted(set(kwargs) - set(INDEX_OPTION_NAMES))
        if unknown:
            raise TypeError(
                f"unexpected index option(s) {', '.join(unknown)}; the options are: {', '.join(INDEX_OPTION_NAMES)}"
            )
        if base is None:
            return cls(**kwargs)
        if not isinstance(base, IndexOptions):
            raise TypeError(f"options must be a bge_core.index.IndexOptions, got {type(base).__name__}")
        return dataclasses.replace(base, **kwargs) if kwargs else base


#: The names :class:`IndexOptions` (and the keyword form of the index constructors) accept.
INDEX_OPTION_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(IndexOptions))


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


def progress_enabled(flag: bool | None) -> bool:
    """``flag`` if given, else whether stderr is a terminal (progress bars only for people)."""
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


class _Row(NamedTuple):
    """A text of an ingest chunk, ready to encode."""

    id: str
    text: str
    metadata: dict[str, Any]
    hash: str


class VectorIndex:
    """An index of texts in one collection of a vector store, encoded by a BGE encoder.

    Subclasses (``bge_qdrant.QdrantIndex``, ``bge_milvus.MilvusIndex``) only build the
    :class:`Store`. Nothing touches the store or the model in the constructor.

    Args:
        store: the store adapter.
        encoder: a ``BGEM3Encoder`` (dense, sparse, ColBERT) or ``DenseEncoder`` (dense only).
        options: an :class:`IndexOptions` (default: the class's ``default_options``);
            keywords given too override it.
        **kwargs: the keyword form of :class:`IndexOptions` (:class:`IndexKwargs`): ``dense`` /
            ``sparse`` / ``colbert``, ``show_progress``, ``write_batch_size``, ``chunk_size``,
            ``retry``.
    """

    #: The options an index of this class starts from (a subclass may set other defaults).
    default_options: ClassVar[IndexOptions] = IndexOptions()

    def __init__(
        self,
        store: Store,
        encoder: IndexEncoder,
        *,
        options: IndexOptions | None = None,
        **kwargs: Unpack[IndexKwargs],
    ) -> None:
        opts = IndexOptions.from_kwargs(self.default_options if options is None else options, **kwargs)
        self.options = opts
        self.store = store
        self.encoder = encoder
        self.dense = opts.dense
        self.sparse = opts.sparse and bool(getattr(encoder, "supports_sparse", False))
        self.colbert = opts.colbert and bool(getattr(encoder, "supports_colbert", False))
        if not (self.dense or self.sparse):
            raise ValueError("an index needs dense or sparse vectors (ColBERT only reranks)")
        self.show_progress = opts.show_progress
        self.write_batch_size = opts.write_batch_size
        self.chunk_size = opts.chunk_size
        self.retry = opts.retry or RetryPolicy()
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
            spec = self.spec
            self._read(lambda: self.store.ensure(spec), "checking the collection")
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
        documents: Iterable[Document | Mapping[str, Any] | Any],
        *,
        batch_size: int | None = None,
        skip_unchanged: bool = True,
        total: int | None = None,
    ) -> list[str]:
        """Store documents: :class:`Document` objects, dicts with ``text`` and optional
        ``metadata`` / ``id``, LangChain ``Document``s (``page_content``, ``metadata``, ``id``)
        or LlamaIndex nodes (``TextNode`` / ``Document``: text, ``metadata``, ``node_id`` as id)."""

        def convert() -> Iterator[Document]:
            for i, doc in enumerate(documents):
                yield _as_document(doc, i)

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
        bar = _Progress(progress_enabled(self.show_progress), total)
        try:
            it = iter(docs)
            position = 0
            while chunk := list(itertools.islice(it, self.chunk_size)):
                rows = []
                for offset, doc in enumerate(chunk):
                    meta = _check_metadata(doc.metadata, position + offset)
                    if not isinstance(doc.text, str):
                        raise TypeError(f"texts[{position + offset}] is {type(doc.text).__name__}, not str")
                    rows.append(_Row(make_id(doc.id, doc.text), doc.text, meta, content_hash(doc.text, meta)))
                position += len(chunk)
                out_ids.extend(r.id for r in rows)
                # The last occurrence of an id wins (as the store would do), encoded once.
                todo = list({r.id: r for r in rows}.values())
                if skip_unchanged:
                    todo, _ = split_unchanged(todo, self._fetch_hashes)
                skipped = len(chunk) - len(todo)
                if todo:
                    # One encode call per chunk: its batches are length-sorted over the whole
                    # chunk (less padding than per write batch); writes overlap the next chunk.
                    records = self._encode_records(todo)
                    for start in range(0, len(records), write_size):
                        writer.submit(records[start : start + write_size])
                    bar.update(len(todo), sum(len(r.text) for r in todo))
                if skipped:
                    bar.update(skipped, 0, skipped=True)
        finally:
            try:
                writer.close()
            finally:
                bar.close()
        # A store that indexes in bulk (Qdrant Edge builds its HNSW graph) does it once per call.
        finish = getattr(self.store, "finish_ingest", None)
        if callable(finish):
            finish()
        return out_ids

    def _encode_records(self, rows: Sequence[_Row]) -> list[Record]:
        out = self.encoder.encode_outputs(
            [r.text for r in rows], query=False, dense=self.dense, sparse=self.sparse, colbert=self.colbert
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

    def _fetch_hashes(self, ids: list[str]) -> dict[str, str]:
        return self._read(lambda: self.store.fetch_hashes(ids), f"reading {len(ids)} stored hashes")

    def _read(self, fn: Callable[[], T], what: str) -> T:
        """An idempotent store call (read, delete, collection check) under the retry policy."""
        return self.retry.run(fn, self.store.is_transient, what, passthrough=_READ_PASSTHROUGH, hint=_READ_HINT)

    # -- search ----------------------------------------------------------------------------
    def _check_options(self, options: SearchOptions) -> None:
        """Refuse options this index cannot serve (before anything is encoded)."""
        mode = options.mode
        if mode in ("dense", "hybrid") and not self.dense:
            raise ValueError(f"mode {mode!r} needs dense vectors but this index stores none; use mode='sparse'")
        if mode in ("sparse", "hybrid") and not self.sparse:
            raise ValueError(
                f"mode {mode!r} needs sparse vectors but this index has none "
                "(use a BGEM3Encoder with sparse=True, or mode='dense')"
            )
        if mode == "colbert" and not self.colbert:
            raise ValueError(
                "mode 'colbert' needs ColBERT vectors; create the index with a BGEM3Encoder and colbert=True"
            )

    def _needs(self, modes: Iterable[str]) -> tuple[bool, bool, bool]:
        modes = set(modes)
        return (
            self.dense and bool(modes & {"dense", "hybrid", "colbert"}),
            self.sparse and bool(modes & {"sparse", "hybrid", "colbert"}),
            "colbert" in modes,
        )

    def encode_queries(self, queries: Sequence[str], *, modes: Iterable[Mode] = ("hybrid",)) -> EncodedQueries:
        """Encode ``queries`` in ONE encoder pass with every output ``modes`` need, for
        :meth:`search_batch` in any of those modes (``bge eval`` searches four modes this way)."""
        if isinstance(queries, str):
            raise TypeError("queries must be a list of strings, got a single str; wrap it: [query]")
        texts = tuple(queries)
        for i, query in enumerate(texts):
            where = "query" if len(texts) == 1 else f"queries[{i}]"
            if not isinstance(query, str):
                raise TypeError(f"{where} must be a str, got {type(query).__name__}")
            if not query.strip():
                raise ValueError(f"{where} is empty; pass the text to search for")
        modes = list(modes)
        for mode in modes:
            self._check_options(SearchOptions(mode=mode))
        dense, sparse, colbert = self._needs(modes)
        out = self.encoder.encode_outputs(list(texts), query=True, dense=dense, sparse=sparse, colbert=colbert)
        return EncodedQueries(texts, out, dense, sparse, colbert)

    def _plan_all(self, queries: Sequence[str] | EncodedQueries, options: SearchOptions) -> list[SearchRequest]:
        """Validate the queries and encode them in ONE encoder pass (all outputs the mode needs)."""
        self._check_options(options)
        want_dense, want_sparse, want_colbert = self._needs([options.mode])
        if isinstance(queries, EncodedQueries):
            if (
                (want_dense and not queries.dense)
                or (want_sparse and not queries.sparse)
                or (want_colbert and not queries.colbert)
            ):
                raise ValueError(
                    f"these queries were encoded without the outputs mode {options.mode!r} needs; "
                    f"pass modes=[..., {options.mode!r}] to encode_queries"
                )
            encoded = queries
        else:
            encoded = self.encode_queries(queries, modes=[options.mode])
        out = encoded.outputs
        return [
            SearchRequest(
                mode=options.mode,
                limit=options.candidates,
                dense=out.dense[i] if want_dense and out.dense is not None else None,
                sparse=out.sparse[i] if want_sparse else None,
                colbert=out.colbert[i] if want_colbert else None,
                fusion=options.fusion,
                rrf_k=options.rrf_k,
                weights=options.weights,
                prefetch_limit=options.prefetch,
                filter=options.filter,
                options=options,
            )
            for i in range(len(encoded))
        ]

    def _query(self, request: SearchRequest) -> list[Hit]:
        return self._read(lambda: self.store.query(request), "searching")

    def plan(
        self, query: str, k: int | None = None, *, options: SearchOptions | None = None, **kwargs: Unpack[SearchKwargs]
    ) -> SearchRequest:
        """Validate a search and encode the query once: the request :meth:`search` sends."""
        return self._plan_all([query], _options(k, options, kwargs))[0]

    def search(
        self, query: str, k: int | None = None, *, options: SearchOptions | None = None, **kwargs: Unpack[SearchKwargs]
    ) -> list[Hit]:
        """Search the index.

        Options (keywords, or one :class:`~bge_core.search_options.SearchOptions` as
        ``options=``; keywords given too override it): ``k`` (default 10), ``mode``:
        ``dense``, ``sparse``, ``hybrid`` (default: dense + sparse fused by RRF with ``rrf_k``
        = 60, DBSF, or ``weighted`` sums with ``weights=(dense, sparse)``), ``colbert``
        (hybrid candidates reranked by ColBERT MaxSim). ``rerank`` adds a cross-encoder pass
        over the top ``rerank_candidates`` (default ``max(k, 20)``) hits. ``filter`` is a
        store-native filter or a ``{metadata_key: value}`` dict.
        """
        opts = _options(k, options, kwargs)
        request = self._plan_all([query], opts)[0]
        hits = self._query(request)
        if opts.rerank is not None:
            hits = rerank_hits(opts.rerank, query, hits)
        return hits[: opts.k]

    def search_batch(
        self,
        queries: Sequence[str] | EncodedQueries,
        k: int | None = None,
        *,
        options: SearchOptions | None = None,
        **kwargs: Unpack[SearchKwargs],
    ) -> list[list[Hit]]:
        """Search for many queries at once: one hit list per query, in order, each equal to
        ``search(query, ...)`` with the same options.

        All queries are encoded in one encoder pass; stores with a batch query (Qdrant's
        ``query_batch_points``, ...) get them in one round trip, others one by one. A
        ``rerank`` cross-encoder scores all (query, hit) pairs in one call. ``queries`` may be
        :meth:`encode_queries` output, to search several modes with one encoder pass.
        """
        if isinstance(queries, str):
            raise TypeError(
                "queries must be a list of strings, got a single str; use search(query) or wrap it: [query]"
            )
        opts = _options(k, options, kwargs)
        if not isinstance(queries, EncodedQueries):
            queries = list(queries)
        if len(queries) == 0:
            return []
        requests = self._plan_all(queries, opts)
        texts = list(queries.texts) if isinstance(queries, EncodedQueries) else queries
        batch = getattr(self.store, "query_batch", None)
        if callable(batch):
            results: list[list[Hit]] = self._read(lambda: batch(requests), f"searching {len(requests)} queries")
            if len(results) != len(requests):
                raise StoreError(f"the store answered {len(results)} of {len(requests)} queries; this is a store bug")
        else:
            results = [self._query(r) for r in requests]
        if opts.rerank is not None:
            results = rerank_batch(opts.rerank, texts, results)
        return [hits[: opts.k] for hits in results]

    # -- rows ------------------------------------------------------------------------------
    def get(self, ids: Sequence[str]) -> list[Hit]:
        """Stored rows by id (in the order given; missing ids are left out)."""
        wanted = _check_ids(ids)
        return self._read(lambda: self.store.get(wanted), f"reading {len(wanted)} rows")

    def delete(self, ids: Sequence[str]) -> None:
        """Remove rows by id (idempotent, so retried like a read)."""
        wanted = _check_ids(ids)
        self._read(lambda: self.store.delete(wanted), f"deleting {len(wanted)} rows")

    def count(self) -> int:
        """Number of stored rows."""
        return self._read(self.store.count, "counting rows")

    def close(self) -> None:
        """Release what the store opened itself (a client created from a URI); idempotent."""
        close_store(self.store)

    def drop(self) -> bool:
        """Delete the collection, its companions and its settings record (see
        :class:`DroppableStore`); True when something was deleted. The next write creates the
        collection anew."""
        store = self.store
        if not isinstance(store, DroppableStore):
            raise StoreError(f"{type(store).__name__} cannot drop its collection (it has no drop() method)")
        dropped = self._read(store.drop, "dropping the collection")
        with self._ensure_lock:
            self._ensured = False
        return dropped

    def read_settings(self) -> dict[str, Any] | None:
        """Settings recorded with the collection (see :meth:`Store.write_settings`)."""
        return self._read(self.store.read_settings, "reading the index settings")

    def write_settings(self, settings: dict[str, Any]) -> None:
        """Record settings (for example the model and max tokens used by ``bge index``)."""
        self.store.write_settings(settings)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(store={self.store!r}, encoder={self.encoder!r})"


def _options(k: int | None, options: SearchOptions | None, kwargs: Mapping[str, Any]) -> SearchOptions:
    """The search options of a call: ``options`` (or the defaults) with ``k`` and the keywords applied."""
    if options is not None and not isinstance(options, SearchOptions):
        raise TypeError(f"options must be a bge_core.search_options.SearchOptions, got {type(options).__name__}")
    changes = dict(kwargs)
    if k is not None:
        changes["k"] = k
    return SearchOptions.from_kwargs(options, **changes)


def close_store(store: object) -> None:
    """Call ``store.close()`` where the store has one (closing is optional in :class:`Store`)."""
    closer = getattr(store, "close", None)
    if callable(closer):
        closer()


class _Closable(Protocol):
    def close(self) -> None: ...


ClosableT = TypeVar("ClosableT", bound=_Closable)


def close_on_error(client: ClosableT, build: Callable[[ClosableT], T]) -> T:
    """``build(client)``; if that raises, close ``client`` first. For openers that create a
    client and hand it to a store or index that owns it (``open_store`` / ``open_index``)."""
    try:
        return build(client)
    except Exception:
        client.close()
        raise


def rerank_hits(reranker: RerankerLike, query: str, hits: list[Hit]) -> list[Hit]:
    """Reorder hits by cross-encoder score; keeps earlier stage scores in ``Hit.scores``."""
    if not hits:
        return hits
    return _reorder(hits, np.asarray(reranker.score([(query, h.text) for h in hits])))


def rerank_batch(reranker: RerankerLike, queries: Sequence[str], results: Sequence[list[Hit]]) -> list[list[Hit]]:
    """:func:`rerank_hits` for many queries, with ONE cross-encoder call over all pairs."""
    pairs = [(q, h.text) for q, hits in zip(queries, results) for h in hits]
    if not pairs:
        return [list(hits) for hits in results]
    scores = np.asarray(reranker.score(pairs))
    out, start = [], 0
    for hits in results:
        out.append(_reorder(hits, scores[start : start + len(hits)]) if hits else [])
        start += len(hits)
    return out


def _reorder(hits: list[Hit], scores: np.ndarray) -> list[Hit]:
    from bge_core.ranking import top_n_order

    out = []
    for i in top_n_order(scores):
        h, s = hits[i], float(scores[i])
        out.append(Hit(h.id, s, h.text, h.metadata, {**h.scores, "rerank": s}))
    return out


def _as_document(doc: Any, position: int) -> Document:
    """One input of ``add_documents`` as a :class:`Document` (duck-typed: no framework import)."""
    if isinstance(doc, Document):
        return doc
    if isinstance(doc, Mapping):
        if not isinstance(doc.get("text"), str):
            raise TypeError(f"documents[{position}] needs a str 'text' field")
        return Document(doc["text"], _check_metadata(doc.get("metadata"), position), doc.get("id"))
    if isinstance(getattr(doc, "page_content", None), str):  # LangChain Document
        return Document(
            doc.page_content, _check_metadata(getattr(doc, "metadata", None), position), getattr(doc, "id", None)
        )
    if isinstance(getattr(doc, "node_id", None), str) and callable(getattr(doc, "get_content", None)):
        # LlamaIndex TextNode / Document (BaseNode): the text without metadata, the node id.
        text = doc.text if isinstance(getattr(doc, "text", None), str) else doc.get_content()
        if not isinstance(text, str):
            raise TypeError(f"documents[{position}] is a {type(doc).__name__} without text; pass text nodes")
        return Document(text, _check_metadata(getattr(doc, "metadata", None), position), doc.node_id)
    raise TypeError(
        f"documents[{position}] is {type(doc).__name__}; pass bge_core Documents, dicts with 'text', "
        "LangChain Documents or LlamaIndex TextNodes"
    )


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
