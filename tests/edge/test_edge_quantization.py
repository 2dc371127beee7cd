"""Dense int8 scalar quantisation with float rescoring (``EdgeStore(dense_quantization=...)``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from edge_helpers import low_rank_unit_vectors, make_edge_store

from bge_core.index import CollectionSpec, Record, SearchRequest, make_id

DIM = 384
N = 8_000  # 8,000 x 384-d floats pass Qdrant's indexing threshold (10,000 KB): a real HNSW segment
SPEC = CollectionSpec(dense_dim=DIM, sparse=False, colbert_dim=None)


def _vectors() -> np.ndarray:
    return low_rank_unit_vectors(N, DIM, seed=7)


def _fill(store: Any, x: np.ndarray) -> None:
    store.ensure(SPEC)
    for b in range(0, len(x), 2_000):
        store.upsert(
            [Record(make_id(None, str(i)), "t", {}, str(i), x[i], None, None) for i in range(b, min(b + 2_000, len(x)))]
        )
    store.build_index()


def _top(store: Any, q: np.ndarray, k: int = 1) -> list[Any]:
    return list(store.query(SearchRequest("dense", k, q, None, None, "rrf", 60, (1.0, 1.0), 100, None)))


def _engine_quantization(root: Path) -> Any:
    cfg = json.loads((root / "edge" / "bge" / "edge_config.json").read_text())
    return cfg["vectors"]["dense"].get("quantization_config")


def test_int8_answers_as_float_and_survives_reopen(tmp_path: Path) -> None:
    x = _vectors()
    opts: dict[str, Any] = {"build_threshold": None, "show_progress": False}
    f = make_edge_store(tmp_path / "f", dense_quantization=None, **opts)
    q = make_edge_store(tmp_path / "q", **opts)  # the default for new collections
    assert q.dense_quantization == "int8"
    _fill(f, x)
    _fill(q, x)
    assert q._shard.info().segments_count >= 1 and _engine_quantization(tmp_path / "q") is not None
    assert _engine_quantization(tmp_path / "f") is None
    rows = range(0, N, 97)
    want = [make_id(None, str(i)) for i in rows]
    got_f = [_top(f, x[i])[0] for i in rows]
    got_q = [_top(q, x[i])[0] for i in rows]
    assert [h.id for h in got_f] == want and [h.id for h in got_q] == want
    # rescored with the float vectors: the scores are exact cosines, not int8 approximations
    assert np.allclose([h.score for h in got_q], [h.score for h in got_f], atol=1e-5)
    f.close()
    q.close()
    # re-open with the opposite setting: each collection keeps what it was created with
    q2 = make_edge_store(tmp_path / "q", dense_quantization=None, **opts)
    f2 = make_edge_store(tmp_path / "f", dense_quantization="int8", quantization_oversampling=2.0, **opts)
    assert [_top(q2, x[i])[0].id for i in rows] == want
    assert [_top(f2, x[i])[0].id for i in rows] == want
    assert q2.dense_quantization == "int8" and f2.dense_quantization is None
    assert q2._params().quantization is not None and f2._params().quantization is None
    assert q2._params().hnsw_ef == 160 and f2._params().hnsw_ef == 128
    q2.close()
    f2.close()


def test_collection_made_before_the_option_stays_float(tmp_path: Path) -> None:
    x = _vectors()[:500]
    store = make_edge_store(tmp_path, dense_quantization=None, build_threshold=None, show_progress=False)
    _fill(store, x)
    store.close()
    marker = tmp_path / "edge" / "bge-edge.json"
    doc = json.loads(marker.read_text())
    del doc["collections"]["bge"]["dense_quantization"]  # as written by older versions
    marker.write_text(json.dumps(doc))
    old = make_edge_store(tmp_path, build_threshold=None, show_progress=False)  # default "int8"
    assert _top(old, x[3])[0].id == make_id(None, "3")
    assert old.dense_quantization is None and old._params().quantization is None
    old.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dense_quantization": "int4"}, "dense_quantization must be 'int8' or None"),
        ({"dense_quantization": True}, "dense_quantization must be 'int8' or None"),
        ({"quantization_oversampling": 0.5}, "quantization_oversampling must be a number from 1.0"),
        ({"quantization_oversampling": "2"}, "quantization_oversampling must be a number from 1.0"),
        ({"quantization_oversampling": True}, "quantization_oversampling must be a number from 1.0"),
    ],
)
def test_invalid_quantization_options_are_refused(tmp_path: Path, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_edge_store(tmp_path, **options)
    assert not (tmp_path / "edge").exists()  # refused before anything is written


def test_index_forwards_quantization_options(tmp_path: Path, m3: Any) -> None:
    from bge_qdrant import QdrantEdgeIndex

    with QdrantEdgeIndex(tmp_path / "i", m3, dense_quantization=None, quantization_oversampling=1.5) as idx:
        assert idx.store.dense_quantization is None and idx.store.quantization_oversampling == 1.5
    with pytest.raises(ValueError, match="dense_quantization"):
        QdrantEdgeIndex(tmp_path / "j", m3, dense_quantization="pq")  # type: ignore[arg-type]
