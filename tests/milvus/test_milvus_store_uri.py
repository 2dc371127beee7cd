"""``open_index`` URIs, one-line errors, the file lock, token hygiene."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from store_checks import release_milvus as release

from bge_core.errors import StoreError
from bge_milvus import MilvusIndex
from bge_milvus.store_uri import open_index

ROOT = Path(__file__).resolve().parents[2]


def env() -> dict[str, str]:
    extra = [str(ROOT), str(ROOT / "integrations"), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in extra if p)}


def test_lite_uri_roundtrip(tmp_path: Path, m3: Any) -> None:
    path = tmp_path / "sub" / "idx.db"
    index = open_index(f"milvus:{path}", encoder=m3, collection="docs", show_progress=False)
    try:
        assert isinstance(index, MilvusIndex)
        index.add_texts(["the cat", "the dog"])
        index.write_settings({"model": "tiny"})
        assert index.count() == 2 and index.read_settings() == {"model": "tiny"}
        assert "idx.db" in repr(index)
    finally:
        index.close()
        index.close()  # idempotent
        release(path)


@pytest.mark.parametrize(
    "uri,needle",
    [
        ("milvus:", "must end in .db"),
        ("milvus:idx.sqlite", "must end in .db"),
        ("milvus://x.db", "milvus:PATH.db"),
        ("milvus+ftp://h:1", "unknown Milvus store URI"),
        ("qdrant:x", "unknown Milvus store URI"),
        ("milvus+http://", "malformed"),
        ("milvus+http://h:99999", "malformed"),
        ("milvus+http://user:hunter2@h:19530", "malformed"),
    ],
)
def test_bad_uris_are_one_line_errors(m3: Any, uri: str, needle: str) -> None:
    with pytest.raises(StoreError, match=needle) as err:
        open_index(uri, encoder=m3, collection="docs")
    assert "\n" not in str(err.value) and "hunter2" not in str(err.value)


def test_unreachable_server_is_quick_and_keeps_token_secret(m3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket
    import time

    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MILVUS_TOKEN", "root:s3cret-token")
    start = time.perf_counter()
    with pytest.raises(StoreError, match=f"cannot reach Milvus at http://127.0.0.1:{port}") as err:
        open_index(f"milvus+http://127.0.0.1:{port}", encoder=m3, collection="docs")
    assert time.perf_counter() - start < 15
    assert "s3cret" not in str(err.value) and "\n" not in str(err.value)


def test_file_in_use_by_another_process(tmp_path: Path, m3: Any) -> None:
    path = tmp_path / "locked.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from pymilvus import MilvusClient; c = MilvusClient({str(path)!r}); print('ready', flush=True); input()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env(),
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreError, match="is in use by another process; stop it or use another path") as err:
            open_index(f"milvus:{path}", encoder=m3, collection="docs")
        assert "\n" not in str(err.value)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    index = open_index(f"milvus:{path}", encoder=m3, collection="docs")  # free again
    try:
        assert index.count() == 0
    finally:
        index.close()
        release(path)


def test_entry_point_is_registered() -> None:
    from importlib.metadata import entry_points

    eps = {ep.name: ep.value for ep in entry_points(group="bge.stores")}
    assert eps.get("milvus") == "bge_milvus.store_uri:open_store"
    assert eps.get("edge") == "bge_qdrant.edge_uri:open_store"
