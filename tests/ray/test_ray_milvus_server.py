"""Worker-side writes against a real Milvus standalone (PyPI ``milvus`` 2.3.x, dense only) on
loopback, inside a private network namespace (Milvus listens on all interfaces)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _can_unshare() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    return (
        subprocess.run(["unshare", "-n", "--map-root-user", "true"], capture_output=True, check=False).returncode == 0
    )


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_workers_write_to_a_milvus_server_in_parallel(tmp_path: Path) -> None:
    pytest.importorskip("milvus", reason="pip install 'milvus==2.3.5' (a Milvus standalone for this test)")
    if not _can_unshare():
        pytest.skip("needs `unshare -n` (a private network namespace) to run Milvus on loopback only")
    from bge_core.testing import build_tiny_m3

    model = build_tiny_m3(tmp_path / "tiny-dense", heads=False)  # Milvus 2.3: one dense vector field
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    cmd = f"ip link set lo up && exec {sys.executable} {HERE / 'milvus_server_job.py'} {model} {tmp_path / 'milvus'}"
    proc = subprocess.run(
        ["unshare", "-n", "--map-root-user", "sh", "-c", cmd],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=560,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    got = json.loads(lines[-1])
    assert (got["rows"], got["written"], got["stored"]) == (64, 64, 64)
    assert (got["rerun_encoded"], got["rerun_skipped"]) == (0, 64)
    assert got["same_ids"] and got["min_cos"] >= 0.999
