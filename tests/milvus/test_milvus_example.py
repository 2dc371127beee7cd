"""The example script runs end to end on a tiny checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_example_runs() -> None:
    env = {k: v for k, v in os.environ.items() if k != "BGE_M3_MODEL"}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in [str(ROOT), str(ROOT / "integrations"), env.get("PYTHONPATH", "")] if p
    )
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "milvus_hybrid.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    assert "built a tiny random checkpoint" in text and "indexed 6 documents; count=6" in text
    for label in (
        "mode=dense",
        "mode=sparse",
        "mode=hybrid fusion=rrf",
        "fusion=dbsf",
        "fusion=weighted",
        "mode=colbert",
    ):
        assert label in text
    filtered = text.split("filter={'topic': 'search'}")[1]
    assert "'topic': 'search'" in filtered and "'medicine'" not in filtered
    assert text.count("  0.") + text.count("  1.") >= 15
