"""Benchmark: concurrent async embedding calls, before and after the dynamic batcher.

``BGEEmbeddings`` (LangChain) on real all-MiniLM-L6-v2 weights, SciFact documents. Each round
takes fresh documents and times, on the same 128 texts:

- one 128-text ``embed_documents`` call (the floor),
- four sequential 32-text calls,
- four concurrent 32-text ``aembed_documents`` calls, the way they ran before the batcher
  (each on its own worker thread, serialised by the model's forward lock),
- the same four concurrent calls through the dynamic batcher (what ``aembed_documents`` does now).

    python benchmarks/bench_async_embed.py [--rounds 5] [--json out.json]

On a loaded shared machine run it with OMP_NUM_THREADS=1: spinning intra-op threads otherwise
dominate and the figures say more about the neighbours than about batching.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
from typing import Any

from common import minilm_dir, print_table, scifact_docs, write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--per-call", type=int, default=32)
    ap.add_argument("--calls", type=int, default=4)
    ap.add_argument("--queries", type=int, default=64)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)

    import numpy as np

    from langchain_bge import BGEEmbeddings

    emb = BGEEmbeddings(str(minilm_dir()), device="cpu")
    docs = scifact_docs()
    n = args.per_call * args.calls
    emb.embed_documents(docs[:16])  # load + warm up

    async def before(parts: list[list[str]]) -> list[list[list[float]]]:
        return list(await asyncio.gather(*(asyncio.to_thread(emb.embed_documents, p) for p in parts)))

    async def after(parts: list[list[str]]) -> list[list[list[float]]]:
        return list(await asyncio.gather(*(emb.aembed_documents(p) for p in parts)))

    times: dict[str, list[float]] = {k: [] for k in ("one call", "sequential", "concurrent before", "concurrent after")}
    for r in range(args.rounds):
        batch = docs[16 + r * n : 16 + (r + 1) * n]
        parts = [batch[i * args.per_call : (i + 1) * args.per_call] for i in range(args.calls)]
        runs: dict[str, Any] = {
            "one call": lambda batch=batch: emb.embed_documents(batch),
            "sequential": lambda parts=parts: [emb.embed_documents(p) for p in parts],
            "concurrent before": lambda parts=parts: asyncio.run(before(parts)),
            "concurrent after": lambda parts=parts: asyncio.run(after(parts)),
        }
        results = {}
        names = list(runs)
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate: load drifts on a shared machine
            fn = runs[name]
            t = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - t)
        flat = [v for part in results["concurrent after"] for v in part]
        np.testing.assert_allclose(flat, results["one call"], rtol=1e-4, atol=1e-5)
    # Deterministic side of the story: padded tokens the forwards process (length sorting
    # spans all 128 texts when the calls are joined, only 32 when they run apart).
    from bge_core.batching import padded_tokens

    runner = emb.encoder._runner  # type: ignore[attr-defined]
    batch = docs[16 : 16 + n]
    parts = [batch[i * args.per_call : (i + 1) * args.per_call] for i in range(args.calls)]

    def padded(texts: list[str]) -> int:
        ids = runner.tokenize(texts)
        return padded_tokens([len(x) for x in ids], runner.batches(ids))

    apart = sum(padded(p) for p in parts)
    joined = padded(batch)
    print(f"padded tokens (round 1): {apart} in {args.calls} separate calls, {joined} joined ({joined / apart:.3f}x)")
    base = statistics.median(times["one call"])
    rows = [[name, statistics.median(ts), statistics.median(ts) / base] for name, ts in times.items()]
    print(f"{args.calls} x {args.per_call} SciFact docs, all-MiniLM-L6-v2, median of {args.rounds} rounds")
    print_table(["run", "seconds", "vs one call"], rows)

    # Many concurrent single-query calls (a server answering queries): where joining matters most.
    queries = [d[:120] for d in docs[2000 : 2000 + args.queries]]

    async def q_before() -> list[list[float]]:
        return list(await asyncio.gather(*(asyncio.to_thread(emb.embed_query, q) for q in queries)))

    async def q_after() -> list[list[float]]:
        return list(await asyncio.gather(*(emb.aembed_query(q) for q in queries)))

    q_times: dict[str, list[float]] = {"one call": [], "concurrent before": [], "concurrent after": []}
    for _ in range(args.rounds):
        for name, fn in (
            ("one call", lambda: [emb.embed_documents(queries)]),
            ("concurrent before", lambda: asyncio.run(q_before())),
            ("concurrent after", lambda: asyncio.run(q_after())),
        ):
            t = time.perf_counter()
            fn()
            q_times[name].append(time.perf_counter() - t)
    q_base = statistics.median(q_times["one call"])
    print(f"\n{args.queries} concurrent single-query calls (aembed_query), median of {args.rounds} rounds")
    print_table(
        ["run", "seconds", "vs one call"],
        [[k, statistics.median(v), statistics.median(v) / q_base] for k, v in q_times.items()],
    )
    write_json(args.json, {"documents": times, "queries": q_times})


if __name__ == "__main__":
    main()
