"""``bge index`` killed with SIGKILL part-way and run again: the store ends up exactly as an
uninterrupted run's, and the re-run encodes only the chunks that were not stored."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.cli.conftest import Runner, words

N_DOCS = 300


def _points(path: Path) -> dict[str, list[float]]:
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(path))
    try:
        out: dict[str, list[float]] = {}
        offset = None
        while True:
            points, offset = client.scroll("bge", limit=256, offset=offset, with_payload=False, with_vectors=["dense"])
            for p in points:
                vec = p.vector["dense"] if isinstance(p.vector, dict) else p.vector
                out[str(p.id)] = list(vec)  # type: ignore[arg-type]
            if offset is None:
                return out
    finally:
        client.close()


def test_kill_and_resume_equals_uninterrupted_run(bge: Runner, tmp_path: Path, tiny_m3_path: Path) -> None:
    rng = random.Random(11)
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "docs.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"_id": f"doc{i}", "text": words(rng, 60)}) + "\n" for i in range(N_DOCS))
    common = ["index", str(src), "--model", str(tiny_m3_path), "--batch-size", "4", "--no-progress"]

    reference = tmp_path / "reference"
    res = bge(*common, "--store", f"qdrant:{reference}")
    assert res.code == 0, res.err

    resumed = tmp_path / "resumed"
    kill_after = rng.randint(5, 30)  # encoded batches before SIGKILL (seeded: a failure reproduces)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bge_core.cli", *common, "--store", f"qdrant:{resumed}", "-v"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.stderr is not None
    seen = 0
    for line in proc.stderr:
        if "encoded 4 chunks" in line:
            seen += 1
            if seen == kill_after:
                os.kill(proc.pid, signal.SIGKILL)
                break
    proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL, f"finished before the kill (after {seen} batches)"
    stored_before = len(_points(resumed))
    assert 0 < stored_before < N_DOCS, (kill_after, stored_before)

    res = bge(*common, "--store", f"qdrant:{resumed}")
    assert res.code == 0, res.err
    match = re.search(r"(\d+) added, 0 updated, (\d+) unchanged, 0 removed; the index holds (\d+) chunks", res.out)
    assert match is not None, res.out
    encoded, skipped, total = map(int, match.groups())
    assert (encoded, skipped, total) == (N_DOCS - stored_before, stored_before, N_DOCS)

    want, got = _points(reference), _points(resumed)
    assert set(got) == set(want) and len(got) == N_DOCS
    for pid in random.Random(0).sample(sorted(want), 25):
        np.testing.assert_allclose(got[pid], want[pid], atol=1e-5)
