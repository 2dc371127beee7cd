"""examples/llama_index_rag.py runs offline (tiny checkpoints, MockLLM) and prints its results."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "llama_index_rag.py"


def test_example_runs_offline(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TMPDIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, str(EXAMPLE)], check=False, capture_output=True, text=True, timeout=300, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines[0] == "query: drug treatment for heart disease patients"
    first = lines.index("qdrant-vector-store hybrid + colbert + rerank:")
    second = lines.index("bge hybrid retriever (colbert + rerank):")
    assert second - first - 1 == 3  # two reranked nodes and the answer
    assert sum(1 for line in lines[second + 1 :] if "rerank=" in line and "colbert=" in line) == 3
    assert sum(line.startswith("answer: 'text") for line in lines) == 2
    assert not list(tmp_path.iterdir())  # the tiny checkpoints were cleaned up
