"""``bge drop`` and ``bge index --recreate`` (issue 16 item 4) on every store URI form:
edge:, qdrant:, milvus: (local), qdrant+http / milvus+http (the server path, over an in-process
client standing in for the server), and a Milvus index left half-created by a kill."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Runner

LOCAL = {
    "edge": lambda tmp: f"edge:{tmp / 'edge'}",
    "qdrant": lambda tmp: f"qdrant:{tmp / 'qdrant'}",
    "milvus": lambda tmp: f"milvus:{tmp / 'milvus.db'}",
}


class _Tty(io.StringIO):
    """A stdin that claims to be a terminal and answers ``text``."""

    def isatty(self) -> bool:
        return True


def _index(bge: Runner, src: Path, uri: str, model: Path, *extra: str) -> None:
    res = bge("index", src, "--store", uri, "--model", model, "--max-tokens", "64", *extra)
    assert res.code == 0, res.err


def _count(bge: Runner, uri: str, *extra: str) -> int:
    res = bge("search", "the cat is on the mat", "--store", uri, "-k", "100", "--mode", "dense", "--json", *extra)
    assert res.code == 0, res.err
    return len(res.out.splitlines())


@pytest.mark.parametrize("kind", list(LOCAL))
def test_drop_local_store(
    kind: str, bge: Runner, docs_dir: Path, tiny_m3_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = LOCAL[kind](tmp_path)
    _index(bge, docs_dir, uri, tiny_m3_path)
    _index(bge, docs_dir, uri, tiny_m3_path, "--collection", "keep")
    n = _count(bge, uri)
    assert n > 0

    # No terminal and no --yes: refused as a usage error, nothing deleted.
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    res = bge("drop", "--store", uri)
    assert res.code == 2 and "pass --yes" in res.error_lines()[0]
    assert _count(bge, uri) == n
    # A terminal answering no: nothing deleted.
    monkeypatch.setattr("sys.stdin", _Tty("n\n"))
    res = bge("drop", "--store", uri)
    assert res.code == 1 and f"delete collection 'bge' of {uri} ({n} rows, model" in res.err
    assert "nothing deleted" in res.err and _count(bge, uri) == n
    # ... and yes.
    monkeypatch.setattr("sys.stdin", _Tty("y\n"))
    res = bge("drop", "--store", uri)
    assert res.code == 0, res.err
    assert res.out.strip() == f"dropped collection 'bge' of {uri} ({n} rows, model {tiny_m3_path.resolve()})"

    gone = bge("search", "cat", "--store", uri)
    assert gone.code == 1 and "holds no bge index" in gone.error_lines()[0]
    again = bge("drop", "--store", uri, "--yes")
    assert again.code == 1 and again.error_lines() == [
        f"bge: error: no index at {uri} (collection 'bge'): nothing to drop (check --store and --collection)"
    ]
    assert _count(bge, uri, "--collection", "keep") == n  # the other collection is untouched
    # The same store takes a new index in the dropped collection.
    _index(bge, docs_dir, uri, tiny_m3_path)
    assert _count(bge, uri) == n


@pytest.mark.parametrize("kind", list(LOCAL))
def test_drop_never_creates_a_store(kind: str, bge: Runner, tmp_path: Path) -> None:
    uri = LOCAL[kind](tmp_path)
    path = uri.split(":", 1)[1]
    res = bge("drop", "--store", uri, "--yes")
    assert res.code == 1 and res.error_lines() == [f"bge: error: no index at {path}: nothing to drop (check --store)"]
    assert list(tmp_path.iterdir()) == []  # no folder, no file, no lock file
    # An existing folder that holds no store of that kind is not written to either.
    Path(path).mkdir()
    (Path(path) / "notes.txt").write_text("mine", encoding="utf-8")
    res = bge("drop", "--store", uri, "--yes")
    assert res.code == 1 and "no index at" in res.error_lines()[0]
    assert [p.name for p in Path(path).iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("kind", ["qdrant+http", "milvus+http"])
def test_drop_on_a_server(
    kind: str,
    bge: Runner,
    docs_dir: Path,
    tiny_m3_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    """Server URIs take the server path (no local existence check; the collection is looked up),
    on one in-process client that stands in for the server."""
    import bge_core.cli.commands as commands
    import bge_core.cli.drop_command as drop_command

    if kind == "qdrant+http":
        from qdrant_client import QdrantClient

        from bge_qdrant.batch import BatchQdrantStore

        client: Any = QdrantClient(":memory:")
        request.addfinalizer(client.close)

        def opener(uri: str, *, collection: str) -> Any:
            assert uri == "qdrant+http://db.example:6333"
            return BatchQdrantStore(client, collection)
    else:
        from bge_milvus import MilvusStore

        client = request.getfixturevalue("milvus_client")(tmp_path / "server.db")

        def opener(uri: str, *, collection: str) -> Any:
            assert uri == "milvus+http://db.example:19530"
            return MilvusStore(client, collection)

    monkeypatch.setattr(commands, "open_store", opener)
    monkeypatch.setattr(drop_command, "open_store", opener)
    uri = "qdrant+http://db.example:6333" if kind == "qdrant+http" else "milvus+http://db.example:19530"
    _index(bge, docs_dir, uri, tiny_m3_path)
    n = _count(bge, uri)
    res = bge("drop", "--store", uri, "--yes")
    assert res.code == 0 and res.out.startswith(f"dropped collection 'bge' of {uri} ({n} rows"), res.err
    if kind == "milvus+http":
        assert client.list_collections() == []  # the ColBERT companion went too
    else:
        assert not client.collection_exists("bge")
    res = bge("drop", "--store", uri, "--yes")
    assert res.code == 1 and "no index at " + uri in res.error_lines()[0]


@pytest.mark.parametrize("uri", ["qdrant+http://127.0.0.1:9", "milvus+http://127.0.0.1:9"])
def test_drop_unreachable_server_is_one_line(bge: Runner, uri: str) -> None:
    res = bge("drop", "--store", uri, "--yes")
    assert res.code == 1 and len(res.error_lines()) == 1 and "cannot reach" in res.error_lines()[0]


@pytest.mark.parametrize("left", ["main", "companion"])
def test_drop_a_half_created_milvus_index(
    left: str, bge: Runner, docs_dir: Path, tiny_m3_path: Path, tmp_path: Path, milvus_client: Callable[[Path], Any]
) -> None:
    """A kill between creating the ColBERT companion and the main collection (or an older
    version's main collection without its companion) is droppable, without a question: there
    are no rows and no settings to lose."""
    from store_checks import release_milvus

    from bge_core.index import CollectionSpec
    from bge_milvus import MilvusStore

    db = tmp_path / "m.db"
    uri = f"milvus:{db}"
    _index(bge, docs_dir, uri, tiny_m3_path)
    client = milvus_client(db)
    client.drop_collection("bge")
    client.drop_collection("bge_colbert")
    # What a kill leaves: the companion alone (it is created first), or an older version's
    # empty main collection without its companion.
    MilvusStore(client, "bge").ensure(CollectionSpec(8, True, None if left == "main" else 8))
    if left == "companion":
        client.drop_collection("bge")
    assert client.list_collections() == (["bge"] if left == "main" else ["bge_colbert"])
    client.close()
    release_milvus(db)
    res = bge("drop", "--store", uri)  # no --yes and no terminal: nothing to lose, no question
    assert res.code == 0 and res.out.strip() == f"dropped collection 'bge' of {uri} (empty)", res.err
    client = milvus_client(db)
    assert client.list_collections() == []
    client.close()
    _index(bge, docs_dir, uri, tiny_m3_path)  # and it indexes again
    assert _count(bge, uri) > 0


@pytest.mark.parametrize("kind", list(LOCAL))
def test_index_recreate(kind: str, bge: Runner, docs_dir: Path, tiny_m3_path: Path, tmp_path: Path) -> None:
    uri = LOCAL[kind](tmp_path)
    _index(bge, docs_dir, uri, tiny_m3_path, "--no-colbert")
    n = _count(bge, uri)
    # --recreate may change what an index refuses to change (here --max-tokens).
    res = bge("index", docs_dir, "--store", uri, "--recreate", "--max-tokens", "32")
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    assert lines[0] == f"dropped the index {uri} (collection 'bge') ({n} chunks); indexing anew"
    assert "0 unchanged, 0 removed" in lines[1] and "at most 32 tokens each" in lines[1]
    assert _count(bge, uri) > n  # smaller chunks: more of them, the old ones gone
    # The model and the --no-colbert choice were kept from the dropped index.
    colbert = bge("search", "cat", "--store", uri, "--mode", "colbert")
    assert colbert.code == 1 and "--no-colbert" in colbert.error_lines()[0]
    # A model that cannot load fails before anything is dropped.
    bad = bge("index", docs_dir, "--store", uri, "--recreate", "--model", tmp_path / "no-such-model")
    assert bad.code == 1
    assert _count(bge, uri) > n


def test_recreate_is_refused_with_ray(bge: Runner, docs_dir: Path, tmp_path: Path) -> None:
    res = bge("index", docs_dir, "--store", f"edge:{tmp_path / 'e'}", "--recreate", "--ray")
    assert res.code == 1 and "bge drop first" in res.error_lines()[0]
    assert not (tmp_path / "e").exists()
