"""Exactly once under failure: a worker killed mid-job, the driver killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ray_helpers import CountingModel, encoded_count, rows
from store_dump import assert_same, qdrant_rows

HERE = Path(__file__).resolve().parent


def _worker_pids() -> list[int]:
    import psutil

    out = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "MapBatches(EncodeWorker)" in cmd:
            out.append(int(proc.info["pid"]))
    return out


@pytest.mark.slow
def test_minilm_worker_killed_mid_job_still_equals_single_process(
    ray_cluster: Any, minilm_path: Path, tmp_path: Path
) -> None:
    pytest.importorskip("psutil")
    import bge_ray
    from bge_core import DenseEncoder

    data = rows(96, seed=1)
    killed: list[int] = []

    def kill_one_worker(progress: Any) -> None:
        if not killed:
            pids = _worker_pids()
            assert pids, "no encoding worker process found"
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    result = bge_ray.ingest(
        ray_cluster.data.from_items(data),
        f"qdrant:{tmp_path / 'ray'}",
        model=str(minilm_path),
        workers=2,
        batch_size=4,
        chunk_size=4,  # many small blocks, so the kill lands mid-job
        dtype="float32",
        on_progress=kill_one_worker,
        max_restarts=2,
        max_task_retries=2,
    )
    assert killed
    # Every row reached the driver once and is stored once.
    assert (result.rows, result.written, result.skipped, result.stored, result.failed) == (96, 96, 0, 96, [])
    assert result.settings["kind"] == "dense" and result.settings["outputs"] == ["dense"]

    from bge_core.cli.stores import open_store
    from bge_core.index import VectorIndex

    probe = open_store(f"qdrant:{tmp_path / 'single'}", collection="bge")
    try:
        VectorIndex(probe, DenseEncoder(minilm_path, device="cpu", dtype="float32")).add_texts(
            [r["text"] for r in data], [{"topic": r["topic"], "n": r["n"]} for r in data], [r["id"] for r in data]
        )
    finally:
        probe.close()
    assert_same(qdrant_rows(tmp_path / "ray", "bge"), qdrant_rows(tmp_path / "single", "bge"))


_DRIVER = """
import logging, sys
import ray
import bge_ray
from ray_helpers import rows
ray.init(address=sys.argv[1], logging_level=logging.WARNING, log_to_driver=False)
def progress(p):
    print(f"WRITTEN {p.written}", flush=True)
bge_ray.ingest(ray.data.from_items(rows(int(sys.argv[4]), seed=2)), sys.argv[2], model=sys.argv[3], workers=2,
               batch_size=4, chunk_size=4, dtype="float32", on_progress=progress)
print("DONE", flush=True)
"""


def test_driver_sigkill_then_rerun_encodes_only_the_missing_rows(
    ray_cluster: Any, tiny_m3_path: Path, tmp_path: Path
) -> None:
    import bge_ray
    from bge_core.cli.stores import open_store

    n = 160
    uri = f"qdrant:{tmp_path / 'index'}"
    script = tmp_path / "driver.py"
    script.write_text(_DRIVER, encoding="utf-8")
    address = ray_cluster.get_runtime_context().gcs_address
    env = dict(os.environ)
    proc = subprocess.Popen(
        [sys.executable, str(script), address, uri, str(tiny_m3_path), str(n)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=str(HERE),
    )
    written = 0
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("DONE"):
            pytest.fail("the driver finished before it could be killed")
        if line.startswith("WRITTEN") and int(line.split()[1]) >= 12:
            written = int(line.split()[1])
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert written and proc.returncode == -signal.SIGKILL

    probe = open_store(uri, collection="bge")
    try:
        before = probe.count()
    finally:
        probe.close()
    assert written <= before < n

    counts = tmp_path / "counts"
    counts.mkdir()
    result = bge_ray.ingest(
        ray_cluster.data.from_items(rows(n, seed=2)),
        uri,
        model=CountingModel(str(tiny_m3_path), str(counts)),
        workers=2,
        batch_size=4,
        chunk_size=4,  # many small blocks, so the kill lands mid-job
        dtype="float32",
    )
    # Only the rows the killed run had not stored are encoded (counted in the workers' encoder).
    assert encoded_count(counts) == n - before
    assert (result.encoded, result.skipped, result.stored, result.rows) == (n - before, before, n, n)
