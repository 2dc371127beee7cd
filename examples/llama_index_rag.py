"""RAG with LlamaIndex and BGE: hybrid retrieval (dense + sparse from one BGE-M3 pass),
ColBERT and cross-encoder reranking, and a query engine.

    python examples/llama_index_rag.py                       # tiny random models, offline
    python examples/llama_index_rag.py --model BAAI/bge-m3 --reranker BAAI/bge-reranker-v2-m3

Without ``--model`` the script builds tiny random checkpoints in a temporary folder, so it runs
anywhere without network (the rankings are then meaningless, the plumbing is the same). The LLM
is LlamaIndex's ``MockLLM``: swap in any LlamaIndex LLM for real answers.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DOCS = [
    "cancer cells grow in the liver",
    "blood cells and the immune response",
    "a new drug treatment for heart disease",
    "mice study of gene protein levels",
    "patients in the trial had lower risk",
    "dense sparse hybrid retrieval with colbert rerank",
    "the cat is on the mat",
    "the sun and the moon and the star",
]
QUERY = "drug treatment for heart disease patients"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="BGE-M3 hub id or folder (default: a tiny random checkpoint)")
    parser.add_argument("--reranker", help="reranker hub id or folder (default: a tiny random checkpoint)")
    args = parser.parse_args()

    from llama_index.core import Settings, StorageContext, VectorStoreIndex
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.core.schema import TextNode
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    from bge_core import BGEM3Encoder, Reranker
    from bge_core.index import VectorIndex
    from bge_core.reference import InMemoryStore
    from llama_index_bge import (
        BGEColBERTRerank,
        BGEEmbedding,
        BGEHybridRetriever,
        BGERerank,
        bge_m3_sparse_functions,
    )

    with tempfile.TemporaryDirectory() as tmp:
        model, reranker_model = args.model, args.reranker
        if model is None or reranker_model is None:
            from bge_core.testing import build_tiny_m3, build_tiny_reranker

            model = model or str(build_tiny_m3(Path(tmp) / "tiny-m3"))
            reranker_model = reranker_model or str(build_tiny_reranker(Path(tmp) / "tiny-reranker"))

        # One BGE-M3 model shared by every wrapper: dense, sparse and ColBERT.
        encoder = BGEM3Encoder(model, device="cpu", dtype="float32")
        embed = BGEEmbedding(encoder=encoder)
        sparse_doc_fn, sparse_query_fn = bge_m3_sparse_functions(encoder)
        Settings.llm = MockLLM(max_tokens=16)
        Settings.embed_model = embed

        # 1) LlamaIndex's own QdrantVectorStore, hybrid, with BGE-M3 sparse vectors.
        store = QdrantVectorStore(
            collection_name="docs",
            client=QdrantClient(":memory:"),
            enable_hybrid=True,
            sparse_doc_fn=sparse_doc_fn,
            sparse_query_fn=sparse_query_fn,
        )
        index = VectorStoreIndex(
            [TextNode(text=t) for t in DOCS], storage_context=StorageContext.from_defaults(vector_store=store)
        )
        engine = index.as_query_engine(
            similarity_top_k=5,
            sparse_top_k=5,
            vector_store_query_mode="hybrid",
            node_postprocessors=[
                BGEColBERTRerank(encoder=encoder, top_n=4),
                BGERerank(reranker_model, device="cpu", dtype="float32", top_n=2),
            ],
        )
        response = engine.query(QUERY)
        print(f"query: {QUERY}")
        print("qdrant-vector-store hybrid + colbert + rerank:")
        for n in response.source_nodes:
            print(f"  {n.score:+.4f}  {n.node.get_content()}")
        print(f"answer: {str(response)!r}")

        # 2) BGEHybridRetriever over a bge_core index (here the in-memory reference store;
        #    bge_qdrant.QdrantIndex or bge_milvus.MilvusIndex are used the same way).
        bge_index = VectorIndex(InMemoryStore(), encoder, show_progress=False)
        bge_index.add_texts(DOCS, metadatas=[{"n": i} for i in range(len(DOCS))])
        retriever = BGEHybridRetriever(
            bge_index, k=3, mode="colbert", rerank=Reranker(reranker_model, device="cpu", dtype="float32")
        )
        engine2 = RetrieverQueryEngine.from_args(retriever)
        response2 = engine2.query(QUERY)
        print("bge hybrid retriever (colbert + rerank):")
        for n in response2.source_nodes:
            stages = ", ".join(f"{k}={v:.4f}" for k, v in n.node.metadata["bge_scores"].items())
            print(f"  {n.score:+.4f}  {n.node.get_content()}  [{stages}]")
        print(f"answer: {str(response2)!r}")


if __name__ == "__main__":
    main()
