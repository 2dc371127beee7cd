"""Run inside a private network namespace (only loopback): a real Milvus standalone (PyPI
``milvus``), a local Ray, and ``bge_ray.ingest`` with 2 workers writing to the server in
parallel, compared with a single-process ingest into another collection. Prints one JSON line.

    unshare -n --map-root-user sh -c 'ip link set lo up && python milvus_server_job.py TINY_DENSE_DIR BASE_DIR'
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

import numpy as np


def main() -> None:
    model, base = sys.argv[1], sys.argv[2]
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from milvus import MilvusServer

    server = MilvusServer(wait_for_started=False)
    server.set_base_dir(base)
    server.listen_port = 19530
    t = time.perf_counter()
    server.start()
    server.wait_started(timeout=240_000)
    started = time.perf_counter() - t
    try:
        import ray
        from ray_helpers import rows

        import bge_ray
        from bge_core.cli.encoders import load_encoder
        from bge_core.cli.stores import open_store
        from bge_core.index import VectorIndex

        data = rows(64, seed=9)
        uri = "milvus+http://127.0.0.1:19530"
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
        # Twice: the second run must find every row stored and write nothing again.
        result, again = (
            bge_ray.ingest(
                ray.data.from_items(data),
                uri,
                model=model,
                collection="ray",
                workers=2,
                batch_size=8,
                chunk_size=8,
                dtype="float32",
            )
            for _ in range(2)
        )
        ray.shutdown()
        probe = open_store(uri, collection="single")
        VectorIndex(probe, load_encoder(model, device="cpu", dtype="float32", batch_size=8)).add_texts(
            [r["text"] for r in data], [{"topic": r["topic"], "n": r["n"]} for r in data], [r["id"] for r in data]
        )
        probe.close()
        from pymilvus import MilvusClient

        client = MilvusClient("http://127.0.0.1:19530")
        got = {
            r["id"]: np.asarray(r["dense"])
            for r in client.query("ray", filter='id != ""', output_fields=["id", "dense"], limit=1000)
        }
        want = {
            r["id"]: np.asarray(r["dense"])
            for r in client.query("single", filter='id != ""', output_fields=["id", "dense"], limit=1000)
        }
        cos = (
            min(float(got[k] @ want[k] / (np.linalg.norm(got[k]) * np.linalg.norm(want[k]))) for k in want)
            if set(got) == set(want)
            else -1.0
        )
        print(
            json.dumps(
                {
                    "server_start_s": started,
                    "rows": result.rows,
                    "written": result.written,
                    "stored": result.stored,
                    "rerun_encoded": again.encoded,
                    "rerun_skipped": again.skipped,
                    "same_ids": set(got) == set(want),
                    "min_cos": cos,
                }
            ),
            flush=True,
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
