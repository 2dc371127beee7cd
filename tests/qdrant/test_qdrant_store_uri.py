"""store_uri.open_index: schemes, one-line errors, the lock held by another process, the
API key kept out of errors, logs and reprs; and the example script."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient

from bge_core.errors import StoreError
from bge_qdrant import QdrantIndex
from bge_qdrant.store_uri import API_KEY_ENV, open_index, open_store

REPO = Path(__file__).resolve().parents[2]
SECRET = "sk-test-SECRET-0123456789"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    extra = [str(REPO), str(REPO / "integrations")]
    env["PYTHONPATH"] = os.pathsep.join(extra + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def test_entry_point_is_registered() -> None:
    eps = {ep.name: ep for ep in entry_points(group="bge.stores")}
    assert eps["qdrant"].value == "bge_qdrant.store_uri:open_store"
    assert eps["qdrant"].load() is open_store


def test_local_path_uri_and_close_releases_the_folder(m3: Any, tmp_path: Path) -> None:
    uri = f"qdrant:{tmp_path / 'store'}"
    index = open_index(uri, encoder=m3, collection="docs", colbert=False)
    assert isinstance(index, QdrantIndex) and index.store.owns_client
    index.add_texts(["the cat", "the dog"])
    index.write_settings({"model": "tiny"})
    index.close()
    index.close()  # idempotent
    again = open_index(uri, encoder=m3, collection="docs", colbert=False)  # the lock was released
    try:
        assert again.count() == 2 and again.read_settings() == {"model": "tiny"}
        assert again.search("the cat", 1, mode="dense")[0].text == "the cat"
    finally:
        again.close()
    memory = open_index("qdrant::memory:", encoder=m3, collection="docs")
    memory.add_texts(["the cat"])
    assert memory.count() == 1
    memory.close()


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("qdrant:", "no path"),
        ("qdrant://host:6333", r"qdrant\+http://"),
        ("qdrant+ftp://host", "unknown store URI scheme"),
        ("milvus:./x.db", "unknown store URI scheme"),
        ("no-scheme-here", "malformed"),
        ("qdrant+http://", "no host"),
        ("qdrant+http://host:notaport", "bad port"),
        ("qdrant+https://user:pw@host", API_KEY_ENV),
        ("qdrant+http://host:6333?api_key=x", "unexpected query"),
    ],
)
def test_malformed_uris(m3: Any, uri: str, message: str) -> None:
    with pytest.raises(StoreError, match=message) as err:
        open_index(uri, encoder=m3, collection="docs")
    assert "\n" not in str(err.value)
    assert "pw" not in str(err.value)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_is_one_line_and_keeps_the_key_secret(
    m3: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(API_KEY_ENV, SECRET)
    port = _free_port()
    start = time.monotonic()
    with (
        caplog.at_level(logging.DEBUG),
        pytest.raises(StoreError, match=f"cannot reach Qdrant at http://127.0.0.1:{port}") as err,
    ):
        open_index(f"qdrant+http://127.0.0.1:{port}", encoder=m3, collection="docs")
    assert time.monotonic() - start < 15
    text = str(err.value)
    assert "\n" not in text and SECRET not in text and SECRET not in repr(err.value)
    assert err.value.__cause__ is None and err.value.__context__ is None or SECRET not in str(err.value.__context__)
    assert SECRET not in caplog.text


def test_repr_has_no_api_key(m3: Any) -> None:
    client = QdrantClient(url="http://127.0.0.1:1", api_key=SECRET, check_compatibility=False)
    index = QdrantIndex(client, "docs", m3)
    assert SECRET not in repr(index) and SECRET not in repr(index.store)
    client.close()


def test_folder_locked_by_another_process(m3: Any, tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    holder = open_index(f"qdrant:{folder}", encoder=m3, collection="docs")
    try:
        code = (
            "import sys\n"
            "from bge_core.errors import StoreError\n"
            "from bge_qdrant.store_uri import open_index, open_store\n"
            "try:\n"
            "    open_index(sys.argv[1], encoder=None, collection='docs')\n"
            "except StoreError as exc:\n"
            "    print('STOREERROR', exc)\n"
            "else:\n"
            "    print('OPENED')\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, f"qdrant:{folder}"],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
            env=_env(),
        )
        assert out.returncode == 0, out.stderr
        line = out.stdout.strip()
        assert line.startswith("STOREERROR"), (line, out.stderr[-2000:])
        assert "is in use by another process; stop it or use another path" in line
        assert str(folder) in line and "\n" not in line
    finally:
        holder.close()
    # once released, it opens
    open_index(f"qdrant:{folder}", encoder=m3, collection="docs").close()


def test_example_script_runs(tiny_m3_path: Path) -> None:
    env = _env()
    env["BGE_M3_MODEL"] = str(tiny_m3_path)
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / "qdrant_hybrid.py")],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    assert "indexed 6 documents; count=6" in text
    for label in ("dense", "sparse", "hybrid/rrf", "hybrid/dbsf", "hybrid/weighted", "colbert"):
        assert f"== {label}\n" in text
    lines = text.splitlines()
    start = lines.index("== colbert")
    assert "colbert=" in lines[start + 1]
    flt = lines.index("== hybrid with filter topic=bio")
    assert all("'topic': 'bio'" in line for line in lines[flt + 1 : flt + 4])
