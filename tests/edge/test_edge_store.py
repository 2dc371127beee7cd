"""Edge store behaviour: persistence, deletes, re-ingest, settings, layout checks, the folder
lock, kill -9 during ingest, damaged or foreign folders, concurrency, the edge: URI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from edge_helpers import HashEncoder

from bge_core.errors import CollectionMismatchError, StoreError

HERE = Path(__file__).resolve().parent


def _texts(n: int, prefix: str = "doc") -> list[str]:
    return [f"{prefix} {i} about topic {i % 7} and word{i % 13}" for i in range(n)]


def _tree(path: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime_ns)} of every file under ``path``."""
    out = {}
    for p in sorted(path.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(path))] = (st.st_size, st.st_mtime_ns)
    return out


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), *sys.path])
    return env


def test_persists_across_reopen_with_settings(make_edge: Any, tmp_path: Path) -> None:
    enc = HashEncoder()
    index = make_edge(encoder=enc)
    ids = index.add_texts(_texts(50), [{"i": i} for i in range(50)])
    index.write_settings({"model": "hash", "max_tokens": 64})
    before = index.search("doc 3 about topic 3", 5, mode="hybrid")
    index.close()
    again = make_edge(encoder=enc)
    assert again.count() == 50
    assert again.read_settings() == {"model": "hash", "max_tokens": 64}
    assert [h.id for h in again.search("doc 3 about topic 3", 5, mode="hybrid")] == [h.id for h in before]
    assert [h.id for h in again.get(ids[:3])] == ids[:3]


def test_delete_and_reingest_encode_only_what_is_missing(make_edge: Any) -> None:
    enc = HashEncoder()
    index = make_edge(encoder=enc)
    texts = _texts(40)
    ids = index.add_texts(texts)
    index.delete(ids[:10] + ["not-a-uuid"])
    assert index.count() == 30
    assert all(h.id not in ids[:10] for h in index.search(texts[0], 40, mode="dense"))
    enc.encoded = 0
    assert index.add_texts(texts) == ids
    assert enc.encoded == 10 and index.count() == 40
    # changed metadata: re-written in place, not duplicated
    index.add_texts(texts[:5], [{"v": 2}] * 5)
    assert index.count() == 40 and index.get(ids[:1])[0].metadata == {"v": 2}


def test_other_layout_is_refused(make_edge: Any, tmp_path: Path) -> None:
    make_edge(encoder=HashEncoder(dim=16)).add_texts(["a b c"])
    other = make_edge(path=tmp_path / "edge", encoder=HashEncoder(dim=8))
    with pytest.raises(StoreError, match="in use by another process"):
        other.ensure_collection()  # same process, the first index still holds the folder


def test_other_layout_is_refused_after_close(make_edge: Any, tmp_path: Path) -> None:
    first = make_edge(encoder=HashEncoder(dim=16))
    first.add_texts(["a b c"])
    first.close()
    with pytest.raises(CollectionMismatchError, match="16 dims, the encoder makes 8"):
        make_edge(encoder=HashEncoder(dim=8)).add_texts(["x"])


def test_collections_live_side_by_side(make_edge: Any, tmp_path: Path) -> None:
    a = make_edge(encoder=HashEncoder(), collection_name="a")
    a.add_texts(_texts(5))
    a.close()
    b = make_edge(encoder=HashEncoder(dim=8), collection_name="b")
    b.add_texts(_texts(3))
    assert b.count() == 3
    b.close()
    assert make_edge(encoder=HashEncoder(), collection_name="a").count() == 5
    with pytest.raises(ValueError, match="collection_name"):
        make_edge(collection_name="../escape")


def test_read_settings_of_a_missing_index_creates_nothing(make_edge: Any, tmp_path: Path) -> None:
    index = make_edge(path=tmp_path / "nothing-here", encoder=HashEncoder())
    assert index.read_settings() is None and index.count() == 0 and index.get(["x"]) == []
    assert not (tmp_path / "nothing-here").exists()


def test_second_process_gets_one_clear_line(make_edge: Any, tmp_path: Path) -> None:
    index = make_edge(encoder=HashEncoder())
    index.add_texts(_texts(3))
    code = textwrap.dedent(f"""
        from edge_helpers import HashEncoder
        from bge_qdrant import QdrantEdgeIndex
        from bge_core.errors import StoreError
        try:
            QdrantEdgeIndex({str(tmp_path / "edge")!r}, HashEncoder(), show_progress=False).count()
        except StoreError as exc:
            print(exc)
            raise SystemExit(3)
    """)
    r = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, env=_child_env(), timeout=120
    )
    assert r.returncode == 3, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1 and "in use by another process" in lines[0] and str(tmp_path / "edge") in lines[0]
    assert f"pid {os.getpid()}" in lines[0]
    index.close()
    r = subprocess.run(
        [sys.executable, "-c", code.replace(".count()", ".count() or print('ok')")],
        check=False,
        capture_output=True,
        text=True,
        env=_child_env(),
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr


_KILL_CHILD = """
import sys
from edge_helpers import HashEncoder
from bge_qdrant import QdrantEdgeIndex

path, n = sys.argv[1], int(sys.argv[2])
index = QdrantEdgeIndex(path, HashEncoder(), show_progress=False, write_batch_size=50, chunk_size=100)
store = index.store
written = 0
inner = store.upsert
def upsert(records):
    global written
    inner(records)
    written += len(records)
    print(written, flush=True)
store.upsert = upsert
index.add_texts([f"doc {i} about topic {i % 7} and word{i % 13}" for i in range(n)])
print("done", flush=True)
"""


def test_kill_9_during_ingest_loses_at_most_the_batch_in_flight(tmp_path: Path, make_edge: Any) -> None:
    n = 3000
    path = tmp_path / "edge"
    child = subprocess.Popen(
        [sys.executable, "-c", _KILL_CHILD, str(path), str(n)], stdout=subprocess.PIPE, text=True, env=_child_env()
    )
    assert child.stdout is not None
    confirmed = 0
    for line in child.stdout:
        if line.strip() == "done":
            break
        confirmed = int(line)
        if confirmed >= 1000:
            os.kill(child.pid, signal.SIGKILL)
            break
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, "the child finished before it could be killed"
    enc = HashEncoder()
    index = make_edge(path=path, encoder=enc, write_batch_size=50, chunk_size=100)
    stored = index.count()
    # every write that returned survived; at most the batches in flight are missing
    assert confirmed <= stored < n
    texts = _texts(n)
    index.add_texts(texts)
    assert index.count() == n
    assert enc.encoded == n - stored  # nothing written twice, nothing skipped wrongly
    assert index.search(texts[2999], 1, mode="dense")[0].text == texts[2999]


def test_foreign_folder_is_refused_before_writing(make_edge: Any, tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes")
    (folder / "sub").mkdir()
    before = _tree(folder)
    index = make_edge(path=folder, encoder=HashEncoder())
    with pytest.raises(StoreError, match="holds something else than a bge Edge index") as err:
        index.add_texts(["a"])
    assert str(folder) in str(err.value)
    assert _tree(folder) == before and sorted(p.name for p in folder.iterdir()) == ["notes.txt", "sub"]
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        make_edge(path=a_file, encoder=HashEncoder()).add_texts(["a"])
    assert a_file.read_text() == "x"


def test_old_default_qdrant_local_folder_is_named(make_edge: Any, tmp_path: Path) -> None:
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(tmp_path / "old"))
    client.create_collection("bge", vectors_config={})
    client.close()
    before = _tree(tmp_path / "old")
    with pytest.raises(StoreError, match="holds a Qdrant local-mode index") as err:
        make_edge(path=tmp_path / "old", encoder=HashEncoder()).add_texts(["a"])
    assert f"--store qdrant:{tmp_path / 'old'}" in str(err.value)
    assert _tree(tmp_path / "old") == before


def _built(make_edge: Any, tmp_path: Path) -> Path:
    index = make_edge(encoder=HashEncoder(), collection_name="c1")
    index.add_texts(_texts(300))
    index.close()
    other = make_edge(encoder=HashEncoder(), collection_name="c2")
    other.add_texts(_texts(20))
    other.close()
    return tmp_path / "edge"


@pytest.mark.parametrize(
    "damage",
    [
        "marker_garbage",
        "marker_foreign",
        "edge_config",
        "segment_state",
        "version_info",
        "vectors_truncated",
        "wal_index",
        "shard_half_gone",
    ],
)
def test_damaged_folder_gives_a_clear_error_and_touches_nothing_else(
    make_edge: Any, tmp_path: Path, damage: str
) -> None:
    root = _built(make_edge, tmp_path)
    shard = root / "c1"
    if damage == "marker_garbage":
        (root / "bge-edge.json").write_text("{not json")
    elif damage == "marker_foreign":
        (root / "bge-edge.json").write_text(json.dumps({"format": "something", "collections": {}}))
    elif damage == "edge_config":
        os.truncate(shard / "edge_config.json", 0)
    elif damage == "segment_state":
        for p in shard.glob("segments/*/segment.json"):
            os.truncate(p, 0)
    elif damage == "version_info":
        for p in shard.glob("segments/*/version.info"):
            os.truncate(p, 0)
    elif damage == "vectors_truncated":
        for p in shard.glob("segments/*/vector_storage-dense/vectors/chunk_0.mmap"):
            os.truncate(p, 100)
    elif damage == "wal_index":
        os.truncate(shard / "wal" / "first-index", 0)
    else:
        (shard / "edge_config.json").unlink()
    untouched = {k: v for k, v in _tree(root).items() if not k.startswith("c1/") and not k.startswith(".bge-edge.lock")}
    index = make_edge(encoder=HashEncoder(), collection_name="c1")
    with pytest.raises(StoreError) as err:
        index.count()
        index.search("doc 1 about topic 1", 5, mode="dense")
    msg = str(err.value)
    assert str(root) in msg and ("damaged" in msg or "truncated" in msg), msg
    assert len(msg.splitlines()) == 1
    index.close()
    after = {k: v for k, v in _tree(root).items() if not k.startswith("c1/") and not k.startswith(".bge-edge.lock")}
    assert after == untouched
    if not damage.startswith("marker"):  # the other collection still works
        assert make_edge(encoder=HashEncoder(), collection_name="c2").count() == 20


def test_8_search_threads_and_2_ingest_threads(make_edge: Any) -> None:
    index = make_edge(encoder=HashEncoder(), build_threshold=300, write_batch_size=50, chunk_size=100)
    index.add_texts(_texts(200, "seed"))
    errors: list[BaseException] = []
    stop = threading.Event()
    searches = [0] * 8

    def search(i: int) -> None:
        try:
            while not stop.is_set():
                hits = index.search(f"doc {i} about topic {i}", 5, mode=("dense", "hybrid", "sparse")[i % 3])
                assert len(hits) == 5
                searches[i] += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def ingest(prefix: str) -> None:
        try:
            index.add_texts(_texts(1000, prefix))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    readers = [threading.Thread(target=search, args=(i,)) for i in range(8)]
    writers = [threading.Thread(target=ingest, args=(p,)) for p in ("left", "right")]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join(timeout=300)
    stop.set()
    for t in readers:
        t.join(timeout=60)
    assert not errors, errors[:3]
    assert index.count() == 2200
    assert all(n > 0 for n in searches)


def test_edge_uri(tmp_path: Path) -> None:
    from bge_qdrant.edge_uri import open_index

    index = open_index(f"edge:{tmp_path / 'u'}", encoder=HashEncoder(), collection="docs", show_progress=False)
    try:
        index.add_texts(["hello world"])
        assert index.count() == 1 and index.collection_name == "docs"
    finally:
        index.close()
    for bad in ("edge:", "edge://host:1", "qdrant:x", 3):
        with pytest.raises(StoreError):
            open_index(bad, encoder=HashEncoder(), collection="docs")  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="collection_name"):
        open_index(f"edge:{tmp_path / 'u'}", encoder=HashEncoder(), collection="a/b")


def test_hnsw_build_at_threshold_and_at_the_end(make_edge: Any) -> None:
    index = make_edge(encoder=HashEncoder(), build_threshold=250, write_batch_size=50, chunk_size=100)
    builds: list[int] = []
    real = index.store.build_index

    def counting() -> bool:
        builds.append(index.store.unindexed)
        return real()

    index.store.build_index = counting
    index.add_texts(_texts(600))
    # during the ingest at 250 and 500 points, then the last 100 at the end of the call
    assert builds == [250, 250, 100] and index.store.unindexed == 0
    builds.clear()
    index.add_texts(_texts(600))  # nothing new written: no build
    assert builds == []
    never = make_edge(path=index.store.path.parent / "e2", encoder=HashEncoder(), build_threshold=None)
    never.store.build_index = lambda: builds.append(never.store.unindexed) or True
    never.add_texts(_texts(300))
    assert builds == [300]


def test_upsert_refuses_a_non_uuid_id_before_writing_and_mirrors_bools(tmp_path: Path) -> None:
    import numpy as np
    from edge_helpers import make_edge_store

    from bge_core.index import CollectionSpec, Record, make_id
    from bge_core.types import SparseVector

    store = make_edge_store(tmp_path)
    store.ensure(CollectionSpec(dense_dim=4, sparse=True, colbert_dim=None))

    def rec(i: int, rid: Any = None, meta: dict[str, Any] | None = None) -> Record:
        return Record(
            id=make_id(None, f"t{i}") if rid is None else rid,
            text=f"t{i}",
            metadata=meta or {},
            hash=str(i),
            dense=np.array([1.0, i, 0.0, 0.5], dtype=np.float64),  # float64 in: stored as float32
            sparse=SparseVector(np.array([i], dtype=np.int64), np.array([1.0], dtype=np.float32)),
            colbert=None,
        )

    for bad in ("not-a-uuid", 7):
        with pytest.raises(ValueError, match="UUID"):
            store.upsert([rec(0), rec(1, rid=bad)])
    assert store.count() == 0  # the good record of the batch was not written either
    store.upsert([rec(0, meta={"flag": True, "tags": [False, "x"]}), rec(1, meta={"n": 1})])
    assert store.count() == 2
    assert [r.metadata for r in store.fetch_records([make_id(None, "t0"), make_id(None, "t1")])] == [
        {"flag": True, "tags": [False, "x"]},
        {"n": 1},
    ]
    from bge_core.index import SearchRequest

    query = np.array([1.0, 0, 0, 0.5])
    hits = store.query(SearchRequest("dense", 5, query, None, None, "rrf", 60, (1.0, 1.0), 10, {"flag": True}))
    assert [h.id for h in hits] == [make_id(None, "t0")]  # the bool filter matches through the mirror
    store.close()


@pytest.mark.slow
def test_threshold_builds_index_new_points_not_everything_again(tmp_path: Path) -> None:
    """With the segment cap a build leaves the graph of the previous build alone (the default
    optimizer merged it with the new points and re-indexed both: builds got slower each time)."""
    import numpy as np
    from edge_helpers import make_edge_store

    from bge_core.index import CollectionSpec, Record, make_id

    rng = np.random.default_rng(3)
    store = make_edge_store(tmp_path, build_threshold=12_000, hnsw_ef_construct=16)
    store.ensure(
        CollectionSpec(dense_dim=384, sparse=False, colbert_dim=None)
    )  # 12k x 384-d: past the indexing threshold
    assert store.max_segment_points == 18_000
    segments = []
    for part in range(3):
        x = rng.normal(size=(12_000, 384)).astype(np.float32)
        for b in range(0, 12_000, 2_000):
            store.upsert(
                [Record(make_id(None, f"{part}-{i}"), "t", {}, str(i), x[i], None, None) for i in range(b, b + 2_000)]
            )
        assert store.unindexed == 0  # the threshold build ran inside the last upsert
        segments.append(store._shard.info().segments_count)
    # one more indexed segment per build (plus the appendable one), none merged away
    assert segments == [2, 3, 4]
    assert store.count() == 36_000
    store.close()
