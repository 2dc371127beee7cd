"""``bge index`` / ``bge search`` on ``--store edge:PATH`` in-process (the ``edge`` entry point is
registered test-locally: the shared dev venv predates it)."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pytest


@pytest.fixture
def edge_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    from bge_core.cli import stores
    from bge_core.cli.main import main

    eps = [ep for ep in stores._entry_points() if ep.name != "edge"]
    eps.append(importlib.metadata.EntryPoint("edge", "bge_qdrant.edge_uri:open_index", stores.ENTRY_POINT_GROUP))
    monkeypatch.setattr(stores, "_entry_points", lambda: eps)

    def run(*argv: object) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        cap = capsys.readouterr()
        return code, cap.out, cap.err

    return run


def test_index_search_reindex_on_edge(edge_cli, tmp_path: Path, tiny_m3_path: Path) -> None:  # type: ignore[no-untyped-def]
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("the cat is on the mat", encoding="utf-8")
    (docs / "b.txt").write_text("a new drug treatment for heart disease", encoding="utf-8")
    (docs / "c.txt").write_text("the sun and the moon and the star", encoding="utf-8")
    uri = f"edge:{tmp_path / 'idx'}"
    code, out, err = edge_cli(
        "index", docs, "--store", uri, "--model", tiny_m3_path, "--max-tokens", "64", "--no-progress"
    )
    assert code == 0, err
    assert "3 documents" in out and "3 added, 0 updated, 0 unchanged, 0 removed" in out
    for mode in ("dense", "sparse", "hybrid", "colbert"):
        code, out, err = edge_cli(
            "search", "the cat is on the mat", "--store", uri, "--mode", mode, "-k", "2", "--json"
        )
        assert code == 0, err
        rows = [json.loads(line) for line in out.splitlines()]
        assert rows[0]["doc_id"] == "docs/a.txt" or rows[0]["text"] == "the cat is on the mat", (mode, rows)
    code, out, err = edge_cli("index", docs, "--store", uri, "--no-progress")
    assert code == 0 and "0 added, 0 updated, 3 unchanged, 0 removed" in out, out + err
    # a folder holding something else is refused with one error line
    code, out, err = edge_cli("index", docs, "--store", f"edge:{docs}", "--model", tiny_m3_path, "--no-progress")
    assert code != 0 and "holds something else than a bge Edge index" in err
    assert sorted(p.name for p in docs.iterdir()) == ["a.txt", "b.txt", "c.txt"]
