"""Creating the two Milvus collections is resumable (issue 16: a kill between creating the
main collection and its ColBERT companion left an index that could never be resumed)."""

from __future__ import annotations

from typing import Any

import pytest
from store_checks import assert_same_hits, texts_and_metadatas

from bge_core.errors import CollectionMismatchError
from bge_core.index import CollectionSpec, VectorIndex
from bge_core.reference import InMemoryStore
from bge_milvus import MilvusIndex, MilvusStore
from bge_milvus.layout import main_schema

TEXTS, METAS = texts_and_metadatas()


def _main_only(client: Any, m3: Any, *, colbert_rows: bool = False) -> None:
    """The state a kill leaves between the two ``create_collection`` calls (older order:
    main first), optionally with rows written by a colbert=False index."""
    import pymilvus

    spec = CollectionSpec(dense_dim=m3.dim, sparse=True, colbert_dim=m3.colbert_dim)
    store = MilvusStore(client, "docs")
    schema, index = main_schema(pymilvus, client, spec, store.layout)
    client.create_collection("docs", schema=schema, index_params=index, consistency_level="Strong")
    assert client.has_collection("docs") and not client.has_collection("docs_colbert")
    if colbert_rows:
        MilvusIndex(client, "docs", m3, colbert=False, show_progress=False).add_texts(TEXTS[:3])


def _same_as_reference(index: MilvusIndex, m3: Any) -> None:
    ref = VectorIndex(InMemoryStore(), m3, show_progress=False)
    ref.add_texts(TEXTS, METAS)
    for mode in ("hybrid", "colbert"):
        request = ref.plan("the cells in the water", 12, mode=mode)
        assert_same_hits(ref.store.query(request), index.store.query(request))


def test_main_without_companion_is_completed(client: Any, m3: Any) -> None:
    _main_only(client, m3)
    index = MilvusIndex(client, "docs", m3, show_progress=False)
    index.add_texts(TEXTS, METAS)
    assert client.has_collection("docs_colbert")
    assert index.count() == len(TEXTS)
    _same_as_reference(index, m3)


def test_companion_created_when_settings_list_colbert(client: Any, m3: Any) -> None:
    _main_only(client, m3, colbert_rows=True)
    store = MilvusStore(client, "docs")
    store.write_settings({"outputs": ["dense", "sparse", "colbert"]})
    index = MilvusIndex(client, "docs", m3, show_progress=False)
    index.add_texts(TEXTS, METAS)  # the three earlier rows change hash (metadata): rewritten with tokens
    assert index.count() == len(TEXTS)
    _same_as_reference(index, m3)


def test_companion_only_is_completed(client: Any, m3: Any) -> None:
    """The current order (companion first): a kill after it leaves no main collection."""
    store = MilvusStore(client, "docs")
    spec = CollectionSpec(dense_dim=m3.dim, sparse=True, colbert_dim=m3.colbert_dim)
    real_create = client.create_collection

    def killed(name: str, **kwargs: Any) -> None:
        real_create(name, **kwargs)
        if name == "docs_colbert":
            raise KeyboardInterrupt

    client.create_collection = killed
    with pytest.raises(KeyboardInterrupt):
        store.ensure(spec)
    client.create_collection = real_create
    assert client.has_collection("docs_colbert") and not client.has_collection("docs")
    index = MilvusIndex(client, "docs", m3, show_progress=False)
    index.add_texts(TEXTS, METAS)
    _same_as_reference(index, m3)


def test_colbert_false_index_with_rows_is_still_refused(client: Any, m3: Any) -> None:
    MilvusIndex(client, "docs", m3, colbert=False, show_progress=False).add_texts(TEXTS[:3])
    with pytest.raises(CollectionMismatchError, match="ColBERT collection 'docs_colbert' is missing"):
        MilvusIndex(client, "docs", m3, show_progress=False).ensure_collection()
