"""Distributed encoding and ingest on Ray Data (extra ``ray``).

:func:`ingest` encodes a ``ray.data.Dataset`` (or SOURCE files, as ``bge index``) on a Ray
actor pool, each actor loading the encoder once, and writes through the same ``Store``
protocol as single-process indexing: same ids, count, settings record and vectors.
Importing this package imports neither Ray nor torch.
"""

from __future__ import annotations

from bge_ray.errors import RayIngestError, RowError
from bge_ray.ingest import (
    FailedRow,
    IngestProgress,
    IngestResult,
    ingest,
    is_server_uri,
)

__all__ = ["FailedRow", "IngestProgress", "IngestResult", "RayIngestError", "RowError", "ingest", "is_server_uri"]
