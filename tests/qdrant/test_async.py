"""AsyncQdrantIndex over AsyncQdrantClient: same results as the sync index."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from qdrant_client import AsyncQdrantClient, models
from qdrant_helpers import QUERIES, assert_same_hits
from store_checks import SEARCH_CASES

from bge_core.errors import CollectionMismatchError
from bge_core.index import make_id
from bge_qdrant import AsyncQdrantIndex


async def test_async_index_matches_sync(m3: Any, filled: Any, qd_corpus: Any) -> None:
    client = AsyncQdrantClient(":memory:")
    index = AsyncQdrantIndex(client, "docs", m3, write_batch_size=5, chunk_size=7)
    assert not await client.collection_exists("docs")  # nothing created in the constructor
    texts, metas = [t for t, _ in qd_corpus], [m for _, m in qd_corpus]
    ids = await index.add_texts(texts, metas)
    assert ids == [make_id(None, t) for t in texts]
    assert await index.count() == len(texts)
    assert await index.add_texts(texts, metas) == ids
    assert await index.count() == len(texts)
    for mode, fusion, stage in SEARCH_CASES:
        for flt in (None, {"topic": "bio"}):
            expected = filled.search(QUERIES[0], 5, mode=mode, fusion=fusion, filter=flt, prefetch_limit=4)
            got = await index.search(QUERIES[0], 5, mode=mode, fusion=fusion, filter=flt, prefetch_limit=4)
            assert_same_hits(expected, got, stage)
    native = models.Filter(must=[models.FieldCondition(key="metadata.g", match=models.MatchValue(value=1))])
    assert {h.metadata["g"] for h in await index.search(QUERIES[1], 12, mode="dense", filter=native)} == {1}
    # concurrent searches on one loop
    many = await asyncio.gather(*(index.search(q, 3, mode="hybrid") for q in QUERIES))
    assert [len(h) for h in many] == [3] * len(QUERIES)
    got = await index.get([ids[1], ids[0]])
    assert [h.text for h in got] == [texts[1], texts[0]]
    await index.delete([ids[0]])
    assert await index.count() == len(texts) - 1
    assert await index.read_settings() is None
    await index.write_settings({"model": "tiny"})
    assert await index.read_settings() == {"model": "tiny"}
    with pytest.raises(ValueError, match="query is empty"):
        await index.search(" ")
    with pytest.raises(ValueError, match="same length"):
        await index.add_texts(["a", "b"], [{}])
    await client.close()


async def test_async_mismatch_and_documents(m3: Any) -> None:
    client = AsyncQdrantClient(":memory:")
    await client.create_collection(
        "bad", vectors_config={"dense": models.VectorParams(size=m3.dim + 3, distance=models.Distance.COSINE)}
    )
    with pytest.raises(CollectionMismatchError, match="dims"):
        await AsyncQdrantIndex(client, "bad", m3).ensure_collection()
    index = AsyncQdrantIndex(client, "docs", m3, colbert=False)
    ids = await index.add_documents([{"text": "the cat", "metadata": {"a": 1}}, {"text": "the dog"}])
    assert await index.count() == 2
    assert (await index.get(ids))[0].metadata == {"a": 1}
    assert index.spec.colbert_dim is None
    with pytest.raises(ValueError, match="colbert"):
        await index.search("the cat", mode="colbert")
    await index.close()  # does not own the client: it stays open
    assert await client.count("docs") is not None
    # drop (bge drop): the same operation as the sync store's
    assert await index.store.drop() is True
    assert not await client.collection_exists("docs") and await client.collection_exists("bad")
    assert await index.store.drop() is False
    await client.close()


def test_sync_client_is_refused(m3: Any, memory_client: Any) -> None:
    with pytest.raises(TypeError, match="QdrantIndex"):
        AsyncQdrantIndex(memory_client, "docs", m3)
