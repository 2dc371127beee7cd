"""Ingest, rows and bad input through Qdrant local mode."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient

from bge_core.index import Document, content_hash, make_id
from bge_core.scoring import maxsim


def test_ids_payload_and_reingest_keep_count(memory_client: Any, make_index: Any, qd_corpus: Any) -> None:
    index = make_index(memory_client)
    texts, metas = [t for t, _ in qd_corpus], [m for _, m in qd_corpus]
    ids = index.add_texts(texts, metas)
    assert ids == [make_id(None, t) for t in texts]
    assert index.count() == len(texts)
    assert index.add_texts(texts, metas) == ids  # unchanged: skipped
    assert index.count() == len(texts)
    assert index.add_texts(texts, metas, skip_unchanged=False) == ids
    assert index.count() == len(texts)
    point = memory_client.retrieve("docs", [ids[2]], with_payload=True)[0]
    assert point.payload == {"text": texts[2], "metadata": metas[2], "hash": content_hash(texts[2], metas[2])}
    # user ids are deterministic too, and the metadata update is written
    ids2 = index.add_texts(["the cat is on the mat"], [{"topic": "pet"}], ids=["u1"])
    assert ids2 == [make_id("u1", "the cat is on the mat")]
    assert index.get(ids2)[0].metadata == {"topic": "pet"}
    assert index.count() == len(texts) + 1


def test_add_documents_get_delete(make_index: Any) -> None:
    index = make_index()
    ids = index.add_documents(
        [
            Document("the cat", {"a": 1}),
            {"text": "the dog", "metadata": {"a": 2}, "id": 7},
            Document("the fish", id="f"),
        ]
    )
    assert index.count() == 3
    hits = index.get([ids[2], "not-a-uuid", ids[0], make_id("missing", "x")])
    assert [(h.id, h.text, h.metadata, h.score) for h in hits] == [
        (ids[2], "the fish", {}, 0.0),
        (ids[0], "the cat", {"a": 1}, 0.0),
    ]
    index.delete([ids[0], "not-a-uuid", make_id("missing", "x")])
    assert index.count() == 2
    assert index.get([ids[0]]) == []
    assert index.get(["nope"]) == [] and index.get([]) == []
    index.delete([])


def test_bad_input_is_refused_before_anything_is_written(memory_client: Any, make_index: Any) -> None:
    index = make_index(memory_client)
    with pytest.raises(ValueError, match="same length"):
        index.add_texts(["the cat", "the dog"], [{"a": 1}])
    with pytest.raises(ValueError, match="same length"):
        index.add_texts(["the cat", "the dog"], ids=["a"])
    with pytest.raises(TypeError, match=r"metadatas\[1\]\['when'\] is not JSON-serialisable"):
        index.add_texts(["the cat", "the dog"], [{"a": 1}, {"when": object()}])
    with pytest.raises(TypeError, match="single str"):
        index.add_texts("the cat")
    assert not memory_client.collection_exists("docs") or memory_client.count("docs").count == 0
    with pytest.raises(ValueError, match="query is empty"):
        index.search("   ")
    with pytest.raises(ValueError, match="unknown mode"):
        index.search("the cat", mode="bm25")


def test_text_with_empty_sparse_vector_is_stored_without_it_and_found_by_dense(
    memory_client: Any, make_index: Any, m3: Any
) -> None:
    empty = ""  # no token but the specials: no lexical weights, still a dense vector
    assert len(m3.encode([empty]).sparse[0]) == 0
    index = make_index(memory_client)
    ids = index.add_texts([empty, "the cat is on the mat"])
    vectors = {str(p.id): p.vector for p in memory_client.retrieve("docs", ids, with_vectors=True)}
    assert set(vectors[ids[0]]) == {"dense", "colbert"}
    assert set(vectors[ids[1]]) == {"dense", "sparse", "colbert"}
    q = m3.encode(["the sun"]).dense[0]
    hits = {h.id: h for h in index.search("the sun", 2, mode="dense")}
    assert ids[0] in hits
    assert hits[ids[0]].score == pytest.approx(float(np.dot(q, m3.encode([empty]).dense[0])), abs=1e-5)
    assert hits[ids[0]].text == ""
    assert ids[0] in {h.id for h in index.search("the sun", 2, mode="hybrid")}
    assert ids[0] not in {h.id for h in index.search("the cat", 2, mode="sparse")}


def test_long_documents_keep_their_first_colbert_vectors(
    memory_client: Any, make_index: Any, m3: Any, caplog: pytest.LogCaptureFixture
) -> None:
    index = make_index(memory_client, colbert_max_vectors=4)
    long_a = "cancer cells grow in the liver and the blood of mice"
    long_b = "the dog is in the water and the cat is on the mat"
    with caplog.at_level(logging.WARNING, logger="bge_qdrant"):
        ids = index.add_texts([long_a, long_b, "the sun"])
    warnings = [r for r in caplog.records if "ColBERT token vectors" in r.getMessage()]
    assert len(warnings) == 1  # logged once per index
    stored = {str(p.id): p.vector["colbert"] for p in memory_client.retrieve("docs", ids, with_vectors=["colbert"])}
    full = m3.encode([long_a, "the sun"], dense=False, sparse=False, colbert=True).colbert
    assert full[0].shape[0] > 4
    assert np.asarray(stored[ids[0]]).shape == (4, m3.colbert_dim)
    np.testing.assert_allclose(np.asarray(stored[ids[0]]), full[0][:4], atol=1e-6)
    assert len(stored[ids[2]]) == full[1].shape[0]  # short documents are whole
    # ColBERT search scores the kept vectors
    q = m3.encode(["cancer in the liver"], dense=False, sparse=False, colbert=True).colbert[0]
    hit = next(h for h in index.search("cancer in the liver", 3, mode="colbert") if h.id == ids[0])
    assert hit.score == pytest.approx(maxsim(q, full[0][:4]), abs=1e-5)
    # dense and sparse are computed on the whole text
    assert index.search(long_a, 1, mode="dense")[0].score == pytest.approx(1.0, abs=1e-5)


def test_local_path_persists_between_clients(make_index: Any, tmp_path: Path, qd_corpus: Any) -> None:
    path = str(tmp_path / "q")
    client = QdrantClient(path=path)
    ids = make_index(client).add_texts([t for t, _ in qd_corpus])
    client.close()
    client = QdrantClient(path=path)
    try:
        index = make_index(client)
        assert index.count() == len(qd_corpus)
        assert index.add_texts([t for t, _ in qd_corpus]) == ids
        assert index.count() == len(qd_corpus)
        assert index.search(qd_corpus[3][0], 1, mode="dense")[0].id == ids[3]
    finally:
        client.close()
