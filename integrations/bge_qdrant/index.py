"""``QdrantIndex`` and ``AsyncQdrantIndex``: BGE indexes in one Qdrant collection."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from bge_core.index import (
    CollectionSpec,
    Document,
    IndexEncoder,
    IndexKwargs,
    IndexOptions,
    Record,
    SearchKwargs,
    SearchOptions,
    SearchRequest,
    VectorIndex,
)
from bge_core.types import Hit
from bge_qdrant.async_store import AsyncQdrantStore
from bge_qdrant.batch import BatchQdrantStore, aquery_batch
from bge_qdrant.dependency import AsyncQdrantClient, QdrantClient
from bge_qdrant.layout import QdrantLayout
from bge_qdrant.store import QdrantStore

if TYPE_CHECKING:
    from typing import (
        Unpack,  # Python 3.11+; annotations only (the package supports 3.10)
    )

__all__ = ["AsyncQdrantIndex", "QdrantIndex", "QdrantIndexOptions"]

T = TypeVar("T")


class QdrantIndexOptions(IndexKwargs, total=False):
    """Keyword options of :class:`QdrantIndex` and :class:`AsyncQdrantIndex` (one list for
    both constructors): the index options (:class:`~bge_core.index.IndexKwargs`, or one
    ``options=`` :class:`~bge_core.index.IndexOptions`), the layout options as in
    :class:`~bge_qdrant.QdrantLayout`, and ``owns_client`` (default False)."""

    sparse_idf: bool
    colbert_hnsw: bool
    colbert_on_disk: bool
    dense_on_disk: bool
    colbert_max_vectors: int | None
    create_options: Mapping[str, Any] | None
    owns_client: bool
    options: IndexOptions | None


_LAYOUT_OPTIONS = (
    "sparse_idf",
    "colbert_hnsw",
    "colbert_on_disk",
    "dense_on_disk",
    "colbert_max_vectors",
    "create_options",
)
#: Every option name (a TypedDict's annotations include its base's).
_OPTION_NAMES = tuple(QdrantIndexOptions.__annotations__)


def _split_options(options: QdrantIndexOptions) -> tuple[QdrantLayout, bool, dict[str, Any]]:
    """``(layout, owns_client, VectorIndex keyword arguments)`` from the constructor options."""
    unknown = sorted(set(options) - set(_OPTION_NAMES))
    if unknown:
        raise TypeError(f"unexpected option(s) {', '.join(unknown)}; the options are: {', '.join(_OPTION_NAMES)}")
    given: dict[str, Any] = dict(options)
    layout = {k: given.pop(k) for k in _LAYOUT_OPTIONS if k in given}
    layout["create_options"] = dict(layout.get("create_options") or {})
    owns_client = bool(given.pop("owns_client", False))
    return QdrantLayout(**layout), owns_client, given


class QdrantIndex(VectorIndex):
    """A BGE index in one Qdrant collection.

    ``client`` is a ``QdrantClient`` you created (``QdrantClient(":memory:")``,
    ``QdrantClient(path="./qdrant")`` or ``QdrantClient(url=...)``) and ``encoder`` a
    ``bge_core.BGEM3Encoder`` (dense + sparse + ColBERT) or ``bge_core.DenseEncoder``
    (dense only). Nothing is sent to Qdrant and no model runs in the constructor; the
    collection is created (or checked, :class:`~bge_core.errors.CollectionMismatchError`)
    by :meth:`ensure_collection` or the first write.

    Layout: named vectors ``dense`` (cosine), ``sparse`` (M3 lexical weights) and
    ``colbert`` (multivector, MAX_SIM, no HNSW graph unless ``colbert_hnsw``). Payload:
    ``text``, ``metadata`` (as given; dict filters match ``metadata.<key>``) and ``hash``.

    Long documents: Qdrant caps one multivector at 1,048,576 floats (1,024 vectors of
    1,024 dims for BGE-M3). A document with more ColBERT token vectors keeps its FIRST
    ``colbert_max_vectors`` (default: the cap) for ColBERT reranking, and a warning is
    logged once per index; its dense and sparse vectors cover the whole encoded text, so
    ingest never fails on length.

    Search (:meth:`search`): ``dense``, ``sparse``, ``hybrid`` (server-side RRF with
    ``rrf_k`` meaning ``1/(rrf_k + rank)``, or DBSF; ``weighted`` sums are computed from
    the two prefetch lists here, Qdrant has no weighted score fusion) and ``colbert``
    (hybrid candidates reranked by MaxSim in the same ``query_points`` call). Filters: a
    ``qdrant_client.models.Filter`` or a ``{metadata_key: value}`` dict. :meth:`search_batch`
    encodes many queries in one pass and sends them in one ``query_batch_points`` call.

    Args (options: :class:`QdrantIndexOptions`, shared with :class:`AsyncQdrantIndex`):
        client: the Qdrant client.
        collection_name: the collection.
        encoder: the BGE encoder.
        dense / sparse / colbert: which outputs to store.
        sparse_idf: Qdrant IDF modifier on the sparse vector (off by default).
        colbert_hnsw: build an HNSW graph on ColBERT vectors (off: they only rerank).
        colbert_on_disk / dense_on_disk: memory-map those vectors from disk.
        colbert_max_vectors: most ColBERT vectors kept per document (see above).
        create_options: extra ``create_collection`` arguments (shards, replication, ...).
        owns_client: close ``client`` in :meth:`close`.
        options / show_progress / write_batch_size / chunk_size / retry: the
            :class:`~bge_core.index.IndexOptions` (as for ``VectorIndex``).
    """

    store: QdrantStore

    def __init__(
        self,
        client: QdrantClient,
        collection_name: str,
        encoder: IndexEncoder,
        **options: Unpack[QdrantIndexOptions],
    ) -> None:
        if isinstance(client, AsyncQdrantClient):
            raise TypeError("QdrantIndex needs a QdrantClient; for an AsyncQdrantClient use AsyncQdrantIndex")
        layout, owns_client, core = _split_options(options)
        super().__init__(
            BatchQdrantStore(client, collection_name, layout=layout, owns_client=owns_client), encoder, **core
        )

    @property
    def client(self) -> QdrantClient:
        """The Qdrant client."""
        return self.store.client

    @property
    def collection_name(self) -> str:
        """The collection name."""
        return self.store.collection_name

    def write_settings(self, settings: dict[str, Any]) -> None:
        """Record settings in the collection's metadata (creating the collection if needed)."""
        self._ensure_once()
        super().write_settings(settings)


class _LoopBridge:
    """A synchronous :class:`bge_core.index.Store` that runs an :class:`AsyncQdrantStore`'s
    coroutines on the event loop of the caller, from the worker thread ``VectorIndex`` code
    runs on. This lets :class:`AsyncQdrantIndex` reuse ``VectorIndex`` whole (validation,
    ids, streaming ingest, retries, plan, rerank) while encoding stays off the loop."""

    def __init__(self, store: AsyncQdrantStore) -> None:
        self.store = store
        self.loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    def bind(self) -> None:
        """Remember the running loop (called on the loop before work moves to a thread)."""
        self.loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self.loop is None or threading.get_ident() == self._loop_thread:
            coro.close()
            raise RuntimeError("AsyncQdrantIndex methods are coroutines: await them from the event loop")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def ensure(self, spec: CollectionSpec) -> None:
        self._run(self.store.ensure(spec))

    def upsert(self, records: Sequence[Record]) -> None:
        self._run(self.store.upsert(records))

    def fetch_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        return self._run(self.store.fetch_hashes(ids))

    def query(self, request: SearchRequest) -> list[Hit]:
        return self._run(self.store.query(request))

    def query_batch(self, requests: Sequence[SearchRequest]) -> list[list[Hit]]:
        return self._run(aquery_batch(self.store.client, self.store.collection_name, requests))

    def get(self, ids: Sequence[str]) -> list[Hit]:
        return self._run(self.store.get(ids))

    def delete(self, ids: Sequence[str]) -> None:
        self._run(self.store.delete(ids))

    def count(self) -> int:
        return self._run(self.store.count())

    def is_transient(self, exc: BaseException) -> bool:
        return self.store.is_transient(exc)

    def read_settings(self) -> dict[str, Any] | None:
        return self._run(self.store.read_settings())

    def write_settings(self, settings: dict[str, Any]) -> None:
        self._run(self.store.write_settings(settings))

    def __repr__(self) -> str:
        return repr(self.store)


class AsyncQdrantIndex:
    """:class:`QdrantIndex` over an ``AsyncQdrantClient``: the same constructor and methods,
    as coroutines. Encoding runs in a worker thread (``asyncio.to_thread``) so the event
    loop keeps serving; every Qdrant call is awaited on the loop. Nothing is sent and no
    model runs in the constructor.
    """

    def __init__(
        self,
        client: AsyncQdrantClient,
        collection_name: str,
        encoder: IndexEncoder,
        **options: Unpack[QdrantIndexOptions],
    ) -> None:
        if isinstance(client, QdrantClient):
            raise TypeError("AsyncQdrantIndex needs an AsyncQdrantClient; for a QdrantClient use QdrantIndex")
        layout, owns_client, core = _split_options(options)
        self.store = AsyncQdrantStore(client, collection_name, layout=layout, owns_client=owns_client)
        self._bridge = _LoopBridge(self.store)
        self._core = VectorIndex(self._bridge, encoder, **core)

    @property
    def client(self) -> AsyncQdrantClient:
        """The Qdrant client."""
        return self.store.client

    @property
    def collection_name(self) -> str:
        """The collection name."""
        return self.store.collection_name

    @property
    def encoder(self) -> IndexEncoder:
        """The encoder."""
        return self._core.encoder

    @property
    def spec(self) -> CollectionSpec:
        """The vector layout this index writes."""
        return self._core.spec

    async def _in_thread(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self._bridge.bind()
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def ensure_collection(self) -> None:
        """Create the collection if missing; refuse an existing one that does not fit."""
        await self._in_thread(self._core.ensure_collection)

    async def add_texts(
        self,
        texts: Iterable[str],
        metadatas: Iterable[Mapping[str, Any] | None] | None = None,
        ids: Iterable[str | int] | None = None,
        *,
        batch_size: int | None = None,
        skip_unchanged: bool = True,
    ) -> list[str]:
        """See :meth:`bge_core.index.VectorIndex.add_texts`."""
        out: list[str] = await self._in_thread(
            self._core.add_texts, texts, metadatas, ids, batch_size=batch_size, skip_unchanged=skip_unchanged
        )
        return out

    async def add_documents(
        self,
        documents: Iterable[Document | Mapping[str, Any]],
        *,
        batch_size: int | None = None,
        skip_unchanged: bool = True,
    ) -> list[str]:
        """See :meth:`bge_core.index.VectorIndex.add_documents`."""
        out: list[str] = await self._in_thread(
            self._core.add_documents, documents, batch_size=batch_size, skip_unchanged=skip_unchanged
        )
        return out

    async def search(
        self, query: str, k: int | None = None, *, options: SearchOptions | None = None, **kwargs: Unpack[SearchKwargs]
    ) -> list[Hit]:
        """See :meth:`QdrantIndex.search` (``VectorIndex.search``)."""
        out: list[Hit] = await self._in_thread(self._core.search, query, k, options=options, **kwargs)
        return out

    async def search_batch(
        self,
        queries: Sequence[str],
        k: int | None = None,
        *,
        options: SearchOptions | None = None,
        **kwargs: Unpack[SearchKwargs],
    ) -> list[list[Hit]]:
        """See ``VectorIndex.search_batch``: one encoder pass, one ``query_batch_points`` call."""
        out: list[list[Hit]] = await self._in_thread(self._core.search_batch, queries, k, options=options, **kwargs)
        return out

    async def get(self, ids: Sequence[str]) -> list[Hit]:
        """Stored rows by id (in the order given; missing ids are left out)."""
        out: list[Hit] = await self._in_thread(self._core.get, ids)
        return out

    async def delete(self, ids: Sequence[str]) -> None:
        """Remove rows by id."""
        await self._in_thread(self._core.delete, ids)

    async def count(self) -> int:
        """Exact number of stored rows."""
        out: int = await self._in_thread(self._core.count)
        return out

    async def read_settings(self) -> dict[str, Any] | None:
        """Settings recorded with the collection."""
        out: dict[str, Any] | None = await self._in_thread(self._core.read_settings)
        return out

    async def write_settings(self, settings: dict[str, Any]) -> None:
        """Record settings in the collection's metadata (creating the collection if needed)."""
        await self.ensure_collection()
        await self.store.write_settings(settings)

    async def close(self) -> None:
        """Close the client if this index owns it."""
        await self.store.close()

    def __repr__(self) -> str:
        return f"AsyncQdrantIndex(store={self.store!r}, encoder={self._core.encoder!r})"
