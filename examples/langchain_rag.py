"""Retrieval-augmented generation with LangChain and BGE, fully offline.

One BGE-M3 encoder serves the whole pipeline: the index stores dense, sparse and ColBERT
vectors from ONE pass per text; ``BGEHybridRetriever`` searches hybrid (dense + sparse,
fused by RRF) and reranks the candidates by ColBERT MaxSim; ``BGERerank`` (a cross-encoder)
keeps the best passages; a prompt feeds them to a chat model.

The chat model is LangChain's fake one, so this runs without network or API keys. Without
``--m3-model`` / ``--reranker-model``, tiny random checkpoints are built in a temp folder
(outputs are then well-formed but not meaningful). With real models::

    python examples/langchain_rag.py --m3-model BAAI/bge-m3 --reranker-model BAAI/bge-reranker-v2-m3

Swap ``InMemoryStore`` for ``bge_qdrant.QdrantIndex(QdrantClient(...), "docs", encoder)``
or ``bge_milvus.MilvusIndex`` to use a real vector store; the retriever does not change.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

CORPUS = [
    ("cancer cells grow in the liver and the lung", {"source": "bio", "year": 2021}),
    ("blood cells and the immune response to a virus", {"source": "bio", "year": 2019}),
    ("a new drug treatment for heart disease lowers the risk of death", {"source": "bio", "year": 2023}),
    ("mice study of gene protein levels in the brain", {"source": "bio", "year": 2020}),
    ("patients in the trial had lower risk with the new dose", {"source": "bio", "year": 2022}),
    ("dense sparse hybrid retrieval with colbert rerank in qdrant and milvus", {"source": "search", "year": 2024}),
    ("the cat and the dog in the water", {"source": "animals", "year": 2018}),
    ("music art and book paper of the old city", {"source": "art", "year": 2017}),
]


def build_pipeline(m3_model: str, reranker_model: str, *, k: int, top_n: int):  # type: ignore[no-untyped-def]
    """Index the corpus and return (retriever, reranker, chain)."""
    from langchain_core.documents import Document
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnableLambda, RunnablePassthrough

    from bge_core import BGEM3Encoder, Reranker
    from bge_core.index import VectorIndex
    from bge_core.reference import InMemoryStore
    from langchain_bge import BGEHybridRetriever, BGERerank

    encoder = BGEM3Encoder(m3_model, device="cpu", dtype="float32")
    index = VectorIndex(InMemoryStore(), encoder, show_progress=False)
    index.add_texts([t for t, _ in CORPUS], [m for _, m in CORPUS])

    retriever = BGEHybridRetriever(index=index, k=k, mode="colbert")
    rerank = BGERerank(reranker=Reranker(reranker_model, device="cpu", dtype="float32"), top_n=top_n)

    def retrieve(question: str) -> list[Document]:
        return list(rerank.compress_documents(retriever.invoke(question), question))

    def format_docs(docs: list[Document]) -> str:
        return "\n".join(f"[{i + 1}] {d.page_content}" for i, d in enumerate(docs))

    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", "Answer the question using only these passages:\n{context}"),
            ("human", "{question}"),
        ]
    )
    llm = FakeListChatModel(responses=["According to passage [1], the answer is in the retrieved context."])
    chain = (
        {"context": RunnableLambda(retrieve) | format_docs, "question": RunnablePassthrough()}
        | prompt
        | llm
        | StrOutputParser()
    )
    return retriever, rerank, retrieve, chain


def main(argv: list[str] | None = None) -> int:
    """Run the example; prints the reranked passages and the (fake) model's answer."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--m3-model", help="BGE-M3 hub id or folder (default: a tiny random checkpoint)")
    parser.add_argument("--reranker-model", help="reranker hub id or folder (default: a tiny random checkpoint)")
    parser.add_argument("--query", default="which drug treatment lowers the risk of heart disease")
    parser.add_argument("-k", type=int, default=5, help="candidates from the retriever")
    parser.add_argument("--top-n", type=int, default=2, help="passages kept by the cross-encoder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        m3_model, reranker_model = args.m3_model, args.reranker_model
        if m3_model is None or reranker_model is None:
            from bge_core.testing import build_tiny_m3, build_tiny_reranker

            print("No model paths given: building tiny random checkpoints (outputs are not meaningful).")
            m3_model = m3_model or str(build_tiny_m3(Path(tmp) / "tiny-m3"))
            reranker_model = reranker_model or str(build_tiny_reranker(Path(tmp) / "tiny-reranker"))

        _, _, retrieve, chain = build_pipeline(m3_model, reranker_model, k=args.k, top_n=args.top_n)
        print(f"QUERY: {args.query}")
        for doc in retrieve(args.query):
            stages = ", ".join(f"{name}={value:.4f}" for name, value in doc.metadata["scores"].items())
            print(f"PASSAGE id={doc.id} rerank={doc.metadata['relevance_score']:.4f} ({stages}): {doc.page_content}")
        print(f"ANSWER: {chain.invoke(args.query)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
