"""``bge copy`` / ``copy_index``: Edge -> Qdrant local and Edge -> Milvus Lite with exact counts
and equal vectors, resumable, settings carried over; reference -> Edge; the CLI command."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from edge_helpers import EDGE_CORPUS, QUERIES

from bge_core.copy import CopyCheckError, copy_index, records_equal
from bge_core.errors import IndexSettingsMismatchError, StoreError
from bge_core.index import RetryPolicy

N_EXTRA = 60


def _corpus() -> tuple[list[str], list[dict[str, Any]]]:
    texts = [t for t, _ in EDGE_CORPUS] + [f"{EDGE_CORPUS[i % 12][0]} number {i}" for i in range(N_EXTRA)]
    metas = [dict(m) for _, m in EDGE_CORPUS] + [{"n": i, "tags": ["a", "b"]} for i in range(N_EXTRA)]
    return texts, metas


@pytest.fixture(scope="module")
def edge_src(m3: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """An Edge index of 72 texts (dense + sparse + ColBERT) with settings, shared read-only."""
    from bge_qdrant import QdrantEdgeIndex

    index = QdrantEdgeIndex(Path(tmp_path_factory.mktemp("src")) / "edge", m3, show_progress=False)
    texts, metas = _corpus()
    index.add_texts(texts, metas)
    index.write_settings({"model": "tiny-m3", "max_tokens": 128})
    yield index
    index.close()


def _all_equal(src: Any, dst: Any) -> None:
    from bge_core.copy import as_exportable

    s, d = as_exportable(src), as_exportable(dst)
    cursor = None
    n = 0
    while True:
        recs, cursor = s.export(cursor, 50)
        got = {r.id: r for r in d.fetch_records([r.id for r in recs])}
        for r in recs:
            assert not records_equal(r, got[r.id]), (r.id, records_equal(r, got[r.id]))
        n += len(recs)
        if cursor is None:
            break
    assert n == src.count() == dst.count()


def _qdrant_store(path: Path) -> Any:
    from qdrant_client import QdrantClient

    from bge_qdrant import QdrantStore

    return QdrantStore(QdrantClient(path=str(path)), "copy", owns_client=True)


def _milvus_store(path: Path) -> Any:
    from pymilvus import MilvusClient

    from bge_milvus.store import MilvusStore

    return MilvusStore(MilvusClient(str(path)), "copy", owns_client=True)


def test_edge_to_qdrant_local(edge_src: Any, tmp_path: Path) -> None:
    from bge_core.index import VectorIndex

    dst = _qdrant_store(tmp_path / "qd")
    try:
        report = copy_index(edge_src.store, dst, batch_size=16, sample=20)
        assert report.written == report.read == report.source_count == report.destination_count == 12 + N_EXTRA
        assert report.checked == 20
        _all_equal(edge_src.store, dst)
        assert dst.read_settings() == {"model": "tiny-m3", "max_tokens": 128}
        # the copy searches like the source, in every mode
        copy = VectorIndex(dst, edge_src.encoder)
        for mode in ("dense", "sparse", "hybrid", "colbert"):
            request = edge_src.plan(QUERIES[0], 5, mode=mode)
            assert [h.id for h in copy.store.query(request)] == [h.id for h in edge_src.store.query(request)], mode
        again = copy_index(edge_src.store, dst, batch_size=16)
        assert again.written == 0 and again.skipped == 12 + N_EXTRA
    finally:
        dst.close()


def test_edge_to_milvus_lite(edge_src: Any, tmp_path: Path) -> None:
    dst = _milvus_store(tmp_path / "m.db")
    try:
        report = copy_index(edge_src.store, dst, batch_size=25, sample=30)
        assert report.written == report.destination_count == 12 + N_EXTRA and report.checked == 30
        _all_equal(edge_src.store, dst)
        assert dst.read_settings() == {"model": "tiny-m3", "max_tokens": 128}
    finally:
        dst.close()


def test_interrupted_copy_resumes_exactly(edge_src: Any, tmp_path: Path) -> None:
    from bge_qdrant.edge_store import EdgeStore

    dst = EdgeStore(tmp_path / "dst", "copy", show_progress=False)
    real = dst.upsert
    calls = {"n": 0}

    def failing(records: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk full")
        real(records)

    dst.upsert = failing  # type: ignore[method-assign]
    with pytest.raises(StoreError, match="disk full"):
        copy_index(edge_src.store, dst, batch_size=10, retry=RetryPolicy(attempts=1))
    assert dst.count() == 20
    dst.upsert = real  # type: ignore[method-assign]
    report = copy_index(edge_src.store, dst, batch_size=10)
    assert report.skipped == 20 and report.written == 12 + N_EXTRA - 20 and dst.count() == 12 + N_EXTRA
    _all_equal(edge_src.store, dst)
    dst.close()


def test_reference_to_edge_and_refusals(m3: Any, tmp_path: Path) -> None:
    from bge_core.index import VectorIndex
    from bge_core.reference import InMemoryStore
    from bge_qdrant.edge_store import EdgeStore

    ref = VectorIndex(InMemoryStore(), m3)
    texts, metas = _corpus()
    ref.add_texts(texts[:20], metas[:20])
    ref.write_settings({"model": "a"})
    dst = EdgeStore(tmp_path / "e", show_progress=False)
    assert copy_index(ref.store, dst, sample=5).destination_count == 20
    _all_equal(ref.store, dst)
    # other settings in the destination: refused before writing
    ref.write_settings({"model": "b"})
    with pytest.raises(IndexSettingsMismatchError):
        copy_index(ref.store, dst)
    # a destination holding extra records: the count check fails
    ref.write_settings({"model": "a"})
    ref.delete([ref.add_texts(["one more"])[0]])
    ref.delete(ref.add_texts([texts[0]], [metas[0]]))  # now the source has 19
    with pytest.raises(CopyCheckError, match="holds 20 records but the source 19"):
        copy_index(ref.store, dst)
    with pytest.raises(StoreError, match="holds no index"):
        copy_index(InMemoryStore(), dst)
    dst.close()


def test_cli_copy_edge_to_qdrant_and_milvus(
    edge_src: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bge_core.cli import stores
    from bge_core.cli.main import main

    # test-local registration of the edge entry point (the shared venv lacks it)
    eps = [
        *stores._entry_points(),
        importlib.metadata.EntryPoint("edge", "bge_qdrant.edge_uri:open_index", stores.ENTRY_POINT_GROUP),
    ]
    monkeypatch.setattr(stores, "_entry_points", lambda: eps)
    src_path = edge_src.store.path
    edge_src.store.close()  # the CLI opens the folder itself (one process per folder)
    try:
        for dst in (f"qdrant:{tmp_path / 'q'}", f"milvus:{tmp_path / 'm.db'}"):
            assert main(["copy", f"edge:{src_path}", dst, "--batch-size", "32", "--no-progress"]) == 0
            assert f"both hold {12 + N_EXTRA} records" in capsys.readouterr().out
        # re-run: nothing written again
        assert main(["copy", f"edge:{src_path}", f"qdrant:{tmp_path / 'q'}", "--no-progress"]) == 0
        assert f"0 written, {12 + N_EXTRA} already there" in capsys.readouterr().out
        assert main(["copy", f"edge:{src_path}", f"edge:{src_path}"]) != 0
        assert "same store and collection" in capsys.readouterr().err
    finally:
        edge_src.store._closed = False  # reopen for later tests of this module
