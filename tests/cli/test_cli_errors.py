"""Every user error gives one ``bge: error`` line on stderr, no traceback and a non-zero exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.cli.conftest import Result, Runner


def one_error(res: Result, *needles: str) -> str:
    assert res.code == 1, (res.code, res.err)
    lines = res.error_lines()
    assert len(lines) == 1, res.err
    assert "Traceback" not in res.err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_unknown_and_malformed_store(bge: Runner, docs_dir: Path) -> None:
    one_error(bge("index", docs_dir, "--store", "redis://localhost:6379"), "unknown store 'redis'", "qdrant")
    one_error(bge("search", "cat", "--store", "./just/a/path"), "names no store")
    one_error(bge("search", "cat", "--store", "milvus:./no-suffix"), ".db")


@pytest.mark.parametrize("uri", ["qdrant+http://127.0.0.1:9", "milvus+http://127.0.0.1:9"])
def test_unreachable_server(bge: Runner, uri: str) -> None:
    start = time.monotonic()
    one_error(bge("search", "cat", "--store", uri), "cannot reach")
    assert time.monotonic() - start < 30


def test_sources_without_readable_files(bge: Runner, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "x.pdf").write_bytes(b"%PDF-1.4")
    one_error(bge("index", tmp_path / "empty", "--store", f"qdrant:{tmp_path / 'q'}"), "no .txt, .md or .jsonl files")
    one_error(bge("index", tmp_path / "missing", "--store", f"qdrant:{tmp_path / 'q'}"), "no such file or folder")
    assert not (tmp_path / "q").exists()  # checked before the store is opened


def test_bad_lines_and_encodings_are_skipped_with_warnings(bge: Runner, tmp_path: Path, tiny_m3_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "rows.jsonl").write_text('{"text": "the cat"}\n{"text": broken\n{"text": "the dog"}\n', encoding="utf-8")
    (src / "latin.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (src / "ok.md").write_text("the sun and the moon", encoding="utf-8")
    uri = f"qdrant:{tmp_path / 'q'}"
    res = bge("index", src, "--store", uri, "--model", tiny_m3_path)
    assert res.code == 3 and "Traceback" not in res.err
    warnings = [line for line in res.err.splitlines() if line.startswith("bge: WARNING")]
    assert len(warnings) == 2
    assert f"{src / 'rows.jsonl'}:2: malformed JSON" in warnings[1]
    assert f"{src / 'latin.txt'}: not UTF-8" in warnings[0]
    assert "3 documents (3 chunks" in res.out  # the rest is indexed


def test_model_not_available_offline(
    bge: Runner, docs_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    uri = f"qdrant:{tmp_path / 'q'}"
    one_error(
        bge("index", docs_dir, "--store", uri, "--model", "BAAI/bge-small-en-v1.5"),
        "HF_HUB_OFFLINE",
        "bge-small-en-v1.5",
    )
    one_error(bge("index", docs_dir, "--store", uri, "--model", str(tmp_path / "no-such-model")), "does not exist")
    one_error(bge("index", docs_dir, "--store", uri, "--model", "BAAI/bge-reranker-base"), "is a reranker")


def test_search_before_index(bge: Runner, tmp_path: Path) -> None:
    one_error(bge("search", "cat", "--store", f"qdrant:{tmp_path / 'q'}"), "holds no bge index", "bge index SOURCE")


def test_usage_errors(bge: Runner, tmp_path: Path) -> None:
    uri = f"qdrant:{tmp_path / 'q'}"
    one_error(bge("search", "  ", "--store", uri), "query is empty")
    bad_filter = bge("search", "cat", "--store", uri, "--filter", "novalue")
    assert bad_filter.code == 2 and "KEY=VALUE" in bad_filter.err  # a bad argument (argparse's exit code)
    assert bge("search", "cat", "--mode", "fuzzy").code == 2  # argparse
    one_error(bge("eval", tmp_path, "--store", uri), "not a BEIR folder")


_HOLD = {
    "qdrant": "from qdrant_client import QdrantClient; c = QdrantClient(path={path!r})",
    "milvus": "from pymilvus import MilvusClient; c = MilvusClient({path!r})",
}


@pytest.mark.parametrize("kind", ["qdrant", "milvus"])
def test_locked_embedded_store(kind: str, bge: Runner, tmp_path: Path) -> None:
    path = str(tmp_path / ("q" if kind == "qdrant" else "m.db"))
    code = textwrap.dedent(
        f"""
        import sys, time
        {_HOLD[kind].format(path=path)}
        print("ready", flush=True)
        sys.stdin.read()
        """
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        one_error(bge("search", "cat", "--store", f"{kind}:{path}"), "in use by another process")
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)


def test_missing_model_fails_before_the_store_is_created(
    bge: Runner, docs_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    one_error(
        bge("index", docs_dir, "--store", f"milvus:{tmp_path / 'm.db'}", "--model", "BAAI/bge-m3"), "HF_HUB_OFFLINE"
    )
    assert not (tmp_path / "m.db").exists()
