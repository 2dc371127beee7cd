"""The Qdrant collection layout of a BGE index: named vectors, their options, and the check
that refuses an existing collection that does not fit the encoder."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bge_core.errors import CollectionMismatchError, StoreError
from bge_core.index import CollectionSpec
from bge_qdrant.dependency import models

__all__ = [
    "COLBERT",
    "COLBERT_MAX_FLOATS",
    "DENSE",
    "SETTINGS_KEY",
    "SPARSE",
    "QdrantLayout",
    "check_collection",
    "create_kwargs",
]

#: Vector names in every collection written by bge-integrations.
DENSE = "dense"
SPARSE = "sparse"
COLBERT = "colbert"
#: Key of the collection ``metadata`` entry that holds the index settings.
SETTINGS_KEY = "bge_settings"
#: Qdrant caps one multivector at 1,048,576 floats (1,024 vectors of 1,024 dims).
COLBERT_MAX_FLOATS = 1_048_576


@dataclass(frozen=True)
class QdrantLayout:
    """Collection options of a :class:`bge_qdrant.QdrantIndex`.

    Args:
        sparse_idf: set Qdrant's IDF modifier on the sparse vector (off by default: M3
            lexical weights are already learned term weights and FlagEmbedding scores them
            without IDF; turning it on changes sparse scores).
        colbert_hnsw: build an HNSW graph for the ColBERT multivector. Off by default
            (``m=0``): ColBERT only reranks prefetched candidates, so a graph costs memory
            and ingest time for nothing.
        colbert_on_disk: keep ColBERT vectors on disk (memory-mapped); they are by far the
            largest part of an M3 collection.
        dense_on_disk: keep dense vectors on disk.
        colbert_max_vectors: most token vectors stored per document (default: as many as
            Qdrant's multivector cap allows, ``COLBERT_MAX_FLOATS // colbert_dim``). Longer
            documents keep their FIRST ``colbert_max_vectors`` token vectors (a warning is
            logged once per index); their dense and sparse vectors are unaffected.
        create_options: extra keyword arguments for ``create_collection`` (for example
            ``shard_number``, ``replication_factor``, ``on_disk_payload`` on a cluster).
    """

    sparse_idf: bool = False
    colbert_hnsw: bool = False
    colbert_on_disk: bool = False
    dense_on_disk: bool = False
    colbert_max_vectors: int | None = None
    create_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.colbert_max_vectors is not None and self.colbert_max_vectors < 1:
            raise ValueError(f"colbert_max_vectors must be >= 1, got {self.colbert_max_vectors}")

    def max_colbert_vectors(self, colbert_dim: int) -> int:
        """Token vectors kept per document for ``colbert_dim``-sized vectors."""
        cap = COLBERT_MAX_FLOATS // max(colbert_dim, 1)
        if self.colbert_max_vectors is None:
            return cap
        if self.colbert_max_vectors > cap:
            raise ValueError(
                f"colbert_max_vectors={self.colbert_max_vectors} exceeds Qdrant's multivector cap of "
                f"{COLBERT_MAX_FLOATS} floats ({cap} vectors of {colbert_dim} dims); use at most {cap}"
            )
        return self.colbert_max_vectors


def create_kwargs(spec: CollectionSpec, layout: QdrantLayout) -> dict[str, Any]:
    """Keyword arguments of ``create_collection`` for ``spec``."""
    vectors: dict[str, models.VectorParams] = {}
    if spec.dense_dim is not None:
        vectors[DENSE] = models.VectorParams(
            size=spec.dense_dim, distance=models.Distance.COSINE, on_disk=layout.dense_on_disk or None
        )
    if spec.colbert_dim is not None:
        vectors[COLBERT] = models.VectorParams(
            size=spec.colbert_dim,
            distance=models.Distance.COSINE,
            multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM),
            hnsw_config=None if layout.colbert_hnsw else models.HnswConfigDiff(m=0),
            on_disk=layout.colbert_on_disk or None,
        )
    sparse: dict[str, models.SparseVectorParams] | None = None
    if spec.sparse:
        sparse = {SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF if layout.sparse_idf else None)}
    out: dict[str, Any] = dict(layout.create_options)
    out.update(vectors_config=vectors, sparse_vectors_config=sparse)
    return out


def check_collection(name: str, info: Any, spec: CollectionSpec, layout: QdrantLayout) -> None:
    """Raise :class:`CollectionMismatchError` naming every way the existing collection
    ``name`` (its ``get_collection`` info) does not fit ``spec``."""
    params = info.config.params
    vectors = params.vectors if isinstance(params.vectors, Mapping) else {}
    sparse_vectors = params.sparse_vectors or {}
    problems: list[str] = []

    def dense_like(vname: str, size: int, multi: bool) -> None:
        vp = vectors.get(vname)
        if vp is None:
            problems.append(f"it has no {vname!r} vector")
            return
        if vp.size != size:
            problems.append(f"its {vname!r} vectors have {vp.size} dims but the encoder makes {size}")
        if vp.distance not in (models.Distance.COSINE, models.Distance.DOT):
            problems.append(f"its {vname!r} distance is {vp.distance}, not Cosine")
        is_multi = vp.multivector_config is not None
        if is_multi != multi:
            problems.append(f"its {vname!r} vector is {'a' if is_multi else 'not a'} multivector")
        elif multi and vp.multivector_config.comparator != models.MultiVectorComparator.MAX_SIM:
            problems.append(f"its {vname!r} comparator is {vp.multivector_config.comparator}, not max_sim")

    if spec.dense_dim is not None:
        dense_like(DENSE, spec.dense_dim, multi=False)
    if spec.colbert_dim is not None:
        dense_like(COLBERT, spec.colbert_dim, multi=True)
    if spec.sparse:
        sp = sparse_vectors.get(SPARSE)
        if sp is None:
            problems.append(f"it has no {SPARSE!r} sparse vector")
        else:
            has_idf = sp.modifier == models.Modifier.IDF
            if has_idf != layout.sparse_idf:
                problems.append(
                    f"its sparse vector {'uses' if has_idf else 'does not use'} the IDF modifier "
                    f"(pass sparse_idf={has_idf})"
                )
    if problems:
        raise CollectionMismatchError(
            f"Qdrant collection {name!r} does not fit this index: {'; '.join(problems)}. "
            "Use another collection name, or delete the collection and index again"
        )


def check_settings_kept(name: str, settings: Mapping[str, Any], stored: Any) -> None:
    """Refuse silently dropped settings: servers without collection metadata ignore it."""
    if stored != dict(settings):
        raise StoreError(
            f"Qdrant did not keep the settings of collection {name!r} in its metadata; this server "
            "version lacks collection metadata: upgrade the Qdrant server"
        )
