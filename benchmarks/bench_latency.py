"""Benchmark 8: single-query latency and `bge search` cold start, idle and next to a busy process.

Query encode: all-MiniLM-L6-v2 (the real weights), 200 SciFact claims encoded one at a time,
p50 / p99, with the one-thread rule for small batches switched off (``BGE_SMALL_BATCH_TOKENS=0``,
torch's default: every op on all cores) and on (the default), each on an idle machine and next to
ONE CPU-bound background process. Batch throughput (256 SciFact documents) is measured both ways
too, so a loss there would show.

Cold start: wall time of ``bge search`` (a fresh process: imports, model load, one query) on a
4-document index, idle and busy.

    python benchmarks/bench_latency.py [--queries 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, SCIFACT, cpu_kind, minilm_dir, print_table, write_json

_ENCODE = r"""
import json, sys, time
import numpy as np
from bge_core import DenseEncoder
enc = DenseEncoder(sys.argv[1], device="cpu")
queries = [json.loads(line)["text"] for line in open(sys.argv[2], encoding="utf-8")][: int(sys.argv[3])]
docs = [json.loads(line) for line in open(sys.argv[4], encoding="utf-8")][:256]
docs = [f"{d.get('title', '')} {d.get('text', '')}" for d in docs]
enc.encode(queries[:4]); enc.encode(docs[:16])
times = []
for q in queries:
    t = time.perf_counter(); enc.encode([q]); times.append((time.perf_counter() - t) * 1e3)
t = time.perf_counter(); enc.encode(docs); batch = time.perf_counter() - t
print(json.dumps({"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99)), "docs_per_s": len(docs) / batch}))
"""


def _busy() -> subprocess.Popen[bytes]:
    """One CPU-bound background process (a pure-Python spin loop), stopped by the caller."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def _encode_run(env_extra: dict[str, str], queries: int) -> dict[str, float]:
    env = {**os.environ, **env_extra}
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _ENCODE,
            str(minilm_dir()),
            str(SCIFACT / "queries.jsonl"),
            str(queries),
            str(SCIFACT / "corpus.jsonl"),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _cold_start(store: str, reps: int = 3) -> float:
    """Median wall seconds of `bge search` in a fresh process."""
    walls = []
    for _ in range(reps):
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "bge_core.cli", "search", "sleep and coffee", "--store", store, "-k", "3"],
            check=True,
            capture_output=True,
            cwd=REPO,
        )
        walls.append(time.perf_counter() - t)
    return sorted(walls)[len(walls) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--store", default="", help="store URI for the cold-start runs (default: a new local index)")
    ap.add_argument("--json", default="")
    args = ap.parse_args()

    results: dict[str, dict[str, float]] = {}
    rows = []
    for load in ("idle", "1 busy process"):
        busy = _busy() if load != "idle" else None
        try:
            time.sleep(0.5 if busy else 0)
            for rule, env in (("off (torch default)", {"BGE_SMALL_BATCH_TOKENS": "0"}), ("on (default)", {})):
                r = _encode_run(env, args.queries)
                results[f"{load} / {rule}"] = r
                rows.append([load, rule, r["p50"], r["p99"], r["docs_per_s"]])
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
    print_table(["machine", "one-thread rule", "query p50 ms", "query p99 ms", "batch docs/s"], rows)

    store = args.store
    tmp = None
    if not store:
        tmp = tempfile.TemporaryDirectory(prefix="bge-cold-")
        notes = Path(tmp.name) / "notes"
        notes.mkdir()
        for i, text in enumerate(["Coffee and sleep.", "Bones need vitamin D.", "Sleep apnea and the heart.", "Tea."]):
            (notes / f"n{i}.txt").write_text(text, encoding="utf-8")
        store = f"qdrant:{Path(tmp.name) / 'idx'}"
        subprocess.run(
            [sys.executable, "-m", "bge_core.cli", "index", str(notes), "--store", store, "--model", str(minilm_dir())],
            check=True,
            capture_output=True,
            cwd=REPO,
        )
    cold_rows = []
    for load in ("idle", "1 busy process"):
        busy = _busy() if load != "idle" else None
        try:
            wall = _cold_start(store)
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
        results[f"cold start {load}"] = {"seconds": wall}
        cold_rows.append([load, wall])
    print_table(["machine", "`bge search` wall s (median of 3)"], cold_rows)
    print(f"CPU: {cpu_kind()}; store {store.split(':', 1)[0]}")
    results["_meta"] = {"cpu": cpu_kind(), "queries": args.queries}  # type: ignore[dict-item]
    write_json(args.json, results)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
