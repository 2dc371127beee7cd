"""Benchmark 1: encode speed of BGEM3Encoder vs FlagEmbedding BGEM3FlagModel on this CPU.

Same checkpoint (all-MiniLM-L6-v2 backbone + M3 heads), same SciFact documents, dense + sparse
+ ColBERT, in one run. Each round takes FRESH documents (a new slice of the corpus) and times
every system on that slice, so no cache can help and all systems see the same lengths.

    python benchmarks/bench_encode.py [--docs-per-round 300] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import logging

from common import bf16_matmul_peak, minilm_m3_checkpoint, print_table, scifact_docs, timed, write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--docs-per-round", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--skip-flag256", action="store_true", help="skip FlagEmbedding's default batch size (slow)")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)

    import torch
    from FlagEmbedding import BGEM3FlagModel

    from bge_core import BGEM3Encoder

    ckpt = minilm_m3_checkpoint()
    docs = scifact_docs()
    n, L = args.docs_per_round, args.max_length
    systems = {
        "bge_core auto": BGEM3Encoder(ckpt, device="cpu", max_length=L),
        "bge_core float32": BGEM3Encoder(ckpt, device="cpu", dtype="float32", max_length=L),
    }
    flag = BGEM3FlagModel(str(ckpt), use_fp16=False, devices="cpu")
    flag_runs = {"FlagEmbedding bs=32": 32}
    if not args.skip_flag256:
        flag_runs["FlagEmbedding bs=256 (default)"] = 256
    ours = systems["bge_core auto"]
    params = sum(p.numel() for name, p in ours.model.named_parameters() if "embeddings" not in name)
    hidden, layers = ours.dim, int(ours.model.config.num_hidden_layers)

    def run_flag(texts: list[str], bs: int) -> object:
        return flag.encode(
            texts, batch_size=bs, max_length=L, return_dense=True, return_sparse=True, return_colbert_vecs=True
        )

    # warm-up on texts outside the timed rounds
    warm = docs[-64:]
    for enc in systems.values():
        enc.encode(warm, colbert=True)
    run_flag(warm, 32)

    totals = {name: [0.0, 0, 0] for name in [*systems, *flag_runs]}
    flops = 0.0
    for r in range(args.rounds):
        texts = docs[r * n : (r + 1) * n]
        lengths = ours.count_tokens(texts)
        tokens = sum(lengths)
        flops += sum(2 * params * t + 4 * layers * hidden * t * t for t in lengths)
        for name, enc in systems.items():
            _, sec = timed(lambda: enc.encode(texts, dense=True, sparse=True, colbert=True))
            totals[name][0] += sec
            totals[name][1] += len(texts)
            totals[name][2] += tokens
        for name, bs in flag_runs.items():
            _, sec = timed(lambda: run_flag(texts, bs))
            totals[name][0] += sec
            totals[name][1] += len(texts)
            totals[name][2] += tokens
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[0]:.1f}s" for k, v in totals.items()), flush=True)

    peak = bf16_matmul_peak()
    base = totals["FlagEmbedding bs=32"][1] / totals["FlagEmbedding bs=32"][0]
    rows, out = [], {}
    for name, (sec, nd, nt) in totals.items():
        tflops = flops / sec / 1e12
        rows.append([name, nd / sec, nt / sec, (nd / sec) / base, tflops, tflops / peak])
        out[name] = {
            "seconds": sec,
            "docs_per_s": nd / sec,
            "tokens_per_s": nt / sec,
            "ratio_vs_flag_bs32": (nd / sec) / base,
            "model_tflops": tflops,
        }
    print_table(["system", "docs/s", "tokens/s", "x FlagEmbedding bs=32", "model TFLOP/s", "of bf16 peak"], rows)
    print(
        f"bf16 matmul peak measured in this run: {peak:.3f} TFLOP/s; auto dtype here: {ours.dtype}; threads: {torch.get_num_threads()}"
    )
    out["_meta"] = {
        "bf16_peak_tflops": peak,
        "auto_dtype": ours.dtype,
        "docs": totals["FlagEmbedding bs=32"][1],
        "checkpoint": "all-MiniLM-L6-v2 + M3 heads",
    }
    write_json(args.json, out)


if __name__ == "__main__":
    main()
