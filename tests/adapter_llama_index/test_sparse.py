"""Sparse functions for QdrantVectorStore and MilvusVectorStore."""

from __future__ import annotations

from typing import Any

import pytest

from llama_index_bge import bge_m3_sparse_functions


def test_qdrant_functions_return_lexical_weights(m3: Any, docs: list[str]) -> None:
    doc_fn, query_fn = bge_m3_sparse_functions(m3)
    texts = [*docs[:4], "", "zzz qqq"]
    indices, values = doc_fn(texts)
    want = m3.encode(texts, dense=False).sparse
    assert len(indices) == len(values) == len(texts)
    for idx, val, sv in zip(indices, values, want):
        assert idx == sv.indices.tolist()
        assert val == pytest.approx(sv.values.tolist(), rel=1e-6)
        assert all(isinstance(i, int) for i in idx) and all(isinstance(v, float) for v in val)
    assert indices[4] == [] and values[4] == []
    q_idx, _ = query_fn(["cancer cells"])
    assert q_idx[0] == m3.encode(["cancer cells"], dense=False).sparse[0].indices.tolist()
    with pytest.raises(TypeError, match="list of strings"):
        doc_fn("a single string")  # type: ignore[arg-type]


def test_milvus_function(m3: Any, docs: list[str]) -> None:
    pytest.importorskip("llama_index.vector_stores.milvus")
    from llama_index.vector_stores.milvus.utils import BaseSparseEmbeddingFunction

    from llama_index_bge import BGEMilvusSparseFunction
    from llama_index_bge.milvus_sparse import EMPTY_WEIGHT

    fn = BGEMilvusSparseFunction(m3)
    assert isinstance(fn, BaseSparseEmbeddingFunction)
    out = fn.encode_documents([docs[2], ""])
    assert out[0] == m3.encode([docs[2]], dense=False).sparse[0].to_dict()
    # Milvus refuses empty sparse rows: a zero-contribution placeholder at the padding id.
    assert out[1] == {m3.tokenizer.pad_token_id: EMPTY_WEIGHT}
    q = fn.encode_queries(["liver cancer"])[0]
    assert m3.tokenizer.pad_token_id not in q and len(q) > 0


async def test_milvus_function_async(m3: Any, docs: list[str]) -> None:
    pytest.importorskip("llama_index.vector_stores.milvus")
    from llama_index_bge import bge_m3_milvus_sparse_function

    fn = bge_m3_milvus_sparse_function(m3)
    assert await fn.async_encode_queries(["blood"]) == fn.encode_queries(["blood"])
    assert await fn.async_encode_documents([docs[3]]) == fn.encode_documents([docs[3]])


def test_sparse_needs_m3_input() -> None:
    with pytest.raises(TypeError, match="BGEM3Encoder"):
        bge_m3_sparse_functions(object())


def test_missing_milvus_store_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    from bge_core.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "llama_index.vector_stores.milvus.utils", None)
    monkeypatch.delitem(sys.modules, "llama_index_bge.milvus_sparse", raising=False)
    with pytest.raises(
        MissingDependencyError, match=r"llama-index-vector-stores-milvus.*bge-integrations\[llama-index\]"
    ):
        importlib.import_module("llama_index_bge.milvus_sparse")
