"""Benchmark: LLM reranker pairs/s, bge_core vs FlagEmbedding's FlagLLMReranker, on this CPU.

Same random checkpoints for both (built once into the bench cache): a Gemma-shaped causal LM
(bge-reranker-v2-gemma's layout, scaled down: hidden 512, 6 layers, 8 heads) and the
layer-wise MiniCPM / lightweight Gemma-2 layouts at the same size. Pairs: SciFact queries with
SciFact documents (the tiny vocabulary spells unknown words by characters, so passages are
realistically long: most reach ``--max-length`` tokens). Every system scores the same pairs in
each round; rounds alternate the systems and the best round counts.

    python benchmarks/bench_rerank.py [--pairs 64] [--rounds 2] [--max-length 256] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import warnings
from pathlib import Path
from typing import Any

from common import CACHE, SCIFACT, print_table, scifact_docs, timed, write_json


def _pairs(n: int) -> list[tuple[str, str]]:
    queries = [
        json.loads(line)["text"] for line in (SCIFACT / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    docs = scifact_docs()
    return [(queries[i % len(queries)], docs[(7 * i) % len(docs)]) for i in range(n)]


def _cpu() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return "unknown CPU"
    name, flags = "unknown CPU", set()
    for line in text.splitlines():
        if line.startswith("model name"):
            name = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    have = sorted(f for f in flags if f.startswith(("amx", "avx512_bf16", "avx512_vnni")))
    return f"{name} ({', '.join(have) or 'no bf16/AMX flags'})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    warnings.filterwarnings("ignore")

    import torch
    from FlagEmbedding import FlagLLMReranker

    from bge_core import Reranker
    from bge_core.testing_llm import (
        build_tiny_layerwise_reranker,
        build_tiny_lightweight_reranker,
        build_tiny_llm_reranker,
    )

    shape = {"hidden": 512, "layers": 6, "heads": 8}
    root = CACHE / "llm-rerankers"
    ckpt = {
        "gemma": root / "gemma",
        "layerwise": root / "minicpm-layerwise",
        "lightweight": root / "gemma2-lightweight",
    }
    if not (ckpt["gemma"] / "model.safetensors").is_file():
        build_tiny_llm_reranker(ckpt["gemma"], **shape)
    if not (ckpt["layerwise"] / "model.safetensors").is_file():
        build_tiny_layerwise_reranker(ckpt["layerwise"], start_layer=3, **shape)
    if not (ckpt["lightweight"] / "model.safetensors").is_file():
        build_tiny_lightweight_reranker(ckpt["lightweight"], start_layer=3, **shape)

    pairs = _pairs(args.pairs)
    L = args.max_length
    flag = FlagLLMReranker(str(ckpt["gemma"]), devices="cpu", max_length=L)
    ours_auto = Reranker(ckpt["gemma"], device="cpu", max_length=L, show_progress=False)
    ours_fp32 = Reranker(ckpt["gemma"], device="cpu", dtype="float32", max_length=L, show_progress=False)
    layerwise = Reranker(ckpt["layerwise"], device="cpu", max_length=L, cutoff_layers=[6], show_progress=False)
    lightweight = Reranker(
        ckpt["lightweight"],
        device="cpu",
        max_length=L,
        cutoff_layers=[6],
        compress_ratio=2,
        compress_layers=[3],
        show_progress=False,
    )
    systems: dict[str, Any] = {
        "FlagLLMReranker fp32 bs=128 (default)": lambda: flag.compute_score(pairs, batch_size=128),
        "FlagLLMReranker fp32 bs=32": lambda: flag.compute_score(pairs, batch_size=32),
        f"bge_core LLMReranker auto ({ours_auto.dtype})": lambda: ours_auto.score(pairs),
        "bge_core LLMReranker float32": lambda: ours_fp32.score(pairs),
        f"bge_core layer-wise MiniCPM, layer 6 ({layerwise.dtype})": lambda: layerwise.score(pairs),
        f"bge_core lightweight Gemma-2, ratio 2 ({lightweight.dtype})": lambda: lightweight.score(pairs),
    }
    ids, _ = ours_fp32._pairs([q for q, _ in pairs], [p for _, p in pairs])
    tokens = sum(len(x) for x in ids)
    ours_fp32.score(pairs[:4])  # warm-up (first-call allocations)
    flag.compute_score(pairs[:4], batch_size=4)
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, fn in systems.items():
            _, sec = timed(fn)
            best[name] = min(best.get(name, float("inf")), sec)
    base = best["FlagLLMReranker fp32 bs=32"]
    rows = [[name, args.pairs / sec, tokens / sec, f"{base / sec:.2f}"] for name, sec in best.items()]
    print(f"{_cpu()}, {torch.get_num_threads()} threads, {args.pairs} pairs, {tokens} tokens, max_length {L}")
    print_table(["system", "pairs/s", "tokens/s", "x Flag bs=32"], rows)
    write_json(args.json, {"cpu": _cpu(), "pairs": args.pairs, "tokens": tokens, "seconds": best})


if __name__ == "__main__":
    main()
