"""``EdgeStore``: the :class:`bge_core.index.Store` protocol over Qdrant Edge (``qdrant-edge-py``),
Qdrant's engine (segments, WAL, HNSW, payload indexes) running inside this process.

Folder layout (``path``)::

    path/bge-edge.json      marker + per-collection vector layout and settings (atomic writes)
    path/.bge-edge.lock     held (flock) by the one process that has the folder open
    path/<collection>/      one Edge shard per collection (wal/, segments/, edge_config.json)

Collection layout, as on a Qdrant server: ``dense`` (cosine, HNSW), ``sparse`` (M3 lexical
weights), ``colbert`` (multivector, MAX_SIM, no HNSW: it only reranks prefetched candidates),
payload ``text`` / ``metadata`` / ``hash``, and payload indexes for the metadata keys named in
``payload_indexes`` (so filters on them do not scan payloads).

When the HNSW graph is built (measured with ``benchmarks/bench_scale.py --policies 30000``,
BENCHMARKS.md section 8): Edge has no background optimizer; new points land in an appendable
segment searched by brute force until :meth:`EdgeStore.build_index` (``EdgeShard.optimize``)
turns it into an HNSW segment. For 30,000 384-d points + sparse (shared 2-core machine):
building every 5,000 points blocked ingest down to 30 points/s (about 1,000 s in all), every
15,000 points to 288/s (104 s), while building once at the end wrote 4,446/s and was searchable
62 s after the last write (69 s in all): with Qdrant's default optimizer settings each build
merged the previous graph with the new points and re-indexed all of them. The store therefore
builds once at the end of every ``add_texts`` / ``add_documents`` call
(:class:`bge_qdrant.QdrantEdgeIndex` calls :meth:`finish_ingest`; :meth:`close` does it too,
which covers ``bge index``) and, so that a very long ingest is not searched by brute force for
hours, also whenever the points written since the last build pass ``build_threshold`` (default
100,000), with a progress line. Segments are capped at 1.5x that many points
(``max_segment_points``), so such a build indexes only the new points: the cost of the builds
of an ingest grows with N, not N^2. ``hnsw_ef_construct`` is 64 (Qdrant: 100): half the build
CPU time at the same recall@10 on 50k benchmark points (to re-check at 1M, section 8).

A query searches every segment, so the capped segments of a large ingest (ten for 1M points)
make search several times slower than one graph (section 8: 15.9 ms over 9 segments at 800k,
1.6 ms in one of 100k). So an ingest that filled at least one capped segment ends, after its
last build, with one merge (:meth:`EdgeStore.merge_segments`): Qdrant's merge optimizer, set
for the duration to ``max_segments`` (2) segments of up to ``merged_segment_points`` (600,000;
counted in dense-vector bytes, and the engine counts sparse vectors too, so ~25% fewer points
fit), rebuilds the graphs of the merged segments. At 1M points (section 8) 11 segments became
3 in 191 s (354 CPU-s, some points merged twice) and dense search went from 15.9 ms (800k, 9
segments, another load) to 5.5 ms; 4 segments of 300k ended as 6 (7.6 ms). A point is indexed
two to three times in a large ingest (still linear in N), searches
wait for the merge, and the engine's optimizer settings are swapped back afterwards (also after
a kill: the next open restores them).

Durability: every write goes through Edge's write-ahead log before the call returns, so a
killed process loses at most the batch in flight; the index's content hashes make a re-run
write exactly what is missing. Concurrency: one process per folder (a second one gets one
"in use by another process" error line); inside the process, searches run concurrently and
writes / index builds are serialised.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any, Literal, Self

import numpy as np

from bge_core.errors import (
    BGEError,
    CollectionMismatchError,
    StoreError,
    TransientStoreError,
)
from bge_core.index import CollectionSpec, Record, SearchRequest, progress_enabled
from bge_core.scoring import weighted_sum_fusion
from bge_core.types import Hit, SparseVector
from bge_qdrant.edge_dependency import require_edge
from bge_qdrant.edge_filters import BOOL_MIRROR_KEY, bool_mirror, to_edge_filter
from bge_qdrant.filters import payload_path
from bge_qdrant.layout import COLBERT, DENSE, SPARSE, QdrantLayout
from bge_qdrant.points import (
    HASH_KEY,
    METADATA_KEY,
    TEXT_KEY,
    hit_from_point,
    point_ids,
)
from bge_qdrant.queries import qdrant_rrf_k

__all__ = [
    "DEFAULT_BUILD_THRESHOLD",
    "DEFAULT_EF_CONSTRUCT",
    "DEFAULT_DENSE_QUANTIZATION",
    "DEFAULT_HNSW_EF",
    "DEFAULT_QUANTIZED_HNSW_EF",
    "DEFAULT_MAX_SEGMENTS",
    "DEFAULT_MERGED_SEGMENT_POINTS",
    "LOCK_NAME",
    "MARKER_NAME",
    "EdgeStore",
    "DenseQuantization",
    "PayloadIndexType",
]

logger = logging.getLogger("bge_qdrant")

MARKER_NAME = "bge-edge.json"
LOCK_NAME = ".bge-edge.lock"
_FORMAT = "bge-edge"
_VERSION = 1
#: Points written since the last HNSW build that trigger a build during ingest.
DEFAULT_BUILD_THRESHOLD = 100_000
#: HNSW ef_construct of new collections (Qdrant's default is 100).
DEFAULT_EF_CONSTRUCT = 64
#: Search-time HNSW ef when none is given (Qdrant's default is ef_construct, 64 here): recall@10
#: 0.958 -> 0.980 at 1M-like density of realistic vectors for 0.6 -> 1.0 ms of CPU a query.
DEFAULT_HNSW_EF = 128
#: Dense vectors of new collections: int8 scalar quantisation (kept in RAM) for the HNSW walk,
#: exact float rescoring of the candidates (200k ``minilm`` points, BENCHMARKS.md section 8:
#: 2.3x less CPU per query at ef 160 and the same recall, 2.7x cheaper graph builds).
DEFAULT_DENSE_QUANTIZATION: Literal["int8"] | None = "int8"
#: Search ``ef`` of a quantised collection (int8 distances are cheap enough to widen the beam).
DEFAULT_QUANTIZED_HNSW_EF = 160
#: More HNSW segments than this at the end of an ingest: merge them (:meth:`EdgeStore.merge_segments`).
DEFAULT_MAX_SEGMENTS = 2
#: Largest segment such a merge makes (points); larger segments are left as they are.
DEFAULT_MERGED_SEGMENT_POINTS = 600_000
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
PayloadIndexType = Literal["keyword", "integer", "float", "bool"]
DenseQuantization = Literal["int8"]
_SCROLL_PAGE = 512


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:300]


class EdgeStore:
    """One collection of a BGE index in a Qdrant Edge folder.

    Args:
        path: the index folder (created on the first write; must be empty, new, or an Edge
            index folder: anything else is refused before a byte is written).
        collection_name: the collection (one Edge shard in ``path/<collection_name>``).
        layout: vector options shared with :class:`bge_qdrant.QdrantLayout` (``sparse_idf``,
            ``colbert_hnsw``, ``dense_on_disk``, ``colbert_on_disk``, ``colbert_max_vectors``).
        payload_indexes: ``{metadata_key: "keyword" | "integer" | "float" | "bool"}`` payload
            indexes created with the collection (or added to an existing one).
        hnsw_m / hnsw_ef_construct: HNSW graph parameters of the dense vector (ef_construct 64:
            half the build time of Qdrant's 100 at the same recall@10, BENCHMARKS.md section 8).
        hnsw_indexing_threads: threads of one HNSW build (0: all cores).
        max_segment_points: the optimizer merges segments only up to about this many points
            (default 1.5x ``build_threshold``), so a build indexes the new points instead of
            re-indexing everything written before (set when the collection is created).
        hnsw_ef: search-time beam width (default: the larger of 128 and ``hnsw_ef_construct``,
            160 on a quantised collection; BENCHMARKS.md section 8).
        dense_quantization: ``"int8"`` (default for new collections): int8 scalar quantisation
            of the dense vectors, kept in RAM, used for the graph walk and the build; the
            candidates are rescored with the float vectors. ``None``: float only. Recorded
            with the collection when it is created: an existing collection keeps what it was
            created with (collections made before this option: float).
        quantization_oversampling: candidates rescored per result on a quantised collection
            (>= 1.0; default: the engine's, 1.0; 2.0 measured no better at ef >= 128).
        max_segments / merged_segment_points: at the end of an ingest (:meth:`finish_ingest`)
            with more than ``max_segments`` segments, merge them into segments of up to
            ``merged_segment_points`` points (:meth:`merge_segments`; ``max_segments=None``:
            never). A query searches every segment, so the capped segments of a large ingest
            slow search down (BENCHMARKS.md section 8).
        build_threshold: points written since the last build that trigger an HNSW build in
            the middle of an ingest (``None``: only at the end). See the module docstring.
        show_progress: a progress line while the HNSW graph builds (default: stderr is a tty).

    Nothing is opened in the constructor; the folder is checked, locked and opened on first use.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        collection_name: str = "bge",
        *,
        layout: QdrantLayout | None = None,
        payload_indexes: Mapping[str, PayloadIndexType] | None = None,
        hnsw_m: int = 16,
        hnsw_ef_construct: int = DEFAULT_EF_CONSTRUCT,
        hnsw_ef: int | None = None,
        hnsw_indexing_threads: int = 0,
        max_segment_points: int | None = None,
        build_threshold: int | None = DEFAULT_BUILD_THRESHOLD,
        show_progress: bool | None = None,
        max_segments: int | None = DEFAULT_MAX_SEGMENTS,
        merged_segment_points: int = DEFAULT_MERGED_SEGMENT_POINTS,
        dense_quantization: DenseQuantization | None = DEFAULT_DENSE_QUANTIZATION,
        quantization_oversampling: float | None = None,
    ) -> None:
        if not isinstance(collection_name, str) or not _NAME.match(collection_name):
            raise ValueError(
                f"collection_name {collection_name!r} must be 1-128 letters, digits, '_', '-' or '.', "
                "not starting with '.' or '-' (it names a folder)"
            )
        if build_threshold is not None and build_threshold < 1:
            raise ValueError(f"build_threshold must be >= 1 or None, got {build_threshold}")
        if max_segment_points is not None and max_segment_points < 1:
            raise ValueError(f"max_segment_points must be >= 1 or None, got {max_segment_points}")
        if max_segments is not None and max_segments < 1:
            raise ValueError(f"max_segments must be >= 1 or None (never merge), got {max_segments}")
        if merged_segment_points < 1:
            raise ValueError(f"merged_segment_points must be >= 1, got {merged_segment_points}")
        if dense_quantization not in ("int8", None):
            raise ValueError(f"dense_quantization must be 'int8' or None (float only), got {dense_quantization!r}")
        if quantization_oversampling is not None and not (
            isinstance(quantization_oversampling, (int, float))
            and not isinstance(quantization_oversampling, bool)
            and 1.0 <= float(quantization_oversampling) <= 100.0
        ):
            raise ValueError(
                f"quantization_oversampling must be a number from 1.0 to 100.0 (candidates rescored per result) "
                f"or None, got {quantization_oversampling!r}"
            )
        if hnsw_indexing_threads < 0:
            raise ValueError(f"hnsw_indexing_threads must be >= 0 (0: all cores), got {hnsw_indexing_threads}")
        for key, kind in (payload_indexes or {}).items():
            payload_path(key)  # refuses keys that cannot be a payload path
            if kind not in ("keyword", "integer", "float", "bool"):
                raise ValueError(
                    f"payload index type for {key!r} must be keyword, integer, float or bool, got {kind!r}"
                )
        self.path = Path(os.path.expanduser(os.fspath(path)))
        self.collection_name = collection_name
        self.layout = layout or QdrantLayout()
        if self.layout.create_options:
            raise ValueError("create_options are for Qdrant servers; Qdrant Edge has no such options")
        self.payload_indexes = dict(payload_indexes or {})
        self.hnsw_m = hnsw_m
        self.hnsw_ef_construct = hnsw_ef_construct
        self.hnsw_ef = hnsw_ef
        self.hnsw_indexing_threads = hnsw_indexing_threads
        self.max_segment_points = max_segment_points or (build_threshold or DEFAULT_BUILD_THRESHOLD) * 3 // 2
        self.build_threshold = build_threshold
        self.show_progress = show_progress
        self.max_segments = max_segments
        self.merged_segment_points = merged_segment_points
        self.dense_quantization: DenseQuantization | None = dense_quantization
        self.quantization_oversampling = None if quantization_oversampling is None else float(quantization_oversampling)
        self._shard: Any = None
        self._generation = 0  # bumped when merge_segments reopens the shard
        self._lock_file: IO[str] | None = None
        self._open_lock = threading.RLock()
        self._write_lock = threading.RLock()
        self._unindexed = 0
        self._since_merge = 0  # points written by this process since the last merge
        self._warned_colbert = False
        self._closed = False

    # -- folder, lock, marker ----------------------------------------------------------------
    @property
    def shard_path(self) -> Path:
        """The folder of this collection's Edge shard."""
        return self.path / self.collection_name

    def _marker(self) -> dict[str, Any] | None:
        """The parsed marker, None for a new/empty folder; refuses a folder of something else."""
        p = self.path
        if not p.exists():
            return None
        if not p.is_dir():
            raise StoreError(f"{str(p)!r} is a file, not an Edge index folder; pick a folder path")
        marker = p / MARKER_NAME
        if not marker.exists():
            others = sorted(x.name for x in p.iterdir() if x.name != LOCK_NAME)
            if "meta.json" in others and "collection" in others:
                raise StoreError(
                    f"folder {str(p)!r} holds a Qdrant local-mode index (the store bge used by default before "
                    f"Edge); open it with --store qdrant:{p}, or move it to Edge with: bge copy qdrant:{p} edge:NEW_FOLDER"
                )
            if others:
                shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
                raise StoreError(
                    f"folder {str(p)!r} holds something else than a bge Edge index (found: {shown}); "
                    "refusing to write there: pick a new or empty folder"
                )
            return None
        try:
            data = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StoreError(
                f"the Edge index folder {str(p)!r} is damaged: {MARKER_NAME} is unreadable "
                f"({type(exc).__name__}); restore the folder from a copy or index into a new folder"
            ) from None
        if not isinstance(data, dict) or data.get("format") != _FORMAT or not isinstance(data.get("collections"), dict):
            raise StoreError(
                f"the Edge index folder {str(p)!r} is damaged: {MARKER_NAME} is not a bge Edge marker; "
                "restore the folder from a copy or index into a new folder"
            )
        if int(data.get("version", 0)) > _VERSION:
            raise StoreError(
                f"the Edge index in {str(p)!r} was written by a newer bge-integrations (format "
                f"{data.get('version')}); upgrade bge-integrations"
            )
        return data

    def _write_marker(self, data: dict[str, Any]) -> None:
        tmp = self.path / f".{MARKER_NAME}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path / MARKER_NAME)
        with contextlib.suppress(OSError):  # make the rename durable
            dfd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def _acquire_lock(self) -> None:
        if self._lock_file is not None:
            return
        fh = open(self.path / LOCK_NAME, "a+", encoding="utf-8")  # noqa: SIM115 - held while open
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            fh.seek(0)
            holder = fh.read().strip()
            fh.close()
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                who = f" (pid {holder})" if holder.isdigit() else ""
                raise StoreError(
                    f"Edge index folder {str(self.path)!r} is in use by another process{who}; "
                    "stop it, or use another folder"
                ) from None
            raise
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._lock_file = fh

    def _collection_entry(self, marker: dict[str, Any] | None) -> dict[str, Any] | None:
        if marker is None:
            return None
        entry = marker["collections"].get(self.collection_name)
        return entry if isinstance(entry, dict) else None

    def _open(self, spec: CollectionSpec | None) -> Any:
        """The open shard. With ``spec`` a missing collection is created (else None is returned)."""
        if self._shard is not None:
            return self._shard
        with self._open_lock:
            if self._shard is not None:
                return self._shard
            if self._closed:
                raise StoreError(f"the Edge store on {str(self.path)!r} is closed")
            marker = self._marker()
            entry = self._collection_entry(marker)
            if entry is None and spec is None:
                return None
            self.path.mkdir(parents=True, exist_ok=True)
            self._acquire_lock()
            marker = self._marker()  # re-read under the lock
            entry = self._collection_entry(marker)
            if entry is None:
                assert spec is not None
                marker = marker or {"format": _FORMAT, "version": _VERSION, "collections": {}}
                if self.shard_path.exists() and any(self.shard_path.iterdir()):
                    raise StoreError(
                        f"folder {str(self.shard_path)!r} exists but is not a collection of this Edge index; "
                        "move it away or use another collection name"
                    )
                # Record the layout first: a crash before the shard exists leaves an empty
                # collection that the next open creates.
                marker["collections"][self.collection_name] = {
                    "spec": asdict(spec),
                    "settings": None,
                    "dense_quantization": self.dense_quantization if spec.dense_dim is not None else None,
                }
                self._write_marker(marker)
                entry = marker["collections"][self.collection_name]
            self._shard = self._load_or_create(entry)
            self._ensure_payload_indexes(self._shard)
            return self._shard

    def _edge_config(self, spec: CollectionSpec) -> Any:
        qe = require_edge()
        layout = self.layout
        vectors: dict[str, Any] = {}
        if spec.dense_dim is not None:
            vectors[DENSE] = qe.EdgeVectorParams(
                size=spec.dense_dim,
                distance=qe.Distance.Cosine,
                on_disk=True if layout.dense_on_disk else None,
                hnsw_config=qe.HnswIndexConfig(
                    m=self.hnsw_m,
                    ef_construct=self.hnsw_ef_construct,
                    full_scan_threshold=10_000,
                    max_indexing_threads=self.hnsw_indexing_threads,
                ),
                quantization_config=(
                    qe.ScalarQuantizationConfig(qe.ScalarType.Int8, always_ram=True)
                    if self.dense_quantization == "int8"
                    else None
                ),
            )
        if spec.colbert_dim is not None:
            vectors[COLBERT] = qe.EdgeVectorParams(
                size=spec.colbert_dim,
                distance=qe.Distance.Cosine,
                multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim),
                hnsw_config=qe.HnswIndexConfig(
                    m=self.hnsw_m if layout.colbert_hnsw else 0,
                    ef_construct=self.hnsw_ef_construct,
                    full_scan_threshold=10_000,
                ),
                on_disk=True if layout.colbert_on_disk else None,
            )
        sparse = None
        if spec.sparse:
            sparse = {SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf if layout.sparse_idf else None)}
        optimizers = None
        if spec.dense_dim is not None:
            # Qdrant sizes segments in KB of vectors: without a cap the optimizer merges the
            # graph built at the last threshold with the new points and re-indexes all of them
            # (each build slower than the one before); capped, a build indexes the new points.
            optimizers = qe.EdgeOptimizersConfig(
                max_segment_size=max(1, self.max_segment_points * spec.dense_dim * 4 // 1024)
            )
        return qe.EdgeConfig(vectors=vectors or None, sparse_vectors=sparse, optimizers=optimizers)

    def _load_or_create(self, entry: dict[str, Any]) -> Any:
        qe = require_edge()
        spec = CollectionSpec(**entry["spec"])
        # the collection keeps the quantisation it was created with (none before this option)
        recorded = entry.get("dense_quantization")
        if recorded != self.dense_quantization:
            logger.info(
                "Edge: collection %r was created with dense_quantization=%r; using that", self.collection_name, recorded
            )
            self.dense_quantization = recorded
        shard_dir = self.shard_path
        if not (shard_dir / "edge_config.json").exists():
            if shard_dir.exists() and any(shard_dir.iterdir()):
                raise StoreError(
                    f"Edge shard folder {str(shard_dir)!r} is damaged or truncated (no edge_config.json); "
                    f"restore it from a copy, or delete {str(shard_dir)!r} and index again"
                )
            try:
                return qe.EdgeShard.create(str(shard_dir), self._edge_config(spec))
            except Exception as exc:  # noqa: BLE001 - the engine raises plain Exception
                raise StoreError(f"cannot create the Edge shard in {str(shard_dir)!r}: {_one_line(str(exc))}") from None
        if entry.get("merging") is not None:
            # a merge_segments() was killed: its optimizer settings are still in the shard's
            # config; put the collection's own back (the engine finishes or drops the half-built
            # segment on load, the old segments and the WAL hold every point)
            self._restore_optimizers(entry)
        try:
            return qe.EdgeShard.load(str(shard_dir))
        except Exception as exc:  # noqa: BLE001 - the engine raises plain Exception
            msg = str(exc)
            if "WouldBlock" in msg:
                raise StoreError(
                    f"Edge shard folder {str(shard_dir)!r} is in use by another process; stop it, or use another folder"
                ) from None
            raise StoreError(
                f"Edge shard folder {str(shard_dir)!r} is damaged or truncated ({_one_line(msg)}); "
                f"restore it from a copy, or delete {str(shard_dir)!r} and index again"
            ) from None

    def _ensure_payload_indexes(self, shard: Any) -> None:
        if not self.payload_indexes:
            return
        qe = require_edge()
        have = set(shard.info().payload_schema)
        kinds = {
            "keyword": qe.PayloadSchemaType.Keyword,
            "integer": qe.PayloadSchemaType.Integer,
            "float": qe.PayloadSchemaType.Float,
            "bool": qe.PayloadSchemaType.Bool,
        }
        with self._write_lock:
            for key, kind in self.payload_indexes.items():
                path = payload_path(key)
                # the engine reports paths unquoted where quotes are not needed (metadata.g)
                if path not in have and f"{METADATA_KEY}.{key}" not in have:
                    shard.update(qe.UpdateOperation.create_field_index(path, kinds[kind]))

    def _require(self) -> Any:
        shard = self._open(None)
        if shard is None:
            raise StoreError(
                f"the Edge index {str(self.path)!r} has no collection {self.collection_name!r}; index something first"
            )
        return shard

    @contextlib.contextmanager
    def _engine(self, what: str) -> Iterator[None]:
        """Engine failures (plain ``Exception`` from the Rust core) as one StoreError naming
        the shard folder; our own errors and argument errors pass through."""
        try:
            yield
        except (BGEError, ValueError, TypeError):
            raise
        except Exception as exc:  # noqa: BLE001 - the engine raises plain Exception
            raise StoreError(
                f"Edge shard folder {str(self.shard_path)!r} failed while {what} ({_one_line(str(exc))}); "
                f"if it is damaged, restore it from a copy, or delete {str(self.shard_path)!r} and index again"
            ) from None

    # -- collection ------------------------------------------------------------------------
    def ensure(self, spec: CollectionSpec) -> None:
        """Create the collection for ``spec``, or check that the existing one fits it."""
        if spec.colbert_dim:
            self.layout.max_colbert_vectors(spec.colbert_dim)
        self._open(spec)
        entry = self._collection_entry(self._marker())
        assert entry is not None
        have = CollectionSpec(**entry["spec"])
        if have != spec:
            problems = []
            if have.dense_dim != spec.dense_dim:
                problems.append(f"dense vectors of {have.dense_dim} dims, the encoder makes {spec.dense_dim}")
            if have.sparse != spec.sparse:
                problems.append(f"sparse vectors {'stored' if have.sparse else 'not stored'}")
            if have.colbert_dim != spec.colbert_dim:
                problems.append(f"ColBERT vectors of {have.colbert_dim} dims, the index wants {spec.colbert_dim}")
            raise CollectionMismatchError(
                f"Edge collection {self.collection_name!r} in {str(self.path)!r} does not fit this index: "
                f"{'; '.join(problems)}. Use another collection name or folder, or delete it and index again"
            )

    def drop(self) -> bool:
        """Delete the collection: its shard folder, then its entry (layout, settings) in the
        marker; False when it does not exist. Creates nothing; a drop stopped half-way is
        finished by the next one."""
        with self._open_lock:
            if self._closed:
                raise StoreError(f"the Edge store on {str(self.path)!r} is closed")
            if self._marker() is None:
                return False
            self._acquire_lock()
            with self._write_lock:
                marker = self._marker()  # re-read under the lock
                assert marker is not None
                if self._collection_entry(marker) is None and not self.shard_path.exists():
                    return False
                shard, self._shard = self._shard, None
                if shard is not None:
                    shard.close()
                self._unindexed = 0
                if self.shard_path.exists():
                    shutil.rmtree(self.shard_path)
                marker["collections"].pop(self.collection_name, None)
                self._write_marker(marker)
        logger.info("Edge: dropped collection %r in %s", self.collection_name, self.path)
        return True

    def stored_spec(self) -> CollectionSpec | None:
        """The vector layout recorded for the collection (None when it does not exist)."""
        entry = self._collection_entry(self._marker())
        return None if entry is None else CollectionSpec(**entry["spec"])

    def read_settings(self) -> dict[str, Any] | None:
        """Settings recorded with the collection (None when absent). Opens nothing."""
        entry = self._collection_entry(self._marker())
        value = None if entry is None else entry.get("settings")
        return dict(value) if isinstance(value, dict) else None

    def write_settings(self, settings: dict[str, Any]) -> None:
        """Record ``settings`` (JSON) with the collection, atomically."""
        json.dumps(settings, allow_nan=False)
        self._require()
        with self._write_lock:
            marker = self._marker()
            entry = self._collection_entry(marker)
            assert marker is not None and entry is not None
            entry["settings"] = dict(settings)
            self._write_marker(marker)

    # -- rows ------------------------------------------------------------------------------
    def _colbert(self, record: Record) -> Any:
        vecs = record.colbert
        if vecs is None or vecs.shape[0] == 0:
            return None
        cap = self.layout.max_colbert_vectors(int(vecs.shape[1]))
        if vecs.shape[0] > cap:
            if not self._warned_colbert:
                self._warned_colbert = True
                logger.warning(
                    "a document has %d ColBERT token vectors; Qdrant stores at most %d per point, "
                    "so only its first %d are kept (logged once per index)",
                    vecs.shape[0],
                    cap,
                    cap,
                )
            vecs = vecs[:cap]
        return np.asarray(vecs, dtype=np.float32).tolist()

    def _points(self, records: Sequence[Record]) -> list[Any]:
        """``qdrant_edge.Point`` objects for ``records``: the Python -> Rust conversion, about
        half of the CPU time of a write (profiled in BENCHMARKS.md section 8). Kept lean: dense
        vectors go in as plain lists (they convert about 3x faster than numpy rows in the
        binding), the binding itself validates the UUID ids (an invalid one raises before
        anything is written), and no per-point helper runs for what a record does not have
        (bool metadata, ColBERT vectors)."""
        qe = require_edge()
        Point, Sparse = qe.Point, qe.SparseVector
        points = []
        for r in records:
            vector: dict[str, Any] = {}
            if r.dense is not None:
                # one row at a time: the list is freed right after the binding copies it, so
                # its memory is reused for the next row (a whole-batch tolist is slower)
                vector[DENSE] = np.asarray(r.dense, dtype=np.float32).tolist()
            sp = r.sparse
            if sp is not None and sp.indices.size:
                vector[SPARSE] = Sparse(sp.indices.tolist(), sp.values.tolist())
            if r.colbert is not None:
                colbert = self._colbert(r)
                if colbert is not None:
                    vector[COLBERT] = colbert
            meta = r.metadata
            payload = {TEXT_KEY: r.text, METADATA_KEY: meta, HASH_KEY: r.hash}
            mirror = bool_mirror(meta) if meta else None
            if mirror:
                payload[BOOL_MIRROR_KEY] = mirror
            if type(r.id) is not str:
                raise ValueError(f"record id {r.id!r} must be a UUID string (bge_core.index.make_id gives one)")
            try:
                points.append(Point(r.id, vector, payload))
            except ValueError as exc:
                if "UUID" in str(exc):
                    raise ValueError(
                        f"record id {r.id!r} is not a UUID; Edge point ids are UUIDs (bge_core.index.make_id gives one)"
                    ) from None
                raise
        return points

    def upsert(self, records: Sequence[Record]) -> None:
        """Insert or replace points (in the WAL when this returns); builds the HNSW graph when
        the points written since the last build pass ``build_threshold``."""
        if not records:
            return
        shard = self._require()
        points = self._points(records)  # raises on a bad record before anything is written
        qe = require_edge()
        with self._write_lock, self._engine("writing points"):
            shard.update(qe.UpdateOperation.upsert_points(points))
            self._unindexed += len(points)
            self._since_merge += len(points)
            due = self.build_threshold is not None and self._unindexed >= self.build_threshold
        if due:
            self.build_index()

    def fetch_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        """``{id: content hash}`` of the stored ids."""
        wanted = point_ids(ids)
        shard = self._open(None)
        if not wanted or shard is None:
            return {}
        with self._engine("reading points"):
            found = shard.retrieve(list(wanted), with_payload=[HASH_KEY], with_vector=False)
        return {wanted[str(p.id)]: str((p.payload or {}).get(HASH_KEY)) for p in found if str(p.id) in wanted}

    def get(self, ids: Sequence[str]) -> list[Hit]:
        """Stored rows in the order of ``ids`` (missing ids left out)."""
        wanted = point_ids(ids)
        shard = self._open(None)
        if not wanted or shard is None:
            return []
        with self._engine("reading points"):
            found = {str(p.id): p for p in shard.retrieve(list(wanted), with_payload=True, with_vector=False)}
        out = []
        for i in ids:
            with contextlib.suppress(ValueError, AttributeError, TypeError):
                key = str(uuid.UUID(i))
                if key in found:
                    out.append(hit_from_point(found[key], 0.0, {}, hit_id=i))
        return out

    def delete(self, ids: Sequence[str]) -> None:
        """Remove points by id (missing ids are ignored)."""
        wanted = point_ids(ids)
        shard = self._open(None)
        if wanted and shard is not None:
            qe = require_edge()
            with self._write_lock, self._engine("deleting points"):
                shard.update(qe.UpdateOperation.delete_points(list(wanted)))

    def count(self) -> int:
        """Exact number of points."""
        shard = self._open(None)
        if shard is None:
            return 0
        qe = require_edge()
        with self._engine("counting points"):
            return int(shard.count(qe.CountRequest(exact=True)))

    def is_transient(self, exc: BaseException) -> bool:
        """An in-process engine has no transient failures of its own; our
        :class:`~bge_core.errors.TransientStoreError` (raised by a wrapper) is one."""
        return isinstance(exc, TransientStoreError)

    # -- HNSW ------------------------------------------------------------------------------
    @property
    def unindexed(self) -> int:
        """Points written by this process since the last HNSW build."""
        return self._unindexed

    def build_index(self) -> bool:
        """Build the HNSW graph (and merge segments) now: ``EdgeShard.optimize``, blocking.
        Returns whether anything was optimized. Searches keep working meanwhile."""
        shard = self._require()
        with self._write_lock:
            n = self._unindexed
            with _BuildProgress(self.show_progress, n), self._engine("building the HNSW graph"):
                start = time.perf_counter()
                changed = bool(shard.optimize())
                shard.flush()
            self._unindexed = 0
        logger.info("Edge: optimized %s (%d new points) in %.1fs", self.shard_path, n, time.perf_counter() - start)
        return changed

    def finish_ingest(self) -> None:
        """End of an ingest call: build the graph over what was written (see module docstring),
        then merge the segments if there are more than ``max_segments``."""
        if self._unindexed:
            self.build_index()
        # Only after an ingest that filled at least one capped segment: small ingests leave
        # small segments that Qdrant's own optimizer merges up to max_segment_points, and a
        # merge after each of them would re-index the same points over and over.
        if self.max_segments is not None and self._shard is not None and self._since_merge >= self.max_segment_points:
            self.merge_segments()

    def segment_count(self) -> int:
        """Segments of the shard (each one is searched by every query; 0 before the first write)."""
        shard = self._open(None)
        if shard is None:
            return 0
        with self._engine("reading the shard info"):
            return int(shard.info().segments_count)

    def _engine_config_path(self) -> Path:
        return self.shard_path / "edge_config.json"

    def _set_engine_optimizers(self, optimizers: dict[str, Any] | None) -> None:
        """Rewrite the ``optimizers`` part of the (closed) shard's ``edge_config.json``
        atomically. The binding can set them only through ``EdgeShard.load(path, config)``,
        which would also replace every vector setting not given again."""
        cfg_path = self._engine_config_path()
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        if optimizers is None:
            cfg.pop("optimizers", None)
        else:
            cfg["optimizers"] = optimizers
        tmp = cfg_path.with_name(f".{cfg_path.name}.bge-tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(cfg, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, cfg_path)

    def _restore_optimizers(self, entry: dict[str, Any]) -> None:
        saved = entry["merging"]
        self._set_engine_optimizers(saved.get("optimizers"))
        marker = self._marker()
        assert marker is not None
        marker["collections"][self.collection_name].pop("merging", None)
        self._write_marker(marker)
        entry.pop("merging", None)

    def merge_segments(self, *, force: bool = False) -> bool:
        """Merge the segments into few large ones (blocking; searches wait for it).

        A large ingest leaves one segment of at most ``max_segment_points`` per build (so each
        build indexes only the new points), and a query searches all of them. This reopens the
        shard with Qdrant's merge optimizer set to ``max_segments`` segments of up to
        ``merged_segment_points`` points, optimizes (the merged segments' HNSW graphs are built
        anew), and reopens it with the collection's own settings. Runs only when there are more
        than ``max_segments`` segments (or ``force``). A kill meanwhile loses nothing: the old
        segments stay until the merged one is complete, and the next open restores the settings.
        Returns whether segments were merged.
        """
        if self.max_segments is None and not force:
            return False
        target = self.max_segments or DEFAULT_MAX_SEGMENTS
        shard = self._require()
        with self._open_lock, self._write_lock:
            before = int(shard.info().segments_count)
            # the count includes the appendable segment the engine keeps for new points
            if before <= target + 1 and not force:
                return False
            points = int(shard.info().points_count)
            cfg = json.loads(self._engine_config_path().read_text(encoding="utf-8"))
            original = cfg.get("optimizers")
            dim = int(cfg["vectors"][DENSE]["size"]) if DENSE in (cfg.get("vectors") or {}) else 0
            merged = dict(original or {})
            # segment sizes are in KB of (dense) vectors, as for max_segment_points
            merged["max_segment_size"] = max(1, self.merged_segment_points * max(dim, 1) * 4 // 1024)
            merged["default_segment_number"] = target
            marker = self._marker()
            assert marker is not None
            marker["collections"][self.collection_name]["merging"] = {"optimizers": original}
            self._write_marker(marker)
            entry = marker["collections"][self.collection_name]
            self._generation += 1
            self._shard = None
            start = time.perf_counter()
            with self._engine("merging segments"):
                shard.flush()
                shard.close()
                self._set_engine_optimizers(merged)
                qe = require_edge()
                with _BuildProgress(self.show_progress, points, f"merging {before} segments ({points:,} points)"):
                    tmp = qe.EdgeShard.load(str(self.shard_path))
                    try:
                        tmp.optimize()
                        tmp.flush()
                    finally:
                        tmp.close()
                self._restore_optimizers(entry)
                self._shard = self._load_or_create(entry)
                after = int(self._shard.info().segments_count)
            self._since_merge = 0
        logger.info(
            "Edge: merged %d segments into %d (%d points) in %.1fs",
            before,
            after,
            points,
            time.perf_counter() - start,
        )
        return after < before

    def flush(self) -> None:
        """Flush segments to disk (the WAL already holds every write)."""
        shard = self._open(None)
        if shard is not None:
            with self._write_lock:
                shard.flush()

    # -- search ----------------------------------------------------------------------------
    def _params(self) -> Any:
        qe = require_edge()
        if self.dense_quantization is None:
            return qe.SearchParams(hnsw_ef=self.hnsw_ef or max(DEFAULT_HNSW_EF, self.hnsw_ef_construct))
        return qe.SearchParams(
            hnsw_ef=self.hnsw_ef or max(DEFAULT_QUANTIZED_HNSW_EF, self.hnsw_ef_construct),
            quantization=qe.QuantizationSearchParams(rescore=True, oversampling=self.quantization_oversampling),
        )

    def query(self, request: SearchRequest) -> list[Hit]:
        """Run a planned search with the semantics of :mod:`bge_qdrant.queries`."""
        generation = self._generation
        try:
            with self._engine("searching"):
                return self._query(request)
        except StoreError:
            if generation == self._generation:
                raise
        # merge_segments() closed the shard under this query: run it again on the new one
        # (it waits for the merge to finish)
        with self._engine("searching"):
            return self._query(request)

    def _query(self, request: SearchRequest) -> list[Hit]:
        qe = require_edge()
        shard = self._open(None)
        flt = to_edge_filter(request.filter)
        if shard is None:
            return []
        params = self._params()
        has_dense = request.dense is not None
        has_sparse = request.sparse is not None and len(request.sparse) > 0
        dense_q = np.ascontiguousarray(request.dense, dtype=np.float32).tolist() if request.dense is not None else None
        sparse_q = (
            qe.SparseVector(request.sparse.indices.tolist(), request.sparse.values.tolist())
            if request.sparse is not None and has_sparse
            else None
        )

        def plain(points: list[Any], stage: str, scale: float = 1.0) -> list[Hit]:
            return [hit_from_point(p, p.score * scale, {stage: p.score * scale}) for p in points]

        def top(query: Any, using: str, limit: int) -> Any:
            return qe.QueryRequest(
                limit=limit, query=qe.Query.Nearest(query, using=using), filter=flt, with_payload=True, params=params
            )

        if request.mode == "dense":
            return plain(shard.query(top(dense_q, DENSE, request.limit)), DENSE)
        if request.mode == "sparse":
            if not has_sparse:
                return []
            return plain(shard.query(top(sparse_q, SPARSE, request.limit)), SPARSE)
        sources: list[tuple[str, Any]] = [(DENSE, dense_q)] if has_dense else []
        if has_sparse:
            sources.append((SPARSE, sparse_q))
        if not sources:
            return []
        P = request.prefetch_limit
        if request.mode == "hybrid" and request.fusion == "weighted":
            names = [name for name, _ in sources]
            responses = shard.query_batch(qe.QueryBatchRequest([top(q, name, P) for name, q in sources]))
            stage: dict[str, dict[str, float]] = {}
            points: dict[str, Any] = {}
            for name, pts in zip(names, responses):
                for p in pts:
                    key = str(p.id)
                    points.setdefault(key, p)
                    stage.setdefault(key, {})[name] = float(p.score)
            fused = weighted_sum_fusion(stage, dict(zip((DENSE, SPARSE), request.weights)))[: request.limit]
            return [hit_from_point(points[k], s, {**stage[k], "fusion": s}) for k, s in fused]
        prefetch = [
            qe.Prefetch(limit=P, query=qe.Query.Nearest(q, using=name), filter=flt, params=params)
            for name, q in sources
        ]
        if request.mode == "hybrid":
            fusion = qe.Fusion.Rrf(k=qdrant_rrf_k(request.rrf_k)) if request.fusion == "rrf" else qe.Fusion.Dbsf()
            req = qe.QueryRequest(limit=request.limit, prefetches=prefetch, query=fusion, filter=flt, with_payload=True)
            return plain(shard.query(req), "fusion")
        if request.colbert is None or request.colbert.shape[0] == 0:
            raise ValueError("mode 'colbert' needs the query's ColBERT vectors")
        req = qe.QueryRequest(
            limit=request.limit,
            prefetches=prefetch,
            query=qe.Query.Nearest(np.ascontiguousarray(request.colbert, dtype=np.float32).tolist(), using=COLBERT),
            filter=flt,
            with_payload=True,
        )
        return plain(shard.query(req), "colbert", 1.0 / request.colbert.shape[0])

    # -- export (bge_core.export.ExportableStore) -------------------------------------------
    def export(self, cursor: str | None, limit: int) -> tuple[list[Record], str | None]:
        """Up to ``limit`` stored records with their vectors, in id order, from ``cursor``
        (None: the start); returns them and the next cursor (None: done)."""
        qe = require_edge()
        shard = self._open(None)
        if shard is None:
            return [], None
        with self._engine("reading points"):
            recs, nxt = shard.scroll(qe.ScrollRequest(offset=cursor, limit=limit, with_payload=True, with_vector=True))
        return [_record_from_point(p) for p in recs], (None if nxt is None else str(nxt))

    def fetch_records(self, ids: Sequence[str]) -> list[Record]:
        """Stored records by id with their vectors, in the order of ``ids``."""
        wanted = point_ids(ids)
        shard = self._open(None)
        if not wanted or shard is None:
            return []
        with self._engine("reading points"):
            found = {str(p.id): p for p in shard.retrieve(list(wanted), with_payload=True, with_vector=True)}
        out = []
        for canonical, given in wanted.items():
            if canonical in found:
                rec = _record_from_point(found[canonical])
                out.append(dataclasses.replace(rec, id=given))
        order = {i: n for n, i in enumerate(ids)}
        return sorted(out, key=lambda r: order[r.id])

    def scan(self, keys: Sequence[str], batch_size: int = _SCROLL_PAGE) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(id, {key: metadata value})`` of every point whose metadata has ``keys[0]``
        (``bge index`` uses it to find chunks of deleted or shortened files)."""
        qe = require_edge()
        shard = self._open(None)
        if not keys or shard is None:
            return
        cursor: Any = None
        while True:
            with self._engine("reading points"):
                points, cursor = shard.scroll(
                    qe.ScrollRequest(offset=cursor, limit=batch_size, with_payload=[METADATA_KEY], with_vector=False)
                )
            for p in points:
                meta = (p.payload or {}).get(METADATA_KEY) or {}
                if keys[0] in meta:
                    yield str(p.id), {k: meta.get(k) for k in keys}
            if cursor is None:
                return

    def iter_records(self, batch_size: int = _SCROLL_PAGE) -> Iterator[Record]:
        """Every stored record with its vectors, in id order."""
        cursor: str | None = None
        while True:
            recs, cursor = self.export(cursor, batch_size)
            yield from recs
            if cursor is None:
                return

    def close(self) -> None:
        """Build the HNSW graph over points written since the last build (see
        :meth:`finish_ingest`), flush, close the shard and release the folder lock (idempotent)."""
        if self._shard is not None and not self._closed:
            self.finish_ingest()
        with self._open_lock:
            self._closed = True
            shard, self._shard = self._shard, None
            if shard is not None:
                with self._write_lock:
                    shard.flush()
                    shard.close()
            if self._lock_file is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
                self._lock_file.close()
                self._lock_file = None

    def __repr__(self) -> str:
        return f"EdgeStore(path={str(self.path)!r}, collection={self.collection_name!r})"


def _record_from_point(p: Any) -> Record:
    payload = p.payload or {}
    vec = p.vector or {}
    meta = payload.get(METADATA_KEY)
    dense = vec.get(DENSE)
    sparse = vec.get(SPARSE)
    colbert = vec.get(COLBERT)
    return Record(
        id=str(p.id),
        text=str(payload.get(TEXT_KEY, "")),
        metadata=dict(meta) if isinstance(meta, dict) else {},
        hash=str(payload.get(HASH_KEY, "")),
        dense=None if dense is None else np.asarray(dense, dtype=np.float32),
        sparse=None if sparse is None else SparseVector(np.asarray(sparse.indices), np.asarray(sparse.values)),
        colbert=None if colbert is None else np.asarray(colbert, dtype=np.float32),
    )


class _BuildProgress:
    """A ticking progress line while the (blocking) HNSW build runs."""

    def __init__(self, enabled: bool | None, points: int, label: str | None = None) -> None:
        self.enabled = progress_enabled(enabled)
        self.points = points
        self.label = label or f"building HNSW graph ({points:,} new points)"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar: Any = None

    def __enter__(self) -> Self:
        if self.enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=None,
                desc=self.label,
                unit="s",
                bar_format="{desc}: {elapsed}",
            )
            self._thread = threading.Thread(target=self._tick, daemon=True)
            self._thread.start()
        return self

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            self._bar.refresh()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._bar is not None:
            self._bar.close()
