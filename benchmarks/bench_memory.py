"""Benchmark 4: peak RSS of streaming ingest of N and 5N documents (each in a fresh process).

The texts come from a generator (SciFact documents, cycled with a suffix so every text is new),
so the ingest code, not the caller, decides how much is held in memory.

    python benchmarks/bench_memory.py [--n 1000] [--store milvus|qdrant] [--json out.json]

``milvus`` (default): Milvus Lite with dense + sparse + ColBERT (the store runs in its own
process, so the figure is the ingest pipeline's). ``qdrant``: Qdrant local mode keeps every
point in this process's memory, so it stores dense + sparse only to keep the store small.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from common import print_table, write_json

CHILD = r"""
import itertools, json, resource, sys, tempfile, logging
sys.path.insert(0, {bench!r})
from common import minilm_m3_checkpoint, scifact_docs
from bge_core import BGEM3Encoder
n, store = int(sys.argv[1]), sys.argv[2]
docs = scifact_docs()
def texts():
    for i in range(n):
        yield f"{{docs[i % len(docs)]}} [copy {{i // len(docs)}}]"
enc = BGEM3Encoder(minilm_m3_checkpoint(), device="cpu", max_length=256)
tmp = tempfile.mkdtemp()
if store == "milvus":
    from pymilvus import MilvusClient
    from bge_milvus import MilvusIndex
    index = MilvusIndex(MilvusClient(f"{{tmp}}/m.db"), "mem", enc, show_progress=False)
else:
    from qdrant_client import QdrantClient
    from bge_qdrant import QdrantIndex
    index = QdrantIndex(QdrantClient(path=f"{{tmp}}/q"), "mem", enc, colbert=False, show_progress=False)
index.add_texts(texts())
print(json.dumps({{"count": index.count(), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--store", choices=["milvus", "qdrant"], default="milvus")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    from pathlib import Path

    code = CHILD.format(bench=str(Path(__file__).resolve().parent))
    results = {}
    for n in (args.n, 5 * args.n):
        proc = subprocess.run(
            [sys.executable, "-c", code, str(n), args.store], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            sys.exit(f"child failed for n={n}:\n{proc.stderr[-2000:]}")
        results[n] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"n={n}: {results[n]}", flush=True)
    ratio = results[5 * args.n]["peak_rss_mb"] / results[args.n]["peak_rss_mb"]
    print_table(["docs", "stored", "peak RSS MB"], [[n, r["count"], r["peak_rss_mb"]] for n, r in results.items()])
    print(f"peak RSS 5N / N = {ratio:.3f} (store: {args.store})")
    write_json(
        args.json, {"store": args.store, "runs": {str(k): v for k, v in results.items()}, "ratio_5n_over_n": ratio}
    )


if __name__ == "__main__":
    main()
