"""CPU forward efficiency: attention options (head dim 32) and the share of the bf16 matrix peak.

Workload: the encode benchmark's (section 10): all-MiniLM-L6-v2 backbone + M3 heads, SciFact
documents, ``BGEM3Encoder`` defaults (bf16 on AMX / AVX512-BF16), dense + sparse + ColBERT.

1. Attention options, each timed on the same documents in rotation (``--rounds``):
   - SDPA, torch's own choice (our default),
   - SDPA restricted to one backend with ``torch.nn.attention.sdpa_kernel``: FLASH_ATTENTION
     (torch's fused CPU kernel), MATH (the composite matmul + softmax), EFFICIENT_ATTENTION
     (CUDA only: reported as unavailable when torch refuses it),
   - transformers' ``attn_implementation="eager"`` module, and its ``"sdpa"`` module (what
     ``BGE_LIGHT_MODEL=0`` loads; the default is bge_core.light_model, the same ops),
   with docs/s and the largest dense difference against the default.
2. The bf16 matrix-product peak of this CPU: ``torch.matmul`` of token-by-hidden activations
   with hidden-by-hidden and hidden-by-4*hidden weights for hidden 384 and 1024, and a square
   2048 product; the best is "the peak".
3. Our forward's achieved FLOP/s: FLOPs of the backbone forwards actually run (linear layers
   2*tokens*(4H^2 + 2HI) per layer, attention 4*B*L^2*H per layer, on the padded shapes) over the
   time spent inside the forwards (tokenisation and head post-processing excluded), and the
   share of the peak.

    python benchmarks/bench_cpu_attention.py [--docs 128] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import numpy as np
from common import cpu_kind, minilm_m3_checkpoint, print_table, scifact_docs, write_json


def matmul_rate(m: int, k: int, n: int, reps: int = 20) -> float:
    """bf16 TFLOP/s of (m x k) @ (k x n), best of ``reps`` after a warm-up."""
    import torch

    a = torch.randn(m, k, dtype=torch.bfloat16)
    b = torch.randn(k, n, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * m * k * n / best / 1e12


class _Meter:
    """Wraps the runner's forward: padded shapes and seconds spent in backbone forwards."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner
        self.inner = runner.forward
        self.shapes: list[tuple[int, int]] = []
        self.seconds = 0.0
        runner.forward = self

    def __call__(self, batch: Any, module: Any = None) -> Any:
        t = time.perf_counter()
        out = self.inner(batch, module)
        self.seconds += time.perf_counter() - t
        self.shapes.append(tuple(batch["input_ids"].shape))  # type: ignore[arg-type]
        return out

    def reset(self) -> None:
        self.shapes, self.seconds = [], 0.0

    def flops(self, hidden: int, inter: int, layers: int) -> float:
        total = 0.0
        for b, length in self.shapes:
            tokens = b * length
            total += layers * (
                2 * tokens * (4 * hidden * hidden + 2 * hidden * inter) + 4 * b * length * length * hidden
            )
        return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--docs", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", default="")
    args = ap.parse_args()

    import torch
    import transformers
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from bge_core import BGEM3Encoder

    ckpt = minilm_m3_checkpoint()
    docs = scifact_docs()[: args.docs]
    enc = BGEM3Encoder(ckpt, device="cpu")
    dtype = enc._runner.dtype
    light_net = enc._runner.model
    eager = transformers.AutoModel.from_pretrained(str(ckpt), attn_implementation="eager", dtype=torch.float32)
    eager = eager.eval().to(dtype=dtype)
    sdpa_tf = transformers.AutoModel.from_pretrained(str(ckpt), attn_implementation="sdpa", dtype=torch.float32)
    sdpa_tf = sdpa_tf.eval().to(dtype=dtype)
    modules = {"eager (transformers)": eager, "sdpa (transformers module)": sdpa_tf}
    meter = _Meter(enc._runner)
    cfg = light_net.config
    hidden, inter, layers = int(cfg.hidden_size), int(cfg.intermediate_size), int(cfg.num_hidden_layers)

    def run(option: str) -> tuple[Any, float, float, float]:
        enc._runner.model = modules.get(option, light_net)
        backend = {
            "sdpa: flash (CPU fused)": SDPBackend.FLASH_ATTENTION,
            "sdpa: math": SDPBackend.MATH,
            "sdpa: efficient": SDPBackend.EFFICIENT_ATTENTION,
        }.get(option)
        meter.reset()
        t = time.perf_counter()
        if backend is None:
            out = enc.encode(docs, dense=True, sparse=True, colbert=True)
        else:
            with sdpa_kernel([backend]):
                out = enc.encode(docs, dense=True, sparse=True, colbert=True)
        wall = time.perf_counter() - t
        return out, wall, meter.seconds, meter.flops(hidden, inter, layers)

    options = [
        "sdpa: default",
        "sdpa: flash (CPU fused)",
        "sdpa: math",
        "sdpa: efficient",
        "eager (transformers)",
        "sdpa (transformers module)",
    ]
    unavailable: dict[str, str] = {}
    walls: dict[str, list[float]] = {o: [] for o in options}
    fwd: dict[str, list[float]] = {o: [] for o in options}
    flops: dict[str, float] = {}
    outputs: dict[str, Any] = {}
    run("sdpa: default")  # warm-up
    for _ in range(args.rounds):
        for option in options:
            if option in unavailable:
                continue
            try:
                out, wall, seconds, fl = run(option)
            except RuntimeError as exc:
                unavailable[option] = str(exc).splitlines()[0][:80]
                continue
            walls[option].append(wall)
            fwd[option].append(seconds)
            flops[option] = fl
            outputs[option] = out
    enc._runner.model = light_net

    base = outputs["sdpa: default"].dense
    rows = []
    for option in options:
        if option in unavailable:
            rows.append([option, "unavailable", "", "", "", unavailable[option]])
            continue
        w, f = statistics.median(walls[option]), statistics.median(fwd[option])
        diff = float(np.abs(outputs[option].dense - base).max())
        rows.append([option, len(docs) / w, f, flops[option] / f / 1e12, diff, ""])
    print(
        f"attention options ({len(docs)} SciFact docs, dtype {str(dtype).removeprefix('torch.')}, "
        f"median of {args.rounds} rounds, {torch.get_num_threads()} threads):"
    )
    print_table(["option", "docs/s", "forward s", "forward TFLOP/s", "dense max |diff|", "note"], rows)

    shapes = {
        "384: (4096x384)@(384x384)": (4096, 384, 384),
        "384: (4096x384)@(384x1536)": (4096, 384, 1536),
        "384: (4096x1536)@(1536x384)": (4096, 1536, 384),
        "1024: (4096x1024)@(1024x1024)": (4096, 1024, 1024),
        "1024: (4096x1024)@(1024x4096)": (4096, 1024, 4096),
        "square 2048": (2048, 2048, 2048),
    }
    peaks = {name: matmul_rate(*mnk) for name, mnk in shapes.items()}
    peak = max(peaks.values())
    best_384 = max(v for k, v in peaks.items() if k.startswith("384"))
    print("\nbf16 matrix-product rate (torch.matmul, best of 20):")
    print_table(["product", "TFLOP/s"], [[k, v] for k, v in peaks.items()])
    ours = flops["sdpa: default"] / statistics.median(fwd["sdpa: default"]) / 1e12
    print(
        f"\nour forward: {ours:.3f} TFLOP/s = {100 * ours / peak:.1f} % of the best bf16 product rate "
        f"({peak:.2f} TFLOP/s), {100 * ours / best_384:.1f} % of the best 384-wide rate ({best_384:.2f})"
    )
    load = open("/proc/loadavg").read().split()[0] if os.path.exists("/proc/loadavg") else "?"
    print(f"CPU: {cpu_kind()}; load (1 min) at the end: {load}")
    write_json(
        args.json,
        {
            "cpu": cpu_kind(),
            "docs": len(docs),
            "options": {o: {"wall": walls[o], "forward": fwd[o]} for o in options},
            "unavailable": unavailable,
            "matmul_tflops": peaks,
            "forward_tflops": ours,
        },
    )


if __name__ == "__main__":
    main()
