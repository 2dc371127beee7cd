"""Benchmark 6: CPU engines side by side: our torch path vs ONNX Runtime (fastembed's engine), int8.

Same checkpoint (all-MiniLM-L6-v2 backbone + M3 heads), same SciFact documents, same tokenisation,
same length-sorted token-budgeted batches and the same head / post-processing code: only the
engine that runs the transformer backbone changes. Each round takes FRESH documents and times
every system on them in turn, so all systems see the same lengths and the same machine load.

Systems:
- ``torch auto``: ``BGEM3Encoder`` defaults (bf16 where the CPU has AMX / AVX512-BF16).
- ``torch float32``.
- ``torch int8 dyn``: ``torch.ao`` dynamic int8 quantisation of the backbone's Linear layers.
- ``onnxruntime float32``: the backbone exported with ``torch.onnx.export`` and run by ORT's CPU EP.
- ``onnxruntime int8 dyn``: ORT's ``quantize_dynamic`` (QInt8 weights, VNNI / AMX-INT8 kernels).
- ``FlagEmbedding bs=32``: the reference, at its best batch size on this machine.

Quality is the dense (CLS) cosine of each system against ``torch float32`` on the same texts, and
the token-level ColBERT cosine.

    python benchmarks/bench_cpu_engines.py [--docs-per-round 200] [--rounds 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from common import cpu_kind, minilm_m3_checkpoint, print_table, scifact_docs, timed, write_json


class _OrtBackbone:
    """Stands in for the transformers module: runs the exported backbone in ONNX Runtime."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]

    def __call__(self, return_dict: bool = True, **batch: Any) -> Any:
        import torch

        feed = {k: v.numpy() for k, v in batch.items() if k in self.names}
        if "token_type_ids" in self.names and "token_type_ids" not in feed:
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        (hidden,) = self.session.run(None, feed)

        class _Out:
            last_hidden_state = torch.from_numpy(hidden)

        return _Out()


def export_backbone(model: Any, out: Path) -> Path:
    """Export a BERT-family backbone (last hidden state) with dynamic batch and length axes."""
    import torch

    class _Wrap(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
        ) -> torch.Tensor:
            return self.net(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    ids = torch.ones(2, 16, dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "seq"} for n in [*names, "hidden"]}
    torch.onnx.export(
        _Wrap(model.float().eval()),
        (ids, torch.ones_like(ids), torch.zeros_like(ids)),
        str(out),
        input_names=names,
        output_names=["hidden"],
        dynamic_axes=axes,
        opset_version=17,
        dynamo=False,
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--docs-per-round", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)

    import torch
    from FlagEmbedding import BGEM3FlagModel
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from bge_core import BGEM3Encoder

    ckpt = minilm_m3_checkpoint()
    docs = scifact_docs()
    n, L = args.docs_per_round, args.max_length
    threads = torch.get_num_threads()
    tmp = Path(tempfile.mkdtemp(prefix="bge-onnx-"))

    systems: dict[str, Any] = {
        "torch auto": BGEM3Encoder(ckpt, device="cpu", max_length=L),
        "torch float32": BGEM3Encoder(ckpt, device="cpu", dtype="float32", max_length=L),
    }
    fp32 = systems["torch float32"]
    # Export from a separate copy: tracing can leave the traced module changed.
    donor = BGEM3Encoder(ckpt, device="cpu", dtype="float32", max_length=L)
    _, export_s = timed(lambda: export_backbone(donor.model, tmp / "backbone.onnx"))
    quantize_dynamic(str(tmp / "backbone.onnx"), str(tmp / "backbone-int8.onnx"), weight_type=QuantType.QInt8)
    for name, file in (("onnxruntime float32", "backbone.onnx"), ("onnxruntime int8 dyn", "backbone-int8.onnx")):
        enc = BGEM3Encoder(ckpt, device="cpu", dtype="float32", max_length=L)
        enc._runner.model = _OrtBackbone(tmp / file, threads)  # type: ignore[assignment]
        systems[name] = enc
    q8 = BGEM3Encoder(ckpt, device="cpu", dtype="float32", max_length=L)
    q8._runner.model = torch.ao.quantization.quantize_dynamic(q8._runner.model, {torch.nn.Linear}, dtype=torch.qint8)
    systems["torch int8 dyn"] = q8
    flag = BGEM3FlagModel(str(ckpt), use_fp16=False, devices="cpu")

    def run_flag(texts: list[str]) -> object:
        return flag.encode(
            texts, batch_size=32, max_length=L, return_dense=True, return_sparse=True, return_colbert_vecs=True
        )

    warm = docs[-32:]
    for enc in systems.values():
        enc.encode(warm, colbert=True)
    run_flag(warm)

    names = [*systems, "FlagEmbedding bs=32"]
    totals = {k: [0.0, 0, 0] for k in names}
    quality: dict[str, list[float]] = {k: [] for k in systems}
    colbert_q: dict[str, list[float]] = {k: [] for k in systems}
    for r in range(args.rounds):
        texts = docs[r * n : (r + 1) * n]
        tokens = sum(fp32.count_tokens(texts))
        outs = {}
        for name, enc in systems.items():
            outs[name], sec = timed(lambda: enc.encode(texts, dense=True, sparse=True, colbert=True))
            totals[name][0] += sec
            totals[name][1] += len(texts)
            totals[name][2] += tokens
        _, sec = timed(lambda: run_flag(texts))
        totals["FlagEmbedding bs=32"][0] += sec
        totals["FlagEmbedding bs=32"][1] += len(texts)
        totals["FlagEmbedding bs=32"][2] += tokens
        ref = outs["torch float32"]
        for name, o in outs.items():
            quality[name].extend(np.sum(o.dense * ref.dense, axis=1).tolist())
            colbert_q[name].extend(float(np.min(np.sum(a * b, axis=1))) for a, b in zip(o.colbert, ref.colbert))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[0]:.1f}s" for k, v in totals.items()), flush=True)

    base = totals["FlagEmbedding bs=32"][1] / totals["FlagEmbedding bs=32"][0]
    rows, out = [], {}
    for name in names:
        sec, nd, nt = totals[name]
        dq = min(quality[name]) if name in quality else float("nan")
        cq = min(colbert_q[name]) if name in colbert_q else float("nan")
        rows.append([name, nd / sec, nt / sec, (nd / sec) / base, dq, cq])
        out[name] = {
            "seconds": sec,
            "docs_per_s": nd / sec,
            "tokens_per_s": nt / sec,
            "x_flag_bs32": (nd / sec) / base,
            "dense_cos_min_vs_fp32": dq,
            "colbert_token_cos_min_vs_fp32": cq,
        }
    print_table(
        ["system", "docs/s", "tokens/s", "x FlagEmbedding bs=32", "dense cos min vs fp32", "ColBERT token cos min"],
        rows,
    )
    print(f"CPU: {cpu_kind()}; threads {threads}; ONNX export took {export_s:.1f}s (once)")
    out["_meta"] = {
        "cpu": cpu_kind(),
        "threads": threads,
        "docs": totals["FlagEmbedding bs=32"][1],
        "checkpoint": "all-MiniLM-L6-v2 + M3 heads",
    }
    write_json(args.json, out)


if __name__ == "__main__":
    main()
