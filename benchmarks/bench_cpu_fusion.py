"""CPU bf16 forward: where the time goes, what fusing pays, and the share of the bf16 matrix peak.

Two models, the same procedure:
- MiniLM: all-MiniLM-L6-v2 + M3 heads (hidden 384, 6 layers, head dim 32), the encode workload of
  BENCHMARKS section 10 (``BGEM3Encoder`` defaults, dense + sparse + ColBERT, SciFact documents);
- M3 shape: an XLM-R-large-shaped light encoder (hidden 1024, 24 layers, 16 heads of 64, FFN 4096,
  vocab 250002) with random weights, its forward timed on the batches the runner plans for the same
  documents (ids capped at 512 tokens, as for MiniLM).

Options, each timed in rotation on the same inputs (``--rounds``, median), outputs compared with
"off" (max abs difference and minimum cosine of the token states / dense vectors):
- ``off``: plain ``nn.Linear`` (aten addmm) and the boolean mask SDPA converts in every layer
  (the code before this change, bit-identical to transformers);
- ``exact``: oneDNN products with the bias in the epilogue and the additive mask built once
  (bit-identical to ``off``; the default);
- ``fused``: ``exact`` plus GELU and the residual add as post-ops of the products;
- ``compile`` (``--compile``; MiniLM only): ``torch.compile(dynamic=True)`` with inductor's
  freezing (weights prepacked for oneDNN, its own fusions); the first call's compile time shown.

Also printed: a torch.profiler breakdown of one forward batch per option (time per op class), the
bf16 matrix-product rate of this CPU (best of several ``torch.matmul`` shapes: "the peak"), and
each option's forward TFLOP/s (FLOPs of the padded shapes: linear 2*T*(4H^2 + 2HI) and attention
4*B*L^2*H per layer, over the time inside the backbone forwards) as a share of the peak.

    python benchmarks/bench_cpu_fusion.py [--docs 96] [--m3-docs 32] [--rounds 3] [--compile] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict
from typing import Any

import numpy as np
from common import cpu_kind, minilm_m3_checkpoint, print_table, scifact_docs, write_json

OPS = {
    "linear": ("addmm", "linear_pointwise", "mkl_linear", "mm", "linear"),
    "attention (SDPA)": ("scaled_dot_product", "flash_attention"),
    "bias/add copies": ("copy_",),
    "GELU": ("gelu",),
    "residual add": ("add",),
    "LayerNorm": ("layer_norm",),
    "mask convert": ("where", "logical_not", "masked_fill", "zeros"),
}


def _load() -> str:
    return open("/proc/loadavg").read().split()[0] if os.path.exists("/proc/loadavg") else "?"


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


def quick_peak() -> float:
    """The best of two large bf16 products now (measured in every round, next to the options, so
    that each share compares rates measured under the same load)."""
    return max(matmul_rate(4096, 384, 1536, reps=6), matmul_rate(4096, 1024, 4096, reps=4))


def one_core_shares(runner: Any, light: Any, ids: list[list[int]], first: list[int], m3_net_batches: Any) -> Any:
    """Share of the bf16 product rate on ONE thread, both sides timed by the thread's CPU time.

    Other processes stretch wall time but not the CPU time our thread actually runs, so this
    share holds up on a busy machine (cache sharing aside); on an idle machine it estimates the
    per-core share (two threads add OpenMP synchronisation on top)."""
    import torch

    def cpu_rate(fn: Any, flops: float, reps: int) -> float:
        fn()
        best = float("inf")
        for _ in range(reps):
            t = time.thread_time()
            fn()
            best = min(best, time.thread_time() - t)
        return flops / best / 1e12

    full = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        mats = {}
        for m, k, n in ((4096, 384, 384), (4096, 384, 1536), (4096, 1024, 1024), (4096, 1024, 4096)):
            a, b = torch.randn(m, k, dtype=torch.bfloat16), torch.randn(k, n, dtype=torch.bfloat16)
            mats[f"({m}x{k})@({k}x{n})"] = cpu_rate(lambda a=a, b=b: a @ b, 2 * m * k * n, 10)
        peak = max(mats.values())
        batch = runner.collate([ids[j] for j in first])
        shape = tuple(batch["input_ids"].shape)
        cfg = light.config
        fl = forward_flops([shape], int(cfg.hidden_size), int(cfg.intermediate_size), int(cfg.num_hidden_layers))
        rows = []
        for option in ("off", "exact", "fused"):
            light.cpu_fusion = option
            with torch.inference_mode():
                rate = cpu_rate(lambda: light(**batch), fl, 3)
            row: list[Any] = [option, rate, 100 * rate / peak]
            if m3_net_batches is not None:
                net, m3_batches = m3_net_batches
                net.cpu_fusion = option
                x, m = m3_batches[0]
                m3_fl = forward_flops([tuple(x.shape)], 1024, 4096, 24)
                with torch.inference_mode():
                    m3_rate = cpu_rate(lambda: net(input_ids=x, attention_mask=m), m3_fl, 2)
                row += [m3_rate, 100 * m3_rate / peak]
            else:
                row += ["", ""]
            rows.append(row)
        light.cpu_fusion = "exact"
    finally:
        torch.set_num_threads(full)
    print(f"\nONE thread, thread CPU time (load-robust): bf16 product rate per core {peak:.2f} TFLOP/s {mats}")
    print(f"MiniLM batch {shape}; M3-shape batch {tuple(m3_net_batches[1][0][0].shape) if m3_net_batches else '-'}:")
    print_table(["option", "MiniLM TFLOP/s", "MiniLM % of peak", "M3-shape TFLOP/s", "M3-shape % of peak"], rows)
    return {"matmul": mats, "rows": rows}


def forward_flops(shapes: list[tuple[int, int]], hidden: int, inter: int, layers: int) -> float:
    total = 0.0
    for b, length in shapes:
        tokens = b * length
        total += layers * (2 * tokens * (4 * hidden * hidden + 2 * hidden * inter) + 4 * b * length * length * hidden)
    return total


def op_classes(prof: Any) -> dict[str, float]:
    """Self CPU seconds per op class of a torch.profiler run."""
    out: dict[str, float] = defaultdict(float)
    for ev in prof.key_averages():
        name = ev.key.split("::")[-1]
        cls = next((c for c, keys in OPS.items() if any(k == name or k in name for k in keys)), "other")
        if name in ("add", "add_"):
            cls = "residual add"
        out[cls] += ev.self_cpu_time_total / 1e6
    return dict(out)


def m3_shaped_encoder() -> Any:
    """An XLM-R-large-shaped light encoder with random weights (bf16, eval)."""
    import torch

    from bge_core.light_model import LightConfig, _build

    cfg = LightConfig(
        model_type="xlm-roberta",
        vocab_size=250002,
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        hidden_act="gelu",
        max_position_embeddings=8194,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        pad_token_id=1,
    )
    torch.manual_seed(0)
    net = _build(cfg)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "LayerNorm.weight" in name:
                p.fill_(1.0)
            elif p.dim() == 1:
                p.zero_()
            else:
                p.normal_(0.0, 0.02)
    return net.eval().to(torch.bfloat16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--docs", type=int, default=96)
    ap.add_argument("--m3-docs", type=int, default=32, help="documents for the M3-shaped model (0: skip it)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile + freezing (MiniLM)")
    ap.add_argument(
        "--cpu-time",
        action="store_true",
        help="also the share on ONE thread by thread CPU time (robust to other processes on the machine)",
    )
    ap.add_argument("--json", default="")
    args = ap.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile

    from bge_core import BGEM3Encoder

    print(f"CPU: {cpu_kind()}; {torch.get_num_threads()} threads; load at start {_load()}")
    docs = scifact_docs()[: args.docs]
    enc = BGEM3Encoder(minilm_m3_checkpoint(), device="cpu")
    runner = enc._runner
    light = runner.model
    assert enc._runner.dtype == torch.bfloat16, "this benchmark is about the bf16 path (AMX / AVX512-BF16 CPUs)"
    results: dict[str, Any] = {"cpu": cpu_kind(), "threads": torch.get_num_threads()}

    # --- MiniLM + M3 heads: whole encode, options in rotation -------------------------------
    seconds = {"t": 0.0}
    shapes: list[tuple[int, int]] = []
    inner = runner.forward

    def metered(batch: Any, module: Any = None) -> Any:
        t = time.perf_counter()
        out = inner(batch, module)
        seconds["t"] += time.perf_counter() - t
        shapes.append(tuple(batch["input_ids"].shape))  # type: ignore[arg-type]
        return out

    runner.forward = metered  # type: ignore[method-assign]
    options = ["off", "exact", "fused"]
    compiled: Any = None
    compile_s = 0.0
    if args.compile:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
        compiled = torch.compile(light, dynamic=True)
        options.append("compile")

    def select(option: str) -> None:
        if option == "compile":
            runner.model = compiled
        else:
            runner.model = light
            light.cpu_fusion = option

    def encode() -> Any:
        return enc.encode(docs, dense=True, sparse=True, colbert=True)

    outputs: dict[str, Any] = {}
    for option in options:  # warm-up (and the compile)
        select(option)
        t = time.perf_counter()
        outputs[option] = encode()
        if option == "compile":
            compile_s = time.perf_counter() - t
    walls: dict[str, list[float]] = {o: [] for o in options}
    fwd: dict[str, list[float]] = {o: [] for o in options}
    loads: list[str] = []
    peaks_minilm: list[float] = []
    for _ in range(args.rounds):
        peaks_minilm.append(quick_peak())
        for option in options:
            select(option)
            seconds["t"], shapes[:] = 0.0, []
            t = time.perf_counter()
            encode()
            walls[option].append(time.perf_counter() - t)
            fwd[option].append(seconds["t"])
        loads.append(_load())
    cfg = light.config
    h, i, n_layers = int(cfg.hidden_size), int(cfg.intermediate_size), int(cfg.num_hidden_layers)
    flops = forward_flops(shapes, h, i, n_layers)

    # One batch per option under the profiler: time per op class.
    ids = runner.tokenize(docs)
    first = runner.batches(ids)[0]
    batch = runner.collate([ids[j] for j in first])
    profiles: dict[str, dict[str, float]] = {}
    for option in options:
        select(option)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            runner.forward(batch)
        profiles[option] = op_classes(prof)
    select("exact")
    runner.forward = inner  # type: ignore[method-assign]

    base = outputs["off"]
    rows = []
    for option in options:
        out = outputs[option]
        dense_cos = float((out.dense * base.dense).sum(1).min())
        col = np.concatenate(out.colbert)
        col_cos = float((col * np.concatenate(base.colbert)).sum(1).min())
        w, f = statistics.median(walls[option]), statistics.median(fwd[option])
        rows.append(
            [
                option,
                len(docs) / w,
                statistics.median(walls["off"]) / w,
                f,
                flops / f / 1e12,
                float(np.abs(out.dense - base.dense).max()),
                dense_cos,
                col_cos,
            ]
        )
    print(
        f"\nMiniLM + M3 heads: {len(docs)} SciFact docs, batches {[(len(b)) for b in runner.batches(ids)]}, "
        f"median of {args.rounds} rounds in rotation; load per round {loads}"
    )
    print_table(
        [
            "option",
            "docs/s",
            "x off",
            "forward s",
            "fwd TFLOP/s",
            "dense max|diff|",
            "dense cos min",
            "ColBERT cos min",
        ],
        rows,
    )
    if compiled is not None:
        print(f"compile: first encode (compile + run) {compile_s:.1f} s")
    classes = sorted({c for p in profiles.values() for c in p}, key=lambda c: -profiles["off"].get(c, 0.0))
    print(f"\nprofile of one forward batch {tuple(batch['input_ids'].shape)} (self CPU s per op class):")
    print_table(["op class", *options], [[c, *(profiles[o].get(c, 0.0) for o in options)] for c in classes])
    results["minilm"] = {
        "docs": len(docs),
        "walls": walls,
        "forward": fwd,
        "flops": flops,
        "loads": loads,
        "profiles": profiles,
        "compile_s": compile_s,
        "rows": rows,
    }

    # --- M3 shape (XLM-R large, random weights): forward only --------------------------------
    m3_rows = []
    m3_flops = 0.0
    m3_fwd: dict[str, list[float]] = {}
    peaks_m3: list[float] = []
    m3_batches_for_cpu: Any = None
    if args.m3_docs:
        net = m3_shaped_encoder()
        m3_ids = [[0, *(5 + t % 249000 for t in x[1:-1]), 2] for x in ids[: args.m3_docs]]
        plan = runner.batches(m3_ids)
        batches = []
        for b in plan:
            rows_ids = [m3_ids[j] for j in b]
            longest = max(len(x) for x in rows_ids)
            inp = torch.full((len(b), longest), 1, dtype=torch.long)
            mask = torch.zeros((len(b), longest), dtype=torch.long)
            for r, x in enumerate(rows_ids):
                inp[r, : len(x)] = torch.tensor(x)
                mask[r, : len(x)] = 1
            batches.append((inp, mask))
        m3_shapes = [tuple(x.shape) for x, _ in batches]
        m3_flops = forward_flops(m3_shapes, 1024, 4096, 24)  # type: ignore[arg-type]
        m3_opts = ["off", "exact", "fused"]
        m3_fwd = {o: [] for o in m3_opts}
        m3_out: dict[str, Any] = {}
        for option in m3_opts:  # warm-up
            net.cpu_fusion = option
            with torch.inference_mode():
                m3_out[option] = [net(input_ids=x, attention_mask=m).last_hidden_state.float() for x, m in batches]
        m3_loads = []
        for _ in range(args.rounds):
            peaks_m3.append(quick_peak())
            for option in m3_opts:
                net.cpu_fusion = option
                t = time.perf_counter()
                with torch.inference_mode():
                    for x, m in batches:
                        net(input_ids=x, attention_mask=m)
                m3_fwd[option].append(time.perf_counter() - t)
            m3_loads.append(_load())
        for option in m3_opts:
            f = statistics.median(m3_fwd[option])
            diff = max(float((a - b).abs().max()) for a, b in zip(m3_out[option], m3_out["off"]))
            cls = [
                torch.nn.functional.cosine_similarity(a[:, 0], b[:, 0]).min()
                for a, b in zip(m3_out[option], m3_out["off"])
            ]
            m3_rows.append(
                [option, f, statistics.median(m3_fwd["off"]) / f, m3_flops / f / 1e12, diff, float(min(cls))]
            )
        print(
            f"\nM3 shape (XLM-R large, random weights): {args.m3_docs} docs, batches {m3_shapes}, "
            f"median of {args.rounds} rounds in rotation; load per round {m3_loads}"
        )
        print_table(["option", "forward s", "x off", "fwd TFLOP/s", "hidden max|diff|", "CLS cos min"], m3_rows)
        results["m3"] = {"shapes": m3_shapes, "forward": m3_fwd, "flops": m3_flops, "loads": m3_loads, "rows": m3_rows}
        m3_batches_for_cpu = (net, batches)

    # --- the bf16 matrix-product peak, and the shares --------------------------------------
    prods = {
        "(4096x384)@(384x384)": (4096, 384, 384),
        "(4096x384)@(384x1536)": (4096, 384, 1536),
        "(4096x1024)@(1024x1024)": (4096, 1024, 1024),
        "(4096x1024)@(1024x4096)": (4096, 1024, 4096),
        "square 2048": (2048, 2048, 2048),
    }
    peaks = {name: matmul_rate(*mnk) for name, mnk in prods.items()}
    peak = max(peaks.values())
    print(f"\nbf16 matrix-product rate (torch.matmul, best of 20), load {_load()}:")
    print_table(["product", "TFLOP/s"], [[k, v] for k, v in peaks.items()])
    share_rows = []
    for option in options:
        ours = flops / statistics.median(fwd[option]) / 1e12
        per_round = [100 * flops / f / 1e12 / p for f, p in zip(fwd[option], peaks_minilm)]
        row: list[Any] = [option, ours, 100 * ours / peak, statistics.median(per_round)]
        if option in m3_fwd:
            m3 = m3_flops / statistics.median(m3_fwd[option]) / 1e12
            per_round = [100 * m3_flops / f / 1e12 / p for f, p in zip(m3_fwd[option], peaks_m3)]
            row += [m3, 100 * m3 / peak, statistics.median(per_round)]
        else:
            row += ["", "", ""]
        share_rows.append(row)
    print(
        f"\nforward TFLOP/s and share of the best product rate ({peak:.2f} TFLOP/s at the end; per round: "
        f"MiniLM rounds {[round(p, 2) for p in peaks_minilm]}, M3 rounds {[round(p, 2) for p in peaks_m3]}):"
    )
    print_table(
        [
            "option",
            "MiniLM TFLOP/s",
            "% of end peak",
            "% of round peak (median)",
            "M3-shape TFLOP/s",
            "% of end peak",
            "% of round peak (median)",
        ],
        share_rows,
    )
    if args.cpu_time:
        results["one_core"] = one_core_shares(runner, light, ids, first, m3_net_batches=m3_batches_for_cpu)
    print(f"CPU: {cpu_kind()}; load (1 min) at the end: {_load()}")
    results.update(
        {"matmul_tflops": peaks, "round_peaks": {"minilm": peaks_minilm, "m3": peaks_m3}, "shares": share_rows}
    )
    write_json(args.json, results)


if __name__ == "__main__":
    main()
