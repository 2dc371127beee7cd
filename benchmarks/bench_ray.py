"""Benchmark: ingest on Ray (1 and 2 encoding workers, one torch thread each) vs one process.

SciFact documents (``title + " " + text``) with the all-MiniLM-L6-v2 backbone + random M3 heads
(dense + sparse + ColBERT), into Qdrant local mode (the driver is the single writer). The
single process is ``VectorIndex.add_texts`` with the same encoder defaults and all cores; the
Ray runs are ``bge_ray.ingest`` on a local Ray (``num_cpus`` = cores), timed from the call to
the last row stored (actor start-up and model loading included; Ray's own start is not).

    python benchmarks/bench_ray.py [--docs 5183] [--batch-size 32] [--json out.json]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time

from common import minilm_m3_checkpoint, print_table, scifact_docs, timed, write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--docs", type=int, default=5183)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    import ray

    import bge_ray
    from bge_core.cli.encoders import load_encoder
    from bge_core.cli.stores import open_store
    from bge_core.index import VectorIndex

    ckpt = str(minilm_m3_checkpoint())
    texts = scifact_docs()[: args.docs]
    ids = [str(i) for i in range(len(texts))]
    tmp = tempfile.mkdtemp()
    cores = os.cpu_count() or 1
    results: dict[str, dict[str, float]] = {}

    # Single process: the model loads before the clock starts (as a running service would).
    encoder = load_encoder(ckpt, device="cpu", batch_size=args.batch_size)
    encoder.encode_outputs(texts[:8], query=False, dense=True, sparse=True, colbert=True)
    probe = open_store(f"qdrant:{tmp}/single", collection="bench")
    index = VectorIndex(probe, encoder, chunk_size=256, write_batch_size=args.batch_size)
    _, t_single = timed(lambda: index.add_texts(texts, ids=ids))
    assert index.count() == len(texts)
    index.close()
    results["single process"] = {"seconds": t_single, "docs_per_s": len(texts) / t_single, "first_row_s": 0.0}
    print(f"single process ({cores} threads): {t_single:.1f}s, {len(texts) / t_single:.1f} docs/s", flush=True)

    ray.init(num_cpus=cores, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    try:
        ds = ray.data.from_items([{"text": t, "id": i} for t, i in zip(texts, ids)])
        for workers in (int(w) for w in args.workers.split(",")):
            first: list[float] = []
            start = time.perf_counter()

            def seen(progress: bge_ray.IngestProgress, first: list[float] = first, start: float = start) -> None:
                if not first:
                    first.append(time.perf_counter() - start)

            result = bge_ray.ingest(
                ds,
                f"qdrant:{tmp}/ray{workers}",
                model=ckpt,
                collection="bench",
                workers=workers,
                torch_threads=1,
                batch_size=args.batch_size,
                on_progress=seen,
            )
            seconds = time.perf_counter() - start
            assert result.stored == len(texts) and result.encoded == len(texts)
            results[f"Ray, {workers} worker(s)"] = {
                "seconds": seconds,
                "docs_per_s": len(texts) / seconds,
                "first_row_s": first[0],
            }
            print(
                f"Ray {workers} workers: {seconds:.1f}s, {len(texts) / seconds:.1f} docs/s, first row after {first[0]:.1f}s",
                flush=True,
            )
    finally:
        ray.shutdown()

    base = results["single process"]["docs_per_s"]
    rows = [
        [
            name,
            f"{r['seconds']:.1f}",
            f"{r['docs_per_s']:.1f}",
            f"{r['first_row_s']:.1f}",
            f"{r['docs_per_s'] / base:.2f}",
        ]
        for name, r in results.items()
    ]
    print_table(["system", "seconds", "docs/s", "first row s", "x single process"], rows)
    if args.json:
        write_json(args.json, {"docs": len(texts), "batch_size": args.batch_size, "cores": cores, "results": results})


if __name__ == "__main__":
    main()
