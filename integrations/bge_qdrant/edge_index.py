"""``QdrantEdgeIndex``: a BGE index in a Qdrant Edge folder (HNSW in-process, no server)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self

from bge_core.index import IndexEncoder, IndexKwargs, IndexOptions, VectorIndex
from bge_qdrant.edge_store import (
    DEFAULT_BUILD_THRESHOLD,
    DEFAULT_DENSE_QUANTIZATION,
    DEFAULT_EF_CONSTRUCT,
    DEFAULT_MAX_SEGMENTS,
    DEFAULT_MERGED_SEGMENT_POINTS,
    DenseQuantization,
    EdgeStore,
    PayloadIndexType,
)
from bge_qdrant.layout import QdrantLayout

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["QdrantEdgeIndex"]


class QdrantEdgeIndex(VectorIndex):
    """A BGE index in a Qdrant Edge folder: Qdrant's engine inside this process.

    The same API as :class:`bge_qdrant.QdrantIndex` (``add_texts``, ``add_documents``,
    ``search`` with modes dense / sparse / hybrid / colbert and fusion rrf / dbsf / weighted,
    filters, ``rerank=``, ``get``, ``delete``, ``count``, settings) and the same collection
    layout (``dense`` cosine HNSW, ``sparse``, ``colbert`` MaxSim multivector without HNSW,
    payload ``text`` / ``metadata`` / ``hash``). Filters: a ``{metadata_key: value}`` dict or
    a ``qdrant_edge.Filter``.

    HNSW build: each ``add_texts`` / ``add_documents`` call ends by building the graph over
    what it wrote (with a progress line), and a long ingest also builds whenever
    ``build_threshold`` points were written since the last build; see
    :mod:`bge_qdrant.edge_store` for the measurements behind this choice.

    One process at a time may open ``path``; a second one gets a
    :class:`~bge_core.errors.StoreError` saying the folder is in use. Nothing is opened and no
    model runs in the constructor. Call :meth:`close` (or use ``with``) to release the folder.

    Args:
        path: the index folder (new, empty, or made by this class).
        encoder: a ``BGEM3Encoder`` or ``DenseEncoder``.
        collection_name: the collection inside the folder.
        dense / sparse / colbert: which outputs to store.
        payload_indexes: ``{metadata_key: "keyword" | "integer" | "float" | "bool"}`` payload
            indexes for the keys you filter on.
        sparse_idf / colbert_hnsw / colbert_on_disk / dense_on_disk / colbert_max_vectors: as
            for :class:`bge_qdrant.QdrantIndex`.
        hnsw_m / hnsw_ef_construct / hnsw_ef: HNSW parameters (search ``ef`` default: 128, see EdgeStore).
        hnsw_indexing_threads / max_segment_points: see :class:`bge_qdrant.edge_store.EdgeStore`.
        build_threshold: points between HNSW builds during an ingest (None: only at the end).
        max_segments / merged_segment_points: the merge at the end of a large ingest (at most
            ``max_segments`` segments of up to ``merged_segment_points``; None: never merge),
            see :meth:`bge_qdrant.edge_store.EdgeStore.merge_segments`.
        dense_quantization / quantization_oversampling: int8 scalar quantisation of the dense
            vectors with float rescoring (default ``"int8"`` for new collections; an existing
            collection keeps what it was created with), see EdgeStore.
        options / dense / sparse / colbert / show_progress / write_batch_size / chunk_size /
            retry: :class:`~bge_core.index.IndexOptions` (``write_batch_size`` default: 256).
    """

    store: EdgeStore
    default_options: ClassVar[IndexOptions] = IndexOptions(write_batch_size=256)

    def __init__(
        self,
        path: str | os.PathLike[str],
        encoder: IndexEncoder,
        *,
        collection_name: str = "bge",
        payload_indexes: Mapping[str, PayloadIndexType] | None = None,
        sparse_idf: bool = False,
        colbert_hnsw: bool = False,
        colbert_on_disk: bool = False,
        dense_on_disk: bool = False,
        colbert_max_vectors: int | None = None,
        hnsw_m: int = 16,
        hnsw_ef_construct: int = DEFAULT_EF_CONSTRUCT,
        hnsw_ef: int | None = None,
        hnsw_indexing_threads: int = 0,
        max_segment_points: int | None = None,
        build_threshold: int | None = DEFAULT_BUILD_THRESHOLD,
        max_segments: int | None = DEFAULT_MAX_SEGMENTS,
        merged_segment_points: int = DEFAULT_MERGED_SEGMENT_POINTS,
        dense_quantization: DenseQuantization | None = DEFAULT_DENSE_QUANTIZATION,
        quantization_oversampling: float | None = None,
        options: IndexOptions | None = None,
        **kwargs: Unpack[IndexKwargs],
    ) -> None:
        opts = IndexOptions.from_kwargs(self.default_options if options is None else options, **kwargs)
        layout = QdrantLayout(
            sparse_idf=sparse_idf,
            colbert_hnsw=colbert_hnsw,
            colbert_on_disk=colbert_on_disk,
            dense_on_disk=dense_on_disk,
            colbert_max_vectors=colbert_max_vectors,
        )
        store = EdgeStore(
            path,
            collection_name,
            layout=layout,
            payload_indexes=payload_indexes,
            hnsw_m=hnsw_m,
            hnsw_ef_construct=hnsw_ef_construct,
            hnsw_ef=hnsw_ef,
            hnsw_indexing_threads=hnsw_indexing_threads,
            max_segment_points=max_segment_points,
            build_threshold=build_threshold,
            show_progress=opts.show_progress,
            max_segments=max_segments,
            merged_segment_points=merged_segment_points,
            dense_quantization=dense_quantization,
            quantization_oversampling=quantization_oversampling,
        )
        super().__init__(store, encoder, options=opts)

    @property
    def path(self) -> str:
        """The index folder."""
        return str(self.store.path)

    @property
    def collection_name(self) -> str:
        """The collection name."""
        return self.store.collection_name

    def build_index(self) -> bool:
        """Build the HNSW graph over everything written so far (blocking)."""
        return self.store.build_index()

    def write_settings(self, settings: dict[str, Any]) -> None:
        """Record settings with the collection (creating it if needed)."""
        self._ensure_once()
        super().write_settings(settings)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
