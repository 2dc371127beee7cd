"""Benchmark 4: peak RSS of streaming ingest of N and 5N documents (each in a fresh process).

The texts come from a generator (SciFact documents, cycled with a suffix so every text is new),
so the ingest code, not the caller, decides how much is held in memory.

    python benchmarks/bench_memory.py [--n 1000] [--store milvus|qdrant|edge] [--colbert|--no-colbert] [--json out.json]

``milvus`` (default): Milvus Lite with dense + sparse + ColBERT (Milvus Lite runs its engine in
this process, so the figure includes what the store keeps in memory). ``qdrant``: Qdrant local
mode keeps every point in this process's memory; by default it stores dense + sparse only (the
pipeline's figure), ``--colbert`` adds ColBERT. ``edge``: Qdrant Edge (in-process engine), with
ColBERT by default. Each run also reports the ColBERT token vectors stored and the RSS growth
per 1,000 documents and per stored token between N and 5N (what the store keeps per token).
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
n, store, colbert = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
docs = scifact_docs()
enc = BGEM3Encoder(minilm_m3_checkpoint(), device="cpu", max_length=256)
tokens = 0
def texts():
    global tokens
    for i in range(n):
        text = f"{{docs[i % len(docs)]}} [copy {{i // len(docs)}}]"
        # ColBERT vectors stored for this text: its tokens up to 256, without [CLS]
        tokens += len(enc.tokenizer(text, truncation=True, max_length=256)["input_ids"]) - 1
        yield text
tmp = tempfile.mkdtemp()
if store == "milvus":
    from pymilvus import MilvusClient
    from bge_milvus import MilvusIndex
    index = MilvusIndex(MilvusClient(f"{{tmp}}/m.db"), "mem", enc, colbert=colbert, show_progress=False)
elif store == "edge":
    from bge_core.index import VectorIndex
    from bge_qdrant.edge_store import EdgeStore
    index = VectorIndex(EdgeStore(f"{{tmp}}/e", "mem", show_progress=False), enc, colbert=colbert, show_progress=False)
else:
    from qdrant_client import QdrantClient
    from bge_qdrant import QdrantIndex
    index = QdrantIndex(QdrantClient(path=f"{{tmp}}/q"), "mem", enc, colbert=colbert, show_progress=False)
index.add_texts(texts())
hits = index.search("cells in the immune system", 10, mode="colbert" if colbert else "hybrid")
rss = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:")][0] / 1024
print(json.dumps({{"count": index.count(), "colbert_tokens": tokens if colbert else 0, "hits": len(hits),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "end_rss_mb": rss}}))
index.close()
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--store", choices=["milvus", "qdrant", "edge"], default="milvus")
    ap.add_argument(
        "--colbert",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="store ColBERT vectors (default: on, except for qdrant)",
    )
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    colbert = args.colbert if args.colbert is not None else args.store != "qdrant"
    from pathlib import Path

    code = CHILD.format(bench=str(Path(__file__).resolve().parent))
    results = {}
    for n in (args.n, 5 * args.n):
        proc = subprocess.run(
            [sys.executable, "-c", code, str(n), args.store, "1" if colbert else "0"],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            sys.exit(f"child failed for n={n}:\n{proc.stderr[-2000:]}")
        results[n] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"n={n}: {results[n]}", flush=True)
    small, large = results[args.n], results[5 * args.n]
    ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
    grown_mb = large["peak_rss_mb"] - small["peak_rss_mb"]
    per_1k_docs = grown_mb / (4 * args.n) * 1000
    added_tokens = large["colbert_tokens"] - small["colbert_tokens"]
    per_token_kb = grown_mb * 1024 / added_tokens if added_tokens else None
    print_table(
        ["docs", "stored", "ColBERT tokens", "peak RSS MB", "RSS at end MB"],
        [[n, r["count"], r["colbert_tokens"], r["peak_rss_mb"], r["end_rss_mb"]] for n, r in results.items()],
    )
    print(
        f"peak RSS 5N / N = {ratio:.3f}; growth {per_1k_docs:.1f} MB per 1,000 documents"
        + (f", {per_token_kb:.2f} KB per stored ColBERT token" if per_token_kb else "")
        + f" (store: {args.store}, ColBERT {'on' if colbert else 'off'})"
    )
    write_json(
        args.json,
        {
            "store": args.store,
            "colbert": colbert,
            "runs": {str(k): v for k, v in results.items()},
            "ratio_5n_over_n": ratio,
            "growth_mb_per_1k_docs": per_1k_docs,
            "growth_kb_per_colbert_token": per_token_kb,
        },
    )


if __name__ == "__main__":
    main()
