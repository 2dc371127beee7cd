"""GPU encode benchmark: BGEM3Encoder vs FlagEmbedding BGEM3FlagModel (fp16) on an
XLM-RoBERTa-large-shaped M3 model (random weights) with SciFact documents.

    python benchmarks/gpu_encode.py --corpus CORPUS.jsonl --tokenizer TOKENIZER_DIR [--json OUT.json]

The tokenizer folder (any fast tokenizer, e.g. all-MiniLM-L6-v2's WordPiece) gives realistic
SciFact lengths; the model is built in a temp dir with that vocabulary size. Prints a table of
docs/s and tokens/s (real tokens, no padding) and the parity of outputs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build_large_m3(tokenizer_dir: Path, out: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaModel

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    tok.model_max_length = 8192
    tok.save_pretrained(str(out))
    cfg = XLMRobertaConfig(
        vocab_size=len(tok),
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        max_position_embeddings=8194,
        pad_token_id=tok.pad_token_id,
        initializer_range=0.02,
    )
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = XLMRobertaModel(cfg, add_pooling_layer=False).half()
    model.save_pretrained(str(out))
    torch.save(torch.nn.Linear(1024, 1024).state_dict(), out / "colbert_linear.pt")
    sparse = torch.nn.Linear(1024, 1)
    torch.nn.init.normal_(sparse.weight, std=0.05)
    torch.nn.init.constant_(sparse.bias, 0.5)
    torch.save(sparse.state_dict(), out / "sparse_linear.pt")
    return out


def timed(fn, sync):  # type: ignore[no-untyped-def]
    sync()
    t = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--docs", type=int, default=0)
    ap.add_argument("--json", default="")
    args = ap.parse_args()

    import torch

    docs = []
    with open(args.corpus, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            docs.append(f"{row.get('title', '')} {row['text']}".strip())
    if args.docs:
        docs = docs[: args.docs]
    tmp = Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    ckpt = build_large_m3(Path(args.tokenizer), tmp / "m3-large")
    print(f"built checkpoint in {time.perf_counter() - t0:.1f}s", flush=True)
    sync = torch.cuda.synchronize
    results: dict[str, dict[str, float]] = {}

    from bge_core import BGEM3Encoder

    ours = {
        dt: BGEM3Encoder(ckpt, device="cuda", dtype=dt, max_length=args.max_length) for dt in ("float16", "bfloat16")
    }
    n_tokens = int(sum(ours["float16"].count_tokens(docs)))
    print(f"{len(docs)} docs, {n_tokens} tokens (max_length {args.max_length})", flush=True)
    # bf16 matmul peak in the same run
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ a
    _, dt_mm = timed(lambda: [a @ a for _ in range(10)], sync)
    peak = 2 * 8192**3 * 10 / dt_mm / 1e12
    params = sum(p.numel() for n, p in ours["float16"].model.named_parameters() if "embeddings" not in n)

    def record(name: str, seconds: float) -> None:
        tflops = 2 * params * n_tokens / seconds / 1e12
        results[name] = {
            "seconds": seconds,
            "docs_per_s": len(docs) / seconds,
            "tokens_per_s": n_tokens / seconds,
            "tflops": tflops,
        }
        print(
            f"{name:32s} {seconds:8.2f}s {len(docs) / seconds:10.1f} docs/s {n_tokens / seconds:12.0f} tok/s {tflops:7.1f} TFLOP/s",
            flush=True,
        )

    outs = {}
    for dt, enc in ours.items():
        enc.encode(docs[:512], colbert=True)
        out, sec = timed(lambda: enc.encode(docs, dense=True, sparse=True, colbert=True), sync)
        record(f"bge_core {dt}", sec)
        outs[dt] = out
    enc16 = ours["float16"]
    _, sec = timed(lambda: enc16.count_tokens(docs), sync)
    results["breakdown tokenize only"] = {"seconds": sec}
    print(f"{'  tokenize only':32s} {sec:8.2f}s", flush=True)
    _, sec = timed(lambda: enc16.encode(docs, dense=True, sparse=False, colbert=False), sync)
    results["breakdown dense only"] = {"seconds": sec}
    print(f"{'  dense only':32s} {sec:8.2f}s", flush=True)
    _, sec = timed(lambda: enc16.encode(docs, dense=True, sparse=True, colbert=False), sync)
    results["breakdown dense+sparse"] = {"seconds": sec}
    print(f"{'  dense+sparse':32s} {sec:8.2f}s", flush=True)
    for dt in list(ours):
        del ours[dt]
    torch.cuda.empty_cache()

    from FlagEmbedding import BGEM3FlagModel

    flag = BGEM3FlagModel(str(ckpt), use_fp16=True, devices="cuda:0")
    ref = None
    for bs in (256, 64):
        flag.encode(docs[:512], batch_size=bs, max_length=args.max_length, return_sparse=True, return_colbert_vecs=True)
        r, sec = timed(
            lambda: flag.encode(
                docs,
                batch_size=bs,
                max_length=args.max_length,
                return_dense=True,
                return_sparse=True,
                return_colbert_vecs=True,
            ),
            sync,
        )
        record(f"FlagEmbedding fp16 bs={bs}", sec)
        ref = ref or r
    assert ref is not None
    best_flag = max(v["tokens_per_s"] for k, v in results.items() if k.startswith("Flag"))
    for dt in ("float16", "bfloat16"):
        out = outs[dt]
        cos = np.sum(out.dense * ref["dense_vecs"], axis=1)
        overlap = np.mean(
            [
                len(set(s.to_dict()) & {int(k) for k in r}) / max(len(r), 1)
                for s, r in zip(out.sparse, ref["lexical_weights"])
            ]
        )
        col = max(
            float(np.abs(c - rc.astype(np.float32)).max())
            for c, rc in zip(out.colbert[:200], ref["colbert_vecs"][:200])
        )
        results[f"bge_core {dt}"].update(
            speedup_vs_best_flag=results[f"bge_core {dt}"]["tokens_per_s"] / best_flag,
            dense_cos_min=float(cos.min()),
            sparse_key_overlap=float(overlap),
            colbert_max_abs_diff=col,
        )
        print(
            f"bge_core {dt}: {results[f'bge_core {dt}']['speedup_vs_best_flag']:.2f}x best FlagEmbedding; "
            f"dense cos min {cos.min():.5f}; sparse key overlap {overlap:.4f}; colbert max|diff| {col:.4f}",
            flush=True,
        )
    results["_meta"] = {
        "gpu": torch.cuda.get_device_name(),
        "bf16_matmul_peak_tflops": peak,
        "docs": len(docs),
        "tokens": n_tokens,
        "torch": torch.__version__,
        "non_embedding_params": params,
    }
    print(f"bf16 matmul peak {peak:.0f} TFLOP/s", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
