"""``examples/cli_quickstart.sh`` runs offline end to end (slow: it starts ``bge`` five times)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "cli_quickstart.sh"


@pytest.mark.slow
def test_cli_quickstart_script(tmp_path: Path, minilm_path: Path) -> None:
    if shutil.which("bge") is None:
        pytest.skip("the bge console script is not installed (pip install -e .)")
    res = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path / "work")],
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert res.returncode == 0, res.stderr
    assert "4 added, 0 updated, 0 unchanged, 0 removed" in res.stdout
    assert "0 added, 0 updated, 4 unchanged, 0 removed" in res.stdout
    table = res.stdout.split("== bge search\n")[1].splitlines()
    assert table[1].split()[2] == "faq-1#0"  # the heart question finds the heart FAQ
    assert '"doc_id": "faq-2"' in res.stdout
