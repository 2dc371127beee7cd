"""Benchmark 3: hybrid ingest into Qdrant local mode, as a ratio to pure encode time.

(a) ``bge_qdrant.QdrantIndex`` (dense + sparse + ColBERT, one pass, writes overlapped);
(b) LangChain ``QdrantVectorStore`` HYBRID with our one-pass embeddings (shared encoder);
(c) the stock LangChain way: a dense and a sparse embedding that each run the model.
Each system gets FRESH SciFact documents; its pure encode time is measured on the same texts
just before (the outputs that system stores: all three for (a), dense + sparse for (b, c)).

    python benchmarks/bench_ingest.py [--docs 400] [--json out.json]
"""

from __future__ import annotations

import argparse
import logging
import tempfile

from common import minilm_m3_checkpoint, print_table, scifact_docs, timed, write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--docs", type=int, default=400)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)

    from langchain_qdrant import QdrantVectorStore, RetrievalMode
    from qdrant_client import QdrantClient

    from bge_core import BGEM3Encoder
    from bge_qdrant import QdrantIndex
    from langchain_bge import BGEEmbeddings, BGEM3SparseEmbeddings

    ckpt = minilm_m3_checkpoint()
    docs = scifact_docs()
    n = args.docs
    enc = BGEM3Encoder(ckpt, device="cpu", max_length=512)
    enc_b = BGEM3Encoder(ckpt, device="cpu", max_length=512)  # the stock way loads a second model
    enc.encode(docs[-32:], colbert=True)
    enc_b.encode(docs[-32:])
    tmp = tempfile.mkdtemp()
    results: dict[str, dict[str, float]] = {}

    def record(name: str, t_ingest: float, t_encode: float) -> None:
        results[name] = {"ingest_s": t_ingest, "encode_s": t_encode, "ratio_to_encode": t_ingest / t_encode}
        print(
            f"{name}: ingest {t_ingest:.1f}s, pure encode {t_encode:.1f}s, ratio {t_ingest / t_encode:.3f}", flush=True
        )

    # (a) QdrantIndex, local mode on disk
    texts = docs[0:n]
    _, t_enc = timed(lambda: enc.encode(texts, dense=True, sparse=True, colbert=True))
    client = QdrantClient(path=f"{tmp}/a")
    index = QdrantIndex(client, "bench", enc, show_progress=False)
    _, t_ing = timed(lambda: index.add_texts(texts))
    assert index.count() == len(set(texts))
    record("(a) QdrantIndex dense+sparse+colbert", t_ing, t_enc)
    client.close()

    from qdrant_client import models

    def langchain_hybrid(name: str, texts: list[str], sparse_encoder: BGEM3Encoder, folder: str) -> None:
        """Ingest through LangChain's QdrantVectorStore HYBRID; dense always uses ``enc``."""
        _, t_enc = timed(lambda: enc.encode(texts, dense=True, sparse=True))
        client = QdrantClient(path=f"{tmp}/{folder}")
        client.create_collection(
            "bench",
            vectors_config={"dense": models.VectorParams(size=enc.dim, distance=models.Distance.COSINE)},
            sparse_vectors_config={"sparse": models.SparseVectorParams()},
        )
        store = QdrantVectorStore(
            client=client,
            collection_name="bench",
            embedding=BGEEmbeddings(encoder=enc),
            sparse_embedding=BGEM3SparseEmbeddings(encoder=sparse_encoder),
            retrieval_mode=RetrievalMode.HYBRID,
            vector_name="dense",
            sparse_vector_name="sparse",
        )
        _, t_ing = timed(lambda: store.add_texts(texts, batch_size=64))
        record(name, t_ing, t_enc)
        client.close()

    # (b) one pass: dense and sparse share `enc`, so the second call is served by its cache
    langchain_hybrid("(b) LangChain HYBRID, our one-pass embeddings", docs[n : 2 * n], enc, "b")
    # (c) the stock way: the sparse embedding runs a second model
    langchain_hybrid("(c) LangChain HYBRID, stock two-pass", docs[2 * n : 3 * n], enc_b, "c")

    speedup = (
        results["(c) LangChain HYBRID, stock two-pass"]["ratio_to_encode"]
        / results["(b) LangChain HYBRID, our one-pass embeddings"]["ratio_to_encode"]
    )
    rows = [[k, v["ingest_s"], v["encode_s"], v["ratio_to_encode"]] for k, v in results.items()]
    print_table(["system", "ingest s", "pure encode s", "ingest / encode"], rows)
    print(
        f"one-pass LangChain hybrid ingest is {speedup:.2f}x faster than the stock two-pass path (per encode-time unit)"
    )
    results["_summary"] = {"langchain_one_pass_speedup": speedup, "docs_per_system": n}
    write_json(args.json, results)


if __name__ == "__main__":
    main()
