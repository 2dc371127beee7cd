"""Benchmark 2: quality of the fast paths (bf16 / auto dtype) against float32 on real weights.

- M3 outputs on the all-MiniLM-L6-v2 backbone + heads: min / mean cosine of dense vectors,
  ColBERT MaxSim |diff| over (query, document) pairs, sparse top-10 token overlap.
- SciFact nDCG@10 of all-MiniLM-L6-v2 (DenseEncoder, exact search) for each dtype.

    python benchmarks/bench_quality.py [--docs 1000] [--json out.json]
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
from common import SCIFACT, minilm_dir, minilm_m3_checkpoint, print_table, scifact_docs, timed, write_json


def ndcg_for(dtype: str) -> tuple[float, float]:
    from bge_core import DenseEncoder
    from bge_core.evaluation import evaluate_run, load_beir

    data = load_beir(SCIFACT)
    enc = DenseEncoder(minilm_dir(), device="cpu", dtype=dtype)
    ids = list(data.corpus)
    (docs, sec) = timed(lambda: enc.encode_documents([data.doc_text(i) for i in ids]))
    qids = list(data.queries)
    queries = enc.encode_queries([data.queries[q] for q in qids])
    scores = queries @ docs.T
    top = np.argsort(-scores, axis=1)[:, :100]
    run = {q: [ids[j] for j in top[row]] for row, q in enumerate(qids)}
    return evaluate_run(run, data.qrels)["ndcg@10"], sec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--fast", default="auto", help="dtype of the fast path (auto / bfloat16)")
    ap.add_argument("--skip-scifact", action="store_true")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)

    from bge_core import BGEM3Encoder
    from bge_core.scoring import maxsim

    ckpt = minilm_m3_checkpoint()
    docs = scifact_docs()[: args.docs]
    queries = [d.split(".")[0][:200] for d in scifact_docs()[-200:]]
    fast = BGEM3Encoder(ckpt, device="cpu", dtype=args.fast, max_length=512)
    ref = BGEM3Encoder(ckpt, device="cpu", dtype="float32", max_length=512)
    a, b = fast.encode(docs, colbert=True), ref.encode(docs, colbert=True)
    qa, qb = fast.encode(queries, colbert=True), ref.encode(queries, colbert=True)
    assert a.dense is not None and b.dense is not None
    cos = np.sum(a.dense * b.dense, axis=1)
    rng = np.random.default_rng(0)
    pairs = [(int(rng.integers(len(queries))), int(rng.integers(len(docs)))) for _ in range(2000)]
    diffs = np.array([abs(maxsim(qa.colbert[q], a.colbert[d]) - maxsim(qb.colbert[q], b.colbert[d])) for q, d in pairs])

    def top10(sv):  # type: ignore[no-untyped-def]
        return set(sv.indices[np.argsort(-sv.values)[:10]].tolist())

    overlap = np.array([len(top10(x) & top10(y)) / max(min(10, len(y)), 1) for x, y in zip(a.sparse, b.sparse)])
    rows = [
        ["dense cosine (min / mean)", f"{cos.min():.5f} / {cos.mean():.6f}"],
        ["ColBERT MaxSim |diff| (max / mean)", f"{diffs.max():.5f} / {diffs.mean():.6f}"],
        ["sparse top-10 overlap (min / mean)", f"{overlap.min():.3f} / {overlap.mean():.4f}"],
    ]
    result = {
        "fast_dtype": fast.dtype,
        "dense_cos_min": float(cos.min()),
        "dense_cos_mean": float(cos.mean()),
        "colbert_maxsim_absdiff_max": float(diffs.max()),
        "colbert_maxsim_absdiff_mean": float(diffs.mean()),
        "sparse_top10_overlap_min": float(overlap.min()),
        "sparse_top10_overlap_mean": float(overlap.mean()),
    }
    if not args.skip_scifact:
        n_fast, s_fast = ndcg_for(args.fast)
        n_ref, s_ref = ndcg_for("float32")
        rows += [
            [f"SciFact nDCG@10 {args.fast} / float32", f"{n_fast:.4f} / {n_ref:.4f} (diff {n_fast - n_ref:+.4f})"],
            ["SciFact corpus encode s (fast / float32)", f"{s_fast:.0f} / {s_ref:.0f}"],
        ]
        result.update(
            ndcg_fast=n_fast,
            ndcg_fp32=n_ref,
            ndcg_diff=n_fast - n_ref,
            corpus_seconds_fast=s_fast,
            corpus_seconds_fp32=s_ref,
        )
    print_table(["fast path vs float32 (" + fast.dtype + ")", "value"], rows)
    write_json(args.json, result)


if __name__ == "__main__":
    main()
