"""LangChain wrappers pickle before and after loading (issue 19.8) and concurrent async calls
are batched together (issue 19.9)."""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.documents import Document

from langchain_bge import (
    BGEColBERTRerank,
    BGEEmbeddings,
    BGEM3SparseEmbeddings,
    BGERerank,
)

OPTS: dict[str, Any] = {"device": "cpu", "dtype": "float32"}
TEXTS = ["the cat", "cancer cells grow", "blood gene protein", "", "zzz qqq"]


def test_embeddings_pickle_before_and_after_load(tiny_m3_path: Path) -> None:
    emb = BGEEmbeddings(tiny_m3_path, **OPTS)
    before = pickle.loads(pickle.dumps(emb))
    assert not before.encoder_holder.loaded
    vectors = emb.embed_documents(TEXTS)
    after = pickle.loads(pickle.dumps(emb))
    assert not after.encoder_holder.loaded  # the model is not shipped, it loads lazily
    np.testing.assert_allclose(before.embed_documents(TEXTS), vectors, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(after.embed_query("the cat"), emb.embed_query("the cat"), rtol=1e-5, atol=1e-6)


def test_wrappers_of_a_loaded_encoder_pickle(m3: Any, reranker: Any) -> None:
    docs = [Document(page_content=t) for t in TEXTS[:3]]
    for wrapper in (
        BGEEmbeddings(encoder=m3),
        BGEM3SparseEmbeddings(encoder=m3),
        BGEColBERTRerank(encoder=m3, top_n=2),
        BGERerank(reranker=reranker, top_n=2),
    ):
        copy = pickle.loads(pickle.dumps(wrapper))
        if isinstance(wrapper, (BGEColBERTRerank, BGERerank)):
            a = wrapper.compress_documents(docs, "cells")
            b = copy.compress_documents(docs, "cells")
            assert [d.page_content for d in a] == [d.page_content for d in b]
            assert [d.metadata["relevance_score"] for d in a] == pytest.approx(
                [d.metadata["relevance_score"] for d in b], rel=1e-5
            )
        elif isinstance(wrapper, BGEM3SparseEmbeddings):
            assert copy.embed_query("the cat") == wrapper.embed_query("the cat")
        else:
            np.testing.assert_allclose(
                copy.embed_documents(TEXTS), wrapper.embed_documents(TEXTS), rtol=1e-5, atol=1e-6
            )


def test_pickled_wrappers_still_share_one_model(tiny_m3_path: Path) -> None:
    dense = BGEEmbeddings(tiny_m3_path, **OPTS)
    sparse = BGEM3SparseEmbeddings(encoder=dense)
    d2, s2 = pickle.loads(pickle.dumps((dense, sparse)))
    assert d2.encoder_holder is s2.encoder_holder


class CountingEncoder:
    """Counts forward calls of a wrapped encoder (each call is one model pass over its texts)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.dim = inner.dim
        self.supports_sparse = False
        self.calls: list[int] = []

    def encode_outputs(self, texts: Any, **kw: Any) -> Any:
        self.calls.append(len(texts))
        return self.inner.encode_outputs(texts, **{**kw, "sparse": False})


async def test_concurrent_async_calls_are_batched_and_equal(m3: Any) -> None:
    counting = CountingEncoder(m3)
    emb = BGEEmbeddings(encoder=counting)
    requests = [[f"{w} {i}" for i in range(8)] for w in ("cat", "cells", "blood", "gene")]
    sequential = [emb.embed_documents(r) for r in requests]
    query = emb.embed_query("cat")
    counting.calls.clear()
    together = await asyncio.gather(*(emb.aembed_documents(r) for r in requests), emb.aembed_query("cat"))
    for got, want in zip(together[:4], sequential):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(together[4], query, rtol=1e-5, atol=1e-6)
    # Four document requests went into one model call (queries go in their own call).
    assert sorted(counting.calls) == [1, 32]
