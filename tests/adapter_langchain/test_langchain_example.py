"""examples/langchain_rag.py runs offline end to end (tiny checkpoints, fake chat model)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_rag_example_runs() -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    # Run from source, whatever the state of the editable install.
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "integrations"), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / "langchain_rag.py"), "--top-n", "2", "-k", "4"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=str(REPO),
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    passages = [line for line in lines if line.startswith("PASSAGE ")]
    assert len(passages) == 2, out.stdout
    scores = [float(re.search(r"rerank=(-?[0-9.]+)", p).group(1)) for p in passages]  # type: ignore[union-attr]
    assert scores[0] >= scores[1]
    assert all("colbert=" in p and "dense=" in p and "sparse=" in p for p in passages)
    assert any(line.startswith("ANSWER: According to passage [1]") for line in lines)
    assert "QUERY: which drug treatment" in out.stdout
