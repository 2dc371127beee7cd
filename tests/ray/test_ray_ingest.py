"""bge_ray.ingest: 2 workers equal a single-process ingest; bad input fails before any work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ray_helpers import rows
from store_dump import assert_same, qdrant_rows


def _single_process(uri: str, encoder: Any, data: list[dict[str, Any]], *, colbert: bool = True) -> None:
    from bge_core.cli.stores import open_store
    from bge_core.index import VectorIndex

    probe = open_store(uri, collection="bge")
    try:
        index = VectorIndex(probe, encoder, sparse=True, colbert=colbert, chunk_size=16)
        index.add_texts(
            [r["text"] for r in data],
            metadatas=[{k: v for k, v in r.items() if k not in ("text", "id")} for r in data],
            ids=[r["id"] for r in data],
        )
    finally:
        probe.close()


def test_m3_two_workers_into_qdrant_local_equal_single_process(
    ray_cluster: Any, tiny_m3_path: Path, tmp_path: Path
) -> None:
    import bge_ray
    from bge_core import BGEM3Encoder

    data = rows(48)
    bad = {"text": None, "id": "broken-row", "topic": "odd", "n": -1}  # a null text: skipped and reported
    ds = ray_cluster.data.from_items(data + [bad])
    seen: list[Any] = []
    result = bge_ray.ingest(
        ds,
        f"qdrant:{tmp_path / 'ray'}",
        model=str(tiny_m3_path),
        workers=2,
        batch_size=8,
        dtype="float32",
        on_error="skip",
        on_progress=seen.append,
    )
    assert (result.rows, result.encoded, result.written, result.skipped, result.stored) == (49, 48, 48, 0, 48)
    assert len(result.failed) == 1 and result.failed[0].id is None
    assert "row id='broken-row' failed: 'text' is NoneType, not str" in result.failed[0].message
    assert seen and seen[-1].rows == 49 and seen[-1].total == 49
    assert result.settings["kind"] == "m3" and result.settings["outputs"] == ["dense", "sparse", "colbert"]

    encoder = BGEM3Encoder(tiny_m3_path, device="cpu", dtype="float32", batch_size=8)
    _single_process(f"qdrant:{tmp_path / 'single'}", encoder, data)
    got, want = qdrant_rows(tmp_path / "ray", "bge"), qdrant_rows(tmp_path / "single", "bge")
    assert_same(got, want)

    # A re-run finds everything stored and unchanged: nothing is encoded.
    again = bge_ray.ingest(
        ray_cluster.data.from_items(data),
        f"qdrant:{tmp_path / 'ray'}",
        model=str(tiny_m3_path),
        workers=2,
        batch_size=8,
        dtype="float32",
    )
    assert (again.rows, again.encoded, again.skipped, again.stored) == (48, 0, 48, 48)


def test_bad_input_fails_before_any_work(ray_cluster: Any, tiny_m3_path: Path, tmp_path: Path) -> None:
    import bge_ray
    from bge_core.errors import StoreError

    store = tmp_path / "never"
    uri = f"qdrant:{store}"
    with pytest.raises(ValueError, match="no 'text' column.*rename_columns"):
        bge_ray.ingest(ray_cluster.data.from_items([{"body": "x"}]), uri, model=str(tiny_m3_path))
    with pytest.raises(TypeError, match="'text' column holds int64, not strings"):
        bge_ray.ingest(ray_cluster.data.from_items([{"text": 3}]), uri, model=str(tiny_m3_path))
    with pytest.raises(TypeError, match="column 'blob' holds binary"):
        bge_ray.ingest(ray_cluster.data.from_items([{"text": "a", "blob": b"x"}]), uri, model=str(tiny_m3_path))
    ds = ray_cluster.data.from_items([{"text": "a"}])
    with pytest.raises(bge_ray.RayIngestError, match="cannot reach the Ray cluster at 127.0.0.1:1"):
        bge_ray.ingest(ds, uri, model=str(tiny_m3_path), address="127.0.0.1:1")
    with pytest.raises(ValueError, match="on_error must be 'fail' or 'skip'"):
        bge_ray.ingest(ds, uri, model=str(tiny_m3_path), on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="workers must be a positive int"):
        bge_ray.ingest(ds, uri, model=str(tiny_m3_path), workers=0)
    assert not store.exists()
    with pytest.raises(StoreError, match="cannot reach Qdrant"):
        bge_ray.ingest(ds, "qdrant+http://127.0.0.1:1", model=str(tiny_m3_path))
    with pytest.raises(bge_ray.RayIngestError, match="need 6 CPUs but the Ray cluster has 2"):
        bge_ray.ingest(ds, uri, model=str(tiny_m3_path), workers=3, cpus_per_worker=2)


def test_m3_two_workers_into_edge_equal_single_process(ray_cluster: Any, tiny_m3_path: Path, tmp_path: Path) -> None:
    """The embedded default store: the driver is its single writer (Edge holds one process per folder)."""
    pytest.importorskip("qdrant_edge")
    from store_dump import edge_rows

    import bge_ray
    from bge_core import BGEM3Encoder

    data = rows(32, seed=11)
    result = bge_ray.ingest(
        ray_cluster.data.from_items(data),
        f"edge:{tmp_path / 'ray'}",
        model=str(tiny_m3_path),
        workers=2,
        batch_size=8,
        dtype="float32",
    )
    assert (result.rows, result.encoded, result.written, result.stored) == (32, 32, 32, 32)
    encoder = BGEM3Encoder(tiny_m3_path, device="cpu", dtype="float32", batch_size=8)
    _single_process(f"edge:{tmp_path / 'single'}", encoder, data)
    got, want = edge_rows(tmp_path / "ray", "bge"), edge_rows(tmp_path / "single", "bge")
    assert_same(got, want)
