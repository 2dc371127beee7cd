"""``MilvusIndex``: a :class:`bge_core.index.VectorIndex` over a Milvus collection."""

from __future__ import annotations

from typing import Any

from bge_core.index import IndexEncoder, RetryPolicy, VectorIndex
from bge_milvus.store import MilvusStore

__all__ = ["MilvusIndex"]


class MilvusIndex(VectorIndex):
    """BGE texts in a Milvus collection (Milvus Lite ``./x.db`` or a Milvus server).

    ``client`` is a ``pymilvus.MilvusClient`` you created. Nothing is called on it, and no
    model work happens, in the constructor: the collection is created (or validated) on the
    first write or by :meth:`ensure_collection`. ColBERT token vectors go to the companion
    collection ``<collection_name>_colbert``. See :class:`bge_milvus.store.MilvusStore` for
    the layout and the store options (``dense_index``, ``metric``, ``ef``, ``timeout``).

    Example::

        from pymilvus import MilvusClient
        index = MilvusIndex(MilvusClient("./bge.db"), "docs", BGEM3Encoder("BAAI/bge-m3"))
        index.add_texts(["..."])
        hits = index.search("question", k=5, mode="colbert")
    """

    store: MilvusStore

    def __init__(
        self,
        client: Any,
        collection_name: str,
        encoder: IndexEncoder,
        *,
        dense: bool = True,
        sparse: bool = True,
        colbert: bool = True,
        colbert_collection: str | None = None,
        dense_index: str = "AUTOINDEX",
        metric: str = "IP",
        ef: int = 128,
        timeout: float | None = None,
        show_progress: bool | None = None,
        write_batch_size: int = 64,
        chunk_size: int = 256,
        retry: RetryPolicy | None = None,
        owns_client: bool = False,
        label: str | None = None,
    ) -> None:
        store = MilvusStore(
            client,
            collection_name,
            colbert_collection=colbert_collection,
            dense_index=dense_index,
            metric=metric,
            ef=ef,
            timeout=timeout,
            owns_client=owns_client,
            label=label,
        )
        super().__init__(
            store,
            encoder,
            dense=dense,
            sparse=sparse,
            colbert=colbert,
            show_progress=show_progress,
            write_batch_size=write_batch_size,
            chunk_size=chunk_size,
            retry=retry,
        )

    @property
    def collection_name(self) -> str:
        """The main collection."""
        return self.store.collection_name
