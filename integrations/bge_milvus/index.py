"""``MilvusIndex``: a :class:`bge_core.index.VectorIndex` over a Milvus collection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bge_core.index import IndexEncoder, IndexKwargs, IndexOptions, VectorIndex
from bge_milvus.store import MilvusStore

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["MilvusIndex"]


class MilvusIndex(VectorIndex):
    """BGE texts in a Milvus collection (Milvus Lite ``./x.db`` or a Milvus server).

    ``client`` is a ``pymilvus.MilvusClient`` you created. Nothing is called on it, and no
    model work happens, in the constructor: the collection is created (or validated) on the
    first write or by :meth:`ensure_collection`. ColBERT token vectors go to the companion
    collection ``<collection_name>_colbert``. See :class:`bge_milvus.store.MilvusStore` for
    the layout and the store options (``dense_index``, ``metric``, ``ef``, ``timeout``);
    ``options`` / the index keywords (``dense``, ``sparse``, ``colbert``, ``show_progress``,
    ``write_batch_size``, ``chunk_size``, ``retry``) are :class:`~bge_core.index.IndexOptions`.

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
        colbert_collection: str | None = None,
        dense_index: str = "AUTOINDEX",
        metric: str = "IP",
        ef: int = 128,
        timeout: float | None = None,
        owns_client: bool = False,
        label: str | None = None,
        options: IndexOptions | None = None,
        **kwargs: Unpack[IndexKwargs],
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
        super().__init__(store, encoder, options=options, **kwargs)

    @property
    def collection_name(self) -> str:
        """The main collection."""
        return self.store.collection_name
