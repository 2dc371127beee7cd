"""The parts of bge_ray that need no cluster: rows, ids, worker error handling."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")


class _PoisonEncoder:
    """Dense encoder stand-in that fails on any text containing 'poison'."""

    model_name = "poison"
    dim = 4
    colbert_dim = 0
    max_length = 32
    supports_sparse = False
    supports_colbert = False

    def encode_outputs(
        self, texts: Any, *, query: bool, dense: bool = True, sparse: bool = False, colbert: bool = False
    ) -> Any:
        from bge_core.types import M3Output

        if any("poison" in t for t in texts):
            raise RuntimeError("cannot encode this")
        return M3Output(dense=np.ones((len(texts), 4), dtype=np.float32) / 2)


def _worker(on_error: str) -> Any:
    from bge_ray.workers import EncodeWorker, WorkerConfig

    config = WorkerConfig(
        model=_PoisonEncoder,
        device="cpu",
        dtype="float32",
        batch_size=8,
        torch_threads=1,
        sparse=False,
        colbert=False,
        on_error=on_error,
        skip_unchanged=True,
    )  # type: ignore[arg-type]
    return EncodeWorker(config, stored={})


def test_rows_get_the_ids_and_hashes_of_vector_index() -> None:
    from bge_core.index import content_hash, make_id
    from bge_ray.rows import prepare_rows

    table = pa.table({"text": ["a", "b"], "id": ["x", None], "topic": ["t", None]})
    good, bad = prepare_rows(table)
    assert not bad
    assert [r.id for r in good] == [make_id("x", "a"), make_id(None, "b")]
    assert good[0].metadata == {"topic": "t"} and good[1].metadata == {}  # nulls are left out
    assert good[0].hash == content_hash("a", {"topic": "t"})


def test_a_failing_row_is_named_and_fails_or_is_skipped() -> None:
    from bge_ray.errors import MARKER, RowError, from_ray_exception

    batch = pa.table({"text": ["fine", "poison pill", "also fine"], "id": ["a", "p1", "b"]})
    with pytest.raises(ValueError, match="row id='p1' failed: RuntimeError: cannot encode this") as info:
        _worker("fail")(batch)
    assert str(info.value).startswith(MARKER)
    # What the driver rebuilds from Ray's traceback text.
    err = from_ray_exception(RuntimeError(f"Traceback ...\nValueError: {info.value}\nThe above exception ..."))
    assert isinstance(err, RowError) and err.label == "id='p1'" and "on_error='skip'" in str(err)

    out = _worker("skip")(batch).to_pylist()
    status = {r["id"]: r["status"] for r in out}
    assert list(status.values()).count("encoded") == 2 and "cannot encode this" in str([r["error"] for r in out])
    from bge_core.index import make_id

    failed = [r for r in out if r["status"] == "failed"]
    assert [r["id"] for r in failed] == [make_id("p1", "poison pill")] and "row id='p1' failed" in failed[0]["error"]


def test_server_uris_are_written_by_the_workers() -> None:
    from bge_ray import is_server_uri

    assert is_server_uri("qdrant+http://h:6333") and is_server_uri("milvus+https://h")
    assert (
        not is_server_uri("qdrant:./dir")
        and not is_server_uri("milvus:./x.db")
        and not is_server_uri("qdrant::memory:")
    )


def test_encoded_records_round_trip_through_the_arrow_columns() -> None:
    from bge_core.index import Record
    from bge_core.types import SparseVector
    from bge_ray.rows import decode_records, status_table

    rng = np.random.default_rng(0)
    records = [
        Record(
            f"id{i}",
            f"text {i}",
            {"n": i},
            f"h{i}",
            rng.random(8, dtype=np.float32),
            None if i % 3 == 0 else SparseVector(np.arange(i, dtype=np.int32), rng.random(i, dtype=np.float32)),
            None if i == 4 else rng.random((i + 1, 5), dtype=np.float32),
        )
        for i in range(7)
    ]
    table = status_table([("s", "skipped", None), (None, "failed", "boom")], records)
    assert table.num_rows == 9 and table.column("status").to_pylist()[:2] == ["skipped", "failed"]
    # Slices and several chunks: the offsets of each chunk are honoured.
    table = pa.concat_tables([table.slice(0, 4), table.slice(4)])
    out = decode_records(table, colbert_dim=5)
    assert [r.id for r in out] == [r.id for r in records]
    for want, got in zip(records, out):
        assert (got.text, got.metadata, got.hash) == (want.text, want.metadata, want.hash)
        np.testing.assert_array_equal(got.dense, want.dense)
        if want.sparse is None:
            assert got.sparse is None
        else:
            assert got.sparse is not None
            np.testing.assert_array_equal(got.sparse.indices, want.sparse.indices)
            np.testing.assert_array_equal(got.sparse.values, want.sparse.values)
        if want.colbert is None:
            assert got.colbert is None
        else:
            assert got.colbert is not None and got.colbert.dtype == np.float32
            np.testing.assert_array_equal(got.colbert, want.colbert)


def test_chunk_size_must_be_positive(tmp_path: Any) -> None:
    import bge_ray

    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        bge_ray.ingest(str(tmp_path), f"qdrant:{tmp_path / 'x'}", chunk_size=0)
