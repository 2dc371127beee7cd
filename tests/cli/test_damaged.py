"""Damaged local stores and unreadable model files (issue 16 item 9): each is reported with the
file it concerns, and a damaged collection can be dropped with ``bge drop`` and indexed again.

Tests run as root here, and root reads a ``chmod 000`` file anyway: the unreadable-weights test
runs ``bge`` in a subprocess without the capabilities that let root ignore file permissions
(``setpriv --inh-caps=-dac_override,-dac_read_search``), or with a plain ``chmod 000`` when the
tests do not run as root."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Runner

_NO_DAC = ["--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search"]


def _index(bge: Runner, src: Path, uri: str, model: Path) -> None:
    res = bge("index", src, "--store", uri, "--model", model, "--max-tokens", "64")
    assert res.code == 0, res.err


def _hits(bge: Runner, uri: str) -> int:
    res = bge("search", "the cat is on the mat", "--store", uri, "-k", "100", "--mode", "dense", "--json")
    assert res.code == 0, res.err
    return len(res.out.splitlines())


def test_unreadable_weights_are_named(tiny_m3_path: Path, docs_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "m3"
    shutil.copytree(tiny_m3_path, model)
    weights = model / "model.safetensors"
    weights.chmod(0)
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot make a file unreadable to this test")
        prefix = ["setpriv", *_NO_DAC]
    else:
        prefix = []
    store = tmp_path / "idx"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "HF_HUB_OFFLINE": "1"}
    cmd = [*prefix, sys.executable, "-m", "bge_core.cli", "index", str(docs_dir), "--store", f"edge:{store}"]
    res = subprocess.run([*cmd, "--model", str(model)], capture_output=True, text=True, env=env, timeout=120)
    if prefix and "Operation not permitted" in res.stderr and "bge" not in res.stderr:
        pytest.skip(f"setpriv cannot drop capabilities here: {res.stderr.strip()}")
    assert res.returncode == 1, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("bge: error")]
    assert errors == [
        f"bge: error: model file {weights} is unreadable (Permission denied); make it readable (chmod a+r) "
        "or point to a readable copy of the model"
    ]
    assert not store.exists()


def test_check_readable_names_the_file(tiny_m3_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same check in-process (the Python API), with ``open`` refusing the weights file."""
    import builtins

    import bge_core.loading as loading
    from bge_core.errors import ModelFilesError

    real_open = builtins.open

    def refusing(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(file).endswith("model.safetensors"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(loading, "open", refusing, raising=False)
    with pytest.raises(ModelFilesError, match=r"model\.safetensors is unreadable \(Permission denied\)"):
        loading.resolve_model_dir(tiny_m3_path)


def _refused_then_dropped(bge: Runner, uri: str, damaged: str, commands: list[tuple[Any, ...]]) -> None:
    """Each command is refused with the one 'damaged' line (never "no results"); then
    ``bge drop --yes`` deletes the damaged collection."""
    for argv in commands:
        res = bge(*argv, "--store", uri)
        assert res.code == 1 and res.error_lines() == [f"bge: error: {damaged}"], res.err
        assert "no results" not in res.out
    res = bge("drop", "--store", uri, "--yes")
    assert res.code == 0 and res.out.strip() == f"dropped collection 'bge' of {uri} (damaged)", res.err


@pytest.mark.parametrize("damage", ["truncated", "emptied", "deleted"])
def test_damaged_qdrant_storage(damage: str, bge: Runner, docs_dir: Path, tiny_m3_path: Path, tmp_path: Path) -> None:
    folder = tmp_path / "q"
    uri = f"qdrant:{folder}"
    _index(bge, docs_dir, uri, tiny_m3_path)
    n = _hits(bge, uri)
    storage = folder / "collection" / "bge" / "storage.sqlite"
    if damage == "truncated":
        with open(storage, "r+b") as fh:
            fh.truncate(storage.stat().st_size // 2)
        why = f"{storage} is not a readable SQLite database (database disk image is malformed)"
    elif damage == "emptied":
        storage.write_bytes(b"")
        why = f"{storage} is empty (the collection's points are lost)"
    else:
        storage.unlink()
        why = f"{storage} is missing (the collection's points are lost)"
    damaged = (
        f"the Qdrant index at {folder} is damaged: {why}; restore the folder from a copy, or drop the "
        f"collection (bge drop --store qdrant:{folder} --collection bge) and index again"
    )
    _refused_then_dropped(bge, uri, damaged, [("search", "cat"), ("index", docs_dir)])
    _index(bge, docs_dir, uri, tiny_m3_path)
    assert _hits(bge, uri) == n


@pytest.mark.parametrize("damage", ["emptied", "garbage", "deleted"])
@pytest.mark.parametrize("which", ["bge", "bge_colbert"])
def test_damaged_milvus_manifest(
    damage: str, which: str, bge: Runner, docs_dir: Path, tiny_m3_path: Path, tmp_path: Path
) -> None:
    pytest.importorskip("milvus_lite")
    from store_checks import release_milvus

    db = tmp_path / "m.db"
    uri = f"milvus:{db}"
    _index(bge, docs_dir, uri, tiny_m3_path)
    n = _hits(bge, uri)
    release_milvus(db)
    manifest = db / "collections" / which / "manifest.json"
    if damage == "emptied":
        manifest.write_bytes(b"")
        why = f"{manifest} is empty"
    elif damage == "garbage":
        manifest.write_text('{"version": 3, "partitions": [', encoding="utf-8")
        why = f"{manifest} is not valid JSON"
    else:
        manifest.unlink()
        why = f"{manifest} is missing"
    damaged = (
        f"the Milvus Lite database {str(db)!r} is damaged: {why} (Milvus Lite would fall back to an older "
        f"manifest and silently lose rows); restore the database from a copy, or drop the collection "
        f"(bge drop --store milvus:{db} --collection bge) and index again"
    )
    _refused_then_dropped(bge, uri, damaged, [("search", "cat")])
    _index(bge, docs_dir, uri, tiny_m3_path)
    assert _hits(bge, uri) == n
    release_milvus(db)
