"""VectorStoreIndex over llama-index's MilvusVectorStore (Milvus Lite) with our sparse function."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("llama_index.vector_stores.milvus")
pytest.importorskip("milvus_lite")

from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.schema import TextNode
from llama_index.vector_stores.milvus import MilvusVectorStore

from llama_index_bge import BGEEmbedding, BGEMilvusSparseFunction


@pytest.fixture(scope="module")
def milvus_index(m3: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from bge_core import BGEM3Encoder

    # Its own encoder, so the forward count below is not affected by other tests' caches.
    enc = BGEM3Encoder(m3.model_name, device="cpu", dtype="float32", batch_size=4)
    texts = [
        "the cat is on the mat",
        "the dog is in the water",
        "cancer cells grow in the liver",
        "blood cells and the immune response",
        "a new drug treatment for heart disease",
        "mice study of gene protein levels",
        "   ",  # no lexical weights: stored with the placeholder entry Milvus needs
    ]
    seen: list[int] = []
    handle = enc.model.register_forward_hook(
        lambda mod, args, kwargs, out: seen.append(int(kwargs["input_ids"].shape[0])), with_kwargs=True
    )
    emb = BGEEmbedding(encoder=enc)
    store = MilvusVectorStore(
        uri=str(tmp_path_factory.mktemp("milvus") / "li.db"),
        collection_name="li",
        dim=enc.dim,
        enable_sparse=True,
        sparse_embedding_function=BGEMilvusSparseFunction(emb),
        overwrite=True,
        use_async_client=False,
    )
    nodes = [TextNode(text=t) for t in texts]
    index = VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(vector_store=store), embed_model=emb)
    handle.remove()
    return index, texts, sum(seen)


def test_one_pass_ingest(milvus_index: Any) -> None:
    _, texts, forwarded = milvus_index
    assert forwarded == len(texts)


@pytest.mark.parametrize("mode", ["default", "hybrid"])
def test_query_modes(milvus_index: Any, mode: str) -> None:
    index, texts, _ = milvus_index
    retriever = index.as_retriever(similarity_top_k=3, vector_store_query_mode=mode)
    for t in texts[:6]:
        got = retriever.retrieve(t)
        assert got[0].node.get_content() == t
        assert len(got) == 3


def test_sparse_mode_upstream_limitation(milvus_index: Any) -> None:
    """MilvusVectorStore hard-codes drop_ratio_search=0.2 in SPARSE mode and Milvus Lite refuses
    it (documented in llama_index_bge.milvus_sparse). If this starts passing, upstream fixed it:
    update the module docs."""
    from pymilvus.exceptions import MilvusException

    index, _, _ = milvus_index
    with pytest.raises(MilvusException, match="drop_ratio_search"):
        index.as_retriever(similarity_top_k=3, vector_store_query_mode="sparse").retrieve("cancer cells")


def test_text_without_lexical_weights_is_stored(milvus_index: Any) -> None:
    index, texts, _ = milvus_index
    assert len(index._embed_model.encoder.encode(["   "], dense=False).sparse[0]) == 0
    rows = index.storage_context.vector_store.client.query("li", filter='id != ""', output_fields=["text"], limit=100)
    assert sorted(r["text"] for r in rows) == sorted(texts)
