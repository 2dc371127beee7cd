"""BGEEmbedding: M3 and v1.5 dense embeddings, lazy loading, batching, async."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llama_index_bge import BGEEmbedding, bge_m3_sparse_functions


def test_constructors_load_nothing_and_import_no_torch() -> None:
    code = textwrap.dedent(
        """
        import sys
        import llama_index_bge as lb
        e = lb.BGEEmbedding("BAAI/bge-m3")
        d, q = lb.bge_m3_sparse_functions(e)
        r = lb.BGERerank("BAAI/bge-reranker-v2-m3", top_n=3)
        c = lb.BGEColBERTRerank(encoder=e)
        m = lb.BGEMilvusSparseFunction(e)
        assert not e.encoder_ref.loaded
        assert d.ref is e.encoder_ref and m.ref is e.encoder_ref
        bad = [m for m in ("torch", "transformers") if m in sys.modules]
        assert not bad, bad
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_m3_dense_matches_encoder(m3: Any, docs: list[str]) -> None:
    emb = BGEEmbedding(encoder=m3)
    assert emb.model_name == m3.model_name
    got = emb.get_text_embedding_batch(docs[:5])
    want = m3.encode(docs[:5], sparse=False).dense
    np.testing.assert_allclose(np.array(got), want, rtol=1e-5, atol=1e-6)
    # M3 has no query instruction: a query embeds like the same text as a document.
    np.testing.assert_allclose(emb.get_query_embedding(docs[0]), want[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(emb.get_text_embedding(docs[1]), want[1], rtol=1e-5, atol=1e-6)


def test_dense_model_applies_query_instruction(tiny_m3_path: Path) -> None:
    from bge_core import DenseEncoder

    enc = DenseEncoder(tiny_m3_path, device="cpu", dtype="float32", query_instruction="Represent this: ")
    emb = BGEEmbedding(encoder=enc)
    q = emb.get_query_embedding("cancer cells")
    np.testing.assert_allclose(q, enc.encode(["Represent this: cancer cells"])[0], rtol=1e-5, atol=1e-6)
    d = emb.get_text_embedding("cancer cells")
    np.testing.assert_allclose(d, enc.encode(["cancer cells"])[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(q, d)
    with pytest.raises(ValueError, match="no sparse output"):
        bge_m3_sparse_functions(emb)[0](["x"])


def test_model_name_loads_lazily_and_is_shared(tiny_m3_path: Path) -> None:
    from bge_core import BGEM3Encoder

    name = str(tiny_m3_path)
    emb = BGEEmbedding(name, device="cpu", dtype="float32")
    doc_fn, _ = bge_m3_sparse_functions(name, device="cpu", dtype="float32")
    assert not emb.encoder_ref.loaded and not doc_fn.ref.loaded
    vec = emb.get_text_embedding("the cat")
    assert len(vec) == 32 and emb.encoder_ref.loaded
    assert isinstance(emb.encoder, BGEM3Encoder)
    doc_fn(["the cat"])
    assert doc_fn.ref.get() is emb.encoder  # one model for both wrappers


def test_embed_batch_size_is_respected(fresh_m3: Any, count_forward: Any, docs: list[str]) -> None:
    emb = BGEEmbedding(encoder=fresh_m3, embed_batch_size=2)
    counter = count_forward(fresh_m3.model)
    out = emb.get_text_embedding_batch(docs[:5])
    assert len(out) == 5
    assert counter.batches == [2, 2, 1]


async def test_async_methods_match_sync(m3: Any, docs: list[str]) -> None:
    emb = BGEEmbedding(encoder=m3)
    q = await emb.aget_query_embedding("blood cells")
    t = await emb.aget_text_embedding("blood cells")
    batch = await emb.aget_text_embedding_batch(docs[:3])
    np.testing.assert_allclose(q, emb.get_query_embedding("blood cells"), rtol=1e-6)
    np.testing.assert_allclose(t, emb.get_text_embedding("blood cells"), rtol=1e-6)
    np.testing.assert_allclose(batch, emb.get_text_embedding_batch(docs[:3]), rtol=1e-6)


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="BGEM3Encoder or DenseEncoder"):
        BGEEmbedding(encoder=object())
    with pytest.raises(TypeError, match="hub id or a folder"):
        BGEEmbedding(123)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        BGEEmbedding("BAAI/bge-m3", embed_batch_size=0)
