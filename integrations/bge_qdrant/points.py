"""Translation between index records / hits and Qdrant points."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from bge_core.index import Record
from bge_core.types import Hit
from bge_qdrant.dependency import models
from bge_qdrant.layout import COLBERT, DENSE, SPARSE, QdrantLayout

__all__ = ["HASH_KEY", "METADATA_KEY", "TEXT_KEY", "PointBuilder", "hit_from_point", "hits_in_order", "point_ids"]

logger = logging.getLogger("bge_qdrant")

#: Payload keys: the text, the metadata as given at ingest, and the content hash.
TEXT_KEY = "text"
METADATA_KEY = "metadata"
HASH_KEY = "hash"


class PointBuilder:
    """Builds ``PointStruct``s from records, applying the ColBERT length policy: a document
    with more token vectors than Qdrant's multivector cap allows
    (:meth:`QdrantLayout.max_colbert_vectors`) keeps its FIRST ones; a warning is logged once."""

    def __init__(self, layout: QdrantLayout, *, numpy_vectors: bool = False) -> None:
        self.layout = layout
        # Local mode stores numpy arrays (it calls np.asarray and pickles them): handing it the
        # arrays avoids a round trip through Python lists of floats, which cost more than
        # encoding. Remote clients serialise lists.
        self.numpy_vectors = numpy_vectors
        self._warned = False
        self._lock = threading.Lock()

    def _colbert(self, record: Record) -> Any:
        vecs = record.colbert
        if vecs is None or vecs.shape[0] == 0:
            return None  # Qdrant cannot store an empty multivector; MaxSim with it is 0 anyway
        cap = self.layout.max_colbert_vectors(int(vecs.shape[1]))
        if vecs.shape[0] > cap:
            with self._lock:
                warn, self._warned = not self._warned, True
            if warn:
                logger.warning(
                    "a document has %d ColBERT token vectors; Qdrant stores at most %d per point, "
                    "so only its first %d are kept (logged once per index)",
                    vecs.shape[0],
                    cap,
                    cap,
                )
            vecs = vecs[:cap]
        return vecs if self.numpy_vectors else vecs.tolist()

    def build(self, records: Iterable[Record]) -> list[models.PointStruct]:
        """Points for ``records``; rows without a sparse vector are stored without one."""
        points = []
        for r in records:
            vector: dict[str, Any] = {}
            if r.dense is not None:
                vector[DENSE] = r.dense if self.numpy_vectors else r.dense.tolist()
            if r.sparse is not None and len(r.sparse) > 0:
                vector[SPARSE] = models.SparseVector.model_construct(
                    indices=r.sparse.indices.tolist(), values=r.sparse.values.tolist()
                )
            colbert = self._colbert(r)
            if colbert is not None:
                vector[COLBERT] = colbert
            # model_construct skips pydantic's per-float validation: the values come from numpy
            # arrays of known shape and dtype, and validating a ColBERT matrix (hundreds of
            # thousands of floats per document) cost more than encoding it.
            points.append(
                models.PointStruct.model_construct(
                    id=r.id,
                    vector=vector,
                    payload={TEXT_KEY: r.text, METADATA_KEY: r.metadata, HASH_KEY: r.hash},
                )
            )
        return points


def point_ids(ids: Sequence[str]) -> dict[str, str]:
    """``{canonical uuid: id as given}`` for the ids that can name a point. Ids written by
    this package are UUIDs; anything else cannot be stored, so it is simply not found."""
    out: dict[str, str] = {}
    for i in ids:
        try:
            out.setdefault(str(uuid.UUID(i)), i)
        except (ValueError, AttributeError, TypeError):
            continue
    return out


def hit_from_point(point: Any, score: float, scores: dict[str, float], hit_id: str | None = None) -> Hit:
    """A :class:`Hit` from a ``ScoredPoint`` or ``Record`` with payload."""
    payload = point.payload or {}
    meta = payload.get(METADATA_KEY)
    return Hit(
        id=hit_id if hit_id is not None else str(point.id),
        score=float(score),
        text=str(payload.get(TEXT_KEY, "")),
        metadata=dict(meta) if isinstance(meta, dict) else {},
        scores=scores,
    )


def hits_in_order(ids: Sequence[str], found: Sequence[Any]) -> list[Hit]:
    """Retrieved points as score-0 hits in the order of ``ids`` (missing ids left out)."""
    by_id = {str(p.id): p for p in found}
    out = []
    for i in ids:
        try:
            key = str(uuid.UUID(i))
        except (ValueError, AttributeError, TypeError):
            continue
        if key in by_id:
            out.append(hit_from_point(by_id[key], 0.0, {}, hit_id=i))
    return out
