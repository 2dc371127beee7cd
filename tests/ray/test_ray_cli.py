"""``bge index SOURCE --ray --workers 2`` into Milvus Lite equals a single-process ``bge index``."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from store_dump import assert_same, milvus_rows


def _docs(root: Path) -> Path:
    from bge_core.testing import TINY_WORDS

    rng = random.Random(3)
    src = root / "docs"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("the cat is on the mat", encoding="utf-8")
    (src / "sub" / "long.md").write_text(
        "# Heart study\n\n" + " ".join(rng.choice(TINY_WORDS) for _ in range(300)), encoding="utf-8"
    )
    lines = [
        {"_id": f"j{i}", "title": "t", "text": " ".join(rng.choice(TINY_WORDS) for _ in range(20)), "year": 2000 + i}
        for i in range(12)
    ]
    lines.append({"text": "no id row", "metadata": {"lab": "x"}})
    (src / "rows.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return src


def _bge(*argv: Any) -> tuple[int, str]:
    import contextlib
    import io

    from bge_core.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([str(a) for a in argv])
    return code, out.getvalue()


def test_cli_ray_into_milvus_lite_equals_single_process(ray_cluster: Any, tiny_m3_path: Path, tmp_path: Path) -> None:
    pytest.importorskip("pymilvus")
    src = _docs(tmp_path)
    common = ["--model", tiny_m3_path, "--max-tokens", "64", "--dtype", "float32", "--batch-size", "8", "--no-progress"]
    code, out = _bge("index", src, "--store", f"milvus:{tmp_path / 'ray.db'}", "--ray", "--workers", "2", *common)
    assert code == 0, out
    assert "on Ray (2 workers)" in out and "encoded" in out
    code, single_out = _bge("index", src, "--store", f"milvus:{tmp_path / 'single.db'}", *common)
    assert code == 0, single_out

    def chunks(text: str) -> str:
        return text.split("documents (", 1)[1].split(" chunks", 1)[0]

    assert chunks(out) == chunks(single_out)  # same number of chunks
    got, want = milvus_rows(tmp_path / "ray.db", "bge"), milvus_rows(tmp_path / "single.db", "bge")
    assert_same(got, want)
    assert any(v["colbert"] and v["colbert"] > 0 for v in got.values())

    from bge_core.cli.stores import open_store

    settings = []
    for name in ("ray.db", "single.db"):
        probe = open_store(f"milvus:{tmp_path / name}", collection="bge")
        try:
            settings.append(probe.read_settings())
        finally:
            probe.close()
    assert settings[0] == settings[1] and settings[0] is not None and settings[0]["max_tokens"] == 64

    # A re-run encodes nothing (every chunk is stored and unchanged).
    code, again = _bge("index", src, "--store", f"milvus:{tmp_path / 'ray.db'}", "--ray", "--workers", "2", *common)
    assert code == 0 and " 0 encoded" in again, again
