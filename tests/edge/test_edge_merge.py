"""Segment merging at the end of a large ingest (``EdgeStore.merge_segments``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from edge_helpers import low_rank_unit_vectors, make_edge_store

from bge_core.index import CollectionSpec, Record, SearchRequest, make_id

DIM = 384  # 7,000 x 384-d floats pass Qdrant's indexing threshold (10,000 KB): real HNSW segments
N = 28_000
OPTIONS: dict[str, Any] = {"build_threshold": 7_000, "hnsw_ef_construct": 16, "show_progress": False}


def _vectors() -> np.ndarray:
    # answers before and after a merge can be compared exactly (see low_rank_unit_vectors)
    return low_rank_unit_vectors(N, DIM, seed=13)


def _ingest(store: Any, x: np.ndarray) -> None:
    store.ensure(CollectionSpec(dense_dim=DIM, sparse=False, colbert_dim=None))
    for b in range(0, len(x), 2_000):
        store.upsert(
            [Record(make_id(None, str(i)), f"t{i}", {}, str(i), x[i], None, None) for i in range(b, b + 2_000)]
        )


def _top1(store: Any, x: np.ndarray, rows: range) -> list[str]:
    return [
        store.query(SearchRequest("dense", 1, x[i], None, None, "rrf", 60, (1.0, 1.0), 100, None))[0].id for i in rows
    ]


def _engine_optimizers(path: Path) -> Any:
    return json.loads((path / "edge" / "bge" / "edge_config.json").read_text())["optimizers"]


def test_merge_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_segments must be >= 1"):
        make_edge_store(tmp_path, max_segments=0)
    with pytest.raises(ValueError, match="merged_segment_points must be >= 1"):
        make_edge_store(tmp_path, merged_segment_points=0)


def test_small_ingest_does_not_merge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A merge re-indexes up to ``merged_segment_points``: only an ingest that filled a capped
    segment pays for it, not every small ``add_texts`` call."""
    from bge_qdrant.edge_store import EdgeStore

    calls: list[int] = []

    def fake_merge(self: Any, **kw: Any) -> bool:
        calls.append(1)
        return False

    monkeypatch.setattr(EdgeStore, "merge_segments", fake_merge)
    store = make_edge_store(tmp_path, build_threshold=100, max_segment_points=150, show_progress=False)
    store.ensure(CollectionSpec(dense_dim=4, sparse=False, colbert_dim=None))
    rec = [Record(make_id(None, str(i)), "t", {}, str(i), np.ones(4, np.float32), None, None) for i in range(149)]
    store.upsert(rec)
    store.finish_ingest()
    assert calls == []
    store.upsert([Record(make_id(None, "x"), "t", {}, "x", np.ones(4, np.float32), None, None)])
    store.finish_ingest()  # 150 points since the last merge: one capped segment's worth
    assert calls == [1]
    store.close()


@pytest.mark.slow
def test_large_ingest_ends_with_few_segments_and_same_answers(tmp_path: Path) -> None:
    x = _vectors()
    store = make_edge_store(tmp_path, **OPTIONS, max_segments=None)  # no merge yet
    _ingest(store, x)
    store.finish_ingest()
    before = store.segment_count()
    assert before >= 4  # one capped segment per build
    optimizers = _engine_optimizers(tmp_path)
    rows = range(0, N, 700)
    want = [make_id(None, str(i)) for i in rows]
    assert _top1(store, x, rows) == want
    store.max_segments = 2
    assert store.merge_segments() is True
    assert store.segment_count() <= 3  # 2 + the appendable one
    assert store.count() == N
    assert _top1(store, x, rows) == want  # each point still finds itself first
    assert store.get([want[3]])[0].text == f"t{rows[3]}"
    # the collection's own optimizer settings are back (builds of the next ingest stay capped)
    assert _engine_optimizers(tmp_path) == optimizers
    marker = json.loads((tmp_path / "edge" / "bge-edge.json").read_text())
    assert "merging" not in marker["collections"]["bge"]
    assert store.merge_segments() is False  # nothing left to merge
    store.close()


@pytest.mark.slow
def test_finish_ingest_merges_after_a_large_ingest(tmp_path: Path) -> None:
    store = make_edge_store(tmp_path, **OPTIONS, max_segments=2)
    _ingest(store, _vectors())
    store.close()  # close() ends the ingest: build, then merge
    reopened = make_edge_store(tmp_path, show_progress=False)
    assert reopened.count() == N
    assert reopened.segment_count() <= 3
    reopened.close()


_KILLED_MERGE = """
import sys, time
from edge_helpers import make_edge_store
store = make_edge_store(__import__("pathlib").Path(sys.argv[1]), build_threshold=7_000, hnsw_ef_construct=16,
                        show_progress=False, max_segments=1)
print("merging", flush=True)
store.merge_segments()
print("merged", flush=True)
time.sleep(60)
"""


@pytest.mark.slow
def test_kill_during_merge_loses_nothing(tmp_path: Path) -> None:
    x = _vectors()
    store = make_edge_store(tmp_path, **OPTIONS, max_segments=None)
    _ingest(store, x)
    store.finish_ingest()
    before = store.segment_count()
    optimizers = _engine_optimizers(tmp_path)
    store.close()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_MERGE, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "merging"
    # kill it while the engine builds the merged segment (its builder folder exists)
    temp = tmp_path / "edge" / "bge" / "temp_segments"
    deadline = time.monotonic() + 60
    while not (temp.is_dir() and any(temp.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert temp.is_dir() and any(temp.iterdir()), "the merge never started building"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    reopened = make_edge_store(tmp_path, show_progress=False, max_segments=2)
    assert reopened.count() == N
    assert _engine_optimizers(tmp_path) == optimizers  # the merge settings did not stay
    marker = json.loads((tmp_path / "edge" / "bge-edge.json").read_text())
    assert "merging" not in marker["collections"]["bge"]
    rows = range(0, N, 1_400)
    assert _top1(reopened, x, rows) == [make_id(None, str(i)) for i in rows]
    assert reopened.segment_count() <= before + 1
    assert reopened.merge_segments() is True  # and a merge after the kill completes
    assert reopened.count() == N
    assert reopened.segment_count() <= 3
    reopened.close()


def test_index_forwards_merge_options(tmp_path: Path, m3: Any) -> None:
    from bge_qdrant import QdrantEdgeIndex

    index = QdrantEdgeIndex(tmp_path / "idx", m3, max_segments=3, merged_segment_points=1_000)
    assert (index.store.max_segments, index.store.merged_segment_points) == (3, 1_000)
    never = QdrantEdgeIndex(tmp_path / "idx2", m3, max_segments=None)
    assert never.store.max_segments is None
