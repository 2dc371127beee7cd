"""Benchmark: ingest on Ray (1 and 2 encoding workers, one torch thread each) vs one process.

SciFact documents (``title + " " + text``) with the all-MiniLM-L6-v2 backbone + random M3 heads
(dense + sparse + ColBERT), into Qdrant local mode and Qdrant Edge (embedded stores: the driver
is the single writer). The single process is ``VectorIndex.add_texts`` (chunks of 256
length-sorted rows, writes on a background thread: the best single-process path) with the same
encoder defaults and all cores; the Ray runs are ``bge_ray.ingest`` on a local Ray
(``num_cpus`` = cores), timed from the call to the last row stored (actor start-up and model
loading included; Ray's own start is not).

Besides wall time it reports CPU seconds per document of every process of the job (the
benchmark process, and for Ray its cluster: GCS, raylet, workers), which a shared machine
disturbs far less than wall time, and the steady rate (rows after the first block / time after
the first block), which leaves out the fixed start-up cost.

    python benchmarks/bench_ray.py [--docs 5183] [--stores qdrant,edge] [--workers 1,2] [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from common import minilm_m3_checkpoint, print_table, scifact_docs, write_json


class _TreeCPU:
    """CPU seconds of this process and its descendants (Ray's GCS, raylet and workers), sampled
    every 0.2 s on a thread: an actor's process exits at the end of the job, so its last sample
    stands for it (at most 0.2 s of its CPU is missed)."""

    def __init__(self) -> None:
        import psutil

        self._me = psutil.Process()
        self._seen: dict[tuple[int, float], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        import psutil

        for proc in [self._me, *self._me.children(recursive=True)]:
            try:
                t = proc.cpu_times()
                key = (proc.pid, proc.create_time())
            except psutil.Error:
                continue
            self._seen[key] = t.user + t.system

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            self._sample()

    def __enter__(self) -> _TreeCPU:
        self._sample()
        self._start = dict(self._seen)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def seconds(self) -> float:
        return sum(v - self._start.get(k, 0.0) for k, v in self._seen.items())


def _measure(fn: Callable[[], Any]) -> tuple[float, float]:
    with _TreeCPU() as cpu:
        start = time.perf_counter()
        fn()
        seconds = time.perf_counter() - start
    return seconds, cpu.seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--docs", type=int, default=5183)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--chunk-sizes", default="256", help="rows per worker call (bge_ray chunk_size), a list")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--stores", default="qdrant,edge")
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
    n = len(texts)
    tmp = tempfile.mkdtemp()
    cores = os.cpu_count() or 1
    results: dict[str, dict[str, Any]] = {}
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]

    # Single process: the model loads before the clock starts (as a running service would).
    encoder = load_encoder(ckpt, device="cpu", batch_size=args.batch_size)
    encoder.encode_outputs(texts[:8], query=False, dense=True, sparse=True, colbert=True)
    for store in stores:
        index = VectorIndex(
            open_store(f"{store}:{tmp}/single-{store}", collection="bench"),
            encoder,
            chunk_size=256,
            write_batch_size=args.batch_size,
        )
        seconds, cpu = _measure(lambda index=index: index.add_texts(texts, ids=ids))
        assert index.count() == n
        index.close()
        results[f"{store}|single process"] = {
            "store": store,
            "system": f"single process ({cores} torch threads)",
            "seconds": seconds,
            "docs_per_s": n / seconds,
            "first_row_s": None,
            "steady_docs_per_s": n / seconds,
            "cpu_ms_per_doc": 1000 * cpu / n,
            "steady_cpu_ms_per_doc": 1000 * cpu / n,
        }
        print(
            f"{store} single process: {seconds:.1f}s, {n / seconds:.1f} docs/s, {1000 * cpu / n:.1f} CPU ms/doc",
            flush=True,
        )

    ray.init(num_cpus=cores, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    try:
        ds = ray.data.from_items([{"text": t, "id": i} for t, i in zip(texts, ids)]).materialize()
        for store in stores:
            for workers, chunk in itertools.product(
                [int(w) for w in args.workers.split(",")], [int(c) for c in args.chunk_sizes.split(",")]
            ):
                seen: list[tuple[float, int, float]] = []
                cpu = _TreeCPU()

                def progress(p: bge_ray.IngestProgress, seen: Any = seen, cpu: _TreeCPU = cpu) -> None:
                    if not seen:
                        cpu._sample()
                        seen.append((time.perf_counter(), p.rows, cpu.seconds))

                with cpu:
                    start = time.perf_counter()
                    bge_ray.ingest(
                        ds,
                        f"{store}:{tmp}/ray{workers}-{chunk}-{store}",
                        model=ckpt,
                        collection="bench",
                        workers=workers,
                        torch_threads=1,
                        batch_size=args.batch_size,
                        chunk_size=chunk,
                        on_progress=progress,
                    )
                    end = time.perf_counter()
                seconds = end - start
                first_t, first_rows, first_cpu = seen[0]
                steady = (n - first_rows) / (end - first_t) if end > first_t else float("nan")
                steady_cpu = (cpu.seconds - first_cpu) / (n - first_rows) if n > first_rows else float("nan")
                results[f"{store}|ray{workers}|{chunk}"] = {
                    "store": store,
                    "system": f"Ray, {workers} worker(s) (1 torch thread each), chunk {chunk}",
                    "seconds": seconds,
                    "docs_per_s": n / seconds,
                    "first_row_s": first_t - start,
                    "steady_docs_per_s": steady,
                    "cpu_ms_per_doc": 1000 * cpu.seconds / n,
                    "steady_cpu_ms_per_doc": 1000 * steady_cpu,
                }
                print(
                    f"{store} Ray {workers} workers, chunk {chunk}: {seconds:.1f}s, {n / seconds:.1f} docs/s, first block after "
                    f"{first_t - start:.1f}s, steady {steady:.1f} docs/s, {1000 * cpu.seconds / n:.1f} CPU ms/doc "
                    f"(after the first block {1000 * steady_cpu:.1f})",
                    flush=True,
                )
    finally:
        ray.shutdown()

    rows = []
    for r in results.values():
        base = results[f"{r['store']}|single process"]
        rows.append(
            [
                r["store"],
                r["system"],
                f"{r['seconds']:.1f}",
                f"{r['docs_per_s']:.1f}",
                "-" if r["first_row_s"] is None else f"{r['first_row_s']:.1f}",
                f"{r['docs_per_s'] / base['docs_per_s']:.2f}",
                f"{r['steady_docs_per_s'] / base['docs_per_s']:.2f}",
                f"{r['cpu_ms_per_doc']:.1f}",
                f"{r['steady_cpu_ms_per_doc']:.1f}",
                f"{base['cpu_ms_per_doc'] / r['cpu_ms_per_doc']:.2f}",
            ]
        )
    print_table(
        [
            "store",
            "system",
            "seconds",
            "docs/s",
            "first block s",
            "x single (wall)",
            "x single (steady)",
            "CPU ms/doc",
            "steady CPU ms/doc",
            "x single (CPU)",
        ],
        rows,
    )
    if args.json:
        write_json(
            args.json,
            {
                "docs": n,
                "batch_size": args.batch_size,
                "chunk_sizes": args.chunk_sizes,
                "cores": cores,
                "load_before": os.getloadavg(),
                "results": results,
            },
        )


if __name__ == "__main__":
    main()
