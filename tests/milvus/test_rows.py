"""Ingest, upsert, delete, ColBERT companion rows, settings and collection validation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bge_core.errors import CollectionMismatchError, StoreError
from bge_core.index import RetryPolicy, VectorIndex, make_id
from bge_core.reference import InMemoryStore
from bge_milvus import MilvusIndex


def token_rows(client: Any, index: MilvusIndex, doc_id: str | None = None) -> dict[str, list[int]]:
    """``{doc_id: sorted positions}`` of the ColBERT companion collection."""
    flt = 'doc_id != ""' if doc_id is None else f'doc_id == "{doc_id}"'
    rows = client.query(index.store.colbert_collection, filter=flt, output_fields=["doc_id", "pos"], limit=16384)
    out: dict[str, list[int]] = {}
    for r in rows:
        out.setdefault(r["doc_id"], []).append(int(r["pos"]))
    return {k: sorted(v) for k, v in out.items()}


def test_reingest_is_idempotent(client: Any, m3: Any, corpus: list[str], metadatas: list[dict[str, Any]]) -> None:
    index = MilvusIndex(client, "docs", m3, show_progress=False, write_batch_size=5, chunk_size=7)
    ids = index.add_texts(corpus, metadatas)
    tokens = token_rows(client, index)
    assert index.count() == len(set(ids)) == len(corpus)
    assert index.add_texts(corpus, metadatas) == ids
    assert index.add_texts(iter(corpus), iter(metadatas)) == ids  # streamed input
    assert index.count() == len(corpus)
    assert token_rows(client, index) == tokens
    colbert = m3.encode_outputs(corpus, query=False, dense=False, sparse=False, colbert=True).colbert
    assert {i: len(p) for i, p in tokens.items()} == {i: c.shape[0] for i, c in zip(ids, colbert) if c.shape[0]}
    assert all(p == list(range(len(p))) for p in tokens.values())


def test_get_and_count(client: Any, m3: Any, corpus: list[str], metadatas: list[dict[str, Any]]) -> None:
    index = MilvusIndex(client, "docs", m3, show_progress=False)
    ids = index.add_texts(corpus, metadatas, ids=[f"u{i}" for i in range(len(corpus))])
    assert ids[0] == make_id("u0", corpus[0])
    got = index.get([ids[3], "missing", ids[1]])
    assert [h.text for h in got] == [corpus[3], corpus[1]]
    assert got[0].metadata == metadatas[3] and got[0].score == 0.0


def test_delete_removes_colbert_rows(client: Any, m3: Any, corpus: list[str]) -> None:
    index = MilvusIndex(client, "docs", m3, show_progress=False)
    ids = index.add_texts(corpus)
    gone = [ids[0], ids[2]]
    assert all(i in token_rows(client, index) for i in gone)
    index.delete(gone + ["not-there"])
    assert index.count() == len(corpus) - 2
    rows = token_rows(client, index)
    assert not set(gone) & set(rows) and ids[1] in rows
    assert not {h.id for h in index.search("the cat on the mat", 12, mode="colbert")} & set(gone)


def test_upsert_replaces_colbert_rows(client: Any, m3: Any) -> None:
    index = MilvusIndex(client, "docs", m3, show_progress=False)
    ref = VectorIndex(InMemoryStore(), m3)
    long = "the cat and the dog and the fish and the bird in the water with the sun"
    short = "cat"
    for text in (long, short, long):
        ids = index.add_texts([text, "blood cells"], ids=["doc", "other"])
        ref.add_texts([text, "blood cells"], ids=["doc", "other"])
        n = m3.encode_outputs([text], query=False, dense=False, sparse=False, colbert=True).colbert[0].shape[0]
        assert token_rows(client, index, ids[0])[ids[0]] == list(range(n))
        assert index.count() == 2
        assert index.get([ids[0]])[0].text == text
        for q in ("the cat", "fish water"):
            got, want = index.search(q, 2, mode="colbert"), ref.search(q, 2, mode="colbert")
            assert [h.id for h in got] == [h.id for h in want]
            np.testing.assert_allclose([h.score for h in got], [h.score for h in want], atol=1e-5)


def test_metadata_change_rewrites_row(client: Any, m3: Any) -> None:
    index = MilvusIndex(client, "docs", m3, show_progress=False)
    index.add_texts(["the cat"], [{"v": 1}])
    index.add_texts(["the cat"], [{"v": 2}])
    assert index.count() == 1
    assert [h.metadata for h in index.search("cat", 5, filter={"v": 2})] == [{"v": 2}]
    assert index.search("cat", 5, filter={"v": 1}) == []


def test_settings_roundtrip(milvus_db: Any, m3: Any) -> None:
    from pymilvus import MilvusClient
    from store_checks import release_milvus as release

    client = MilvusClient(str(milvus_db))
    index = MilvusIndex(client, "docs", m3)
    assert index.read_settings() is None
    index.ensure_collection()
    assert index.read_settings() is None
    index.write_settings({"model": "tiny", "max_tokens": 64, "outputs": ["dense", "sparse"]})
    index.write_settings({"model": "tiny", "max_tokens": 128, "outputs": ["dense", "sparse"]})
    client.close()
    release(milvus_db)
    client = MilvusClient(str(milvus_db))
    assert MilvusIndex(client, "docs", m3).read_settings() == {
        "model": "tiny",
        "max_tokens": 128,
        "outputs": ["dense", "sparse"],
    }
    client.close()


@pytest.mark.parametrize(
    "kwargs,needle",
    [({"sparse": False}, "sparse"), ({"colbert": False}, "ColBERT"), ({"dense": False}, "dense")],
)
def test_mismatch_is_refused(client: Any, m3: Any, kwargs: dict[str, bool], needle: str) -> None:
    MilvusIndex(client, "docs", m3).ensure_collection()
    other = MilvusIndex(client, "docs", m3, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(CollectionMismatchError, match=needle) as err:
        other.add_texts(["the cat"])
    assert "'docs'" in str(err.value)
    assert MilvusIndex(client, "docs", m3).count() == 0


def test_foreign_collection_is_refused(client: Any, m3: Any) -> None:
    client.create_collection("plain", dimension=3)
    with pytest.raises(CollectionMismatchError, match="'plain'.*dense dim is 3|'plain'.*missing"):
        MilvusIndex(client, "plain", m3).ensure_collection()
    sparse_only = MilvusIndex(client, "sp", m3, dense=False, colbert=False)
    sparse_only.add_texts(["the cat", "the dog"])
    assert [h.text for h in sparse_only.search("cat", 2, mode="sparse")] == ["the cat"]
    with pytest.raises(CollectionMismatchError, match="dense"):
        MilvusIndex(client, "sp", m3, colbert=False).ensure_collection()


def test_too_long_text_is_a_clear_error(client: Any, m3: Any) -> None:
    index = MilvusIndex(client, "docs", m3, retry=RetryPolicy(attempts=2, initial_delay=0.01))
    with pytest.raises(StoreError, match="65535.*split the document"):
        index.add_texts(["cat " * 20000])
    assert index.count() == 0


def test_no_pymilvus_or_torch_on_import() -> None:
    import subprocess
    import sys

    code = "import sys, bge_milvus; assert 'torch' not in sys.modules and 'pymilvus' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env=_env())


def _env() -> dict[str, str]:
    import os
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), str(root / "integrations"), os.environ.get("PYTHONPATH", "")]),
    }


def test_before_first_write(client: Any, m3: Any) -> None:
    index = MilvusIndex(client, "empty", m3)
    assert index.count() == 0 and index.get(["x"]) == []
    index.delete(["x"])
    with pytest.raises(StoreError, match="'empty' does not exist; add texts first"):
        index.search("cat", 3, mode="dense")
    index.ensure_collection()
    assert index.search("cat", 3, mode="colbert") == []
