"""``bge index`` keeps the index in step with its SOURCE, with unambiguous ids (issue 16 items 2, 3)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import Runner, words


def store_uri(kind: str, tmp_path: Path) -> str:
    return f"qdrant:{tmp_path / 'qdrant'}" if kind == "qdrant" else f"milvus:{tmp_path / 'milvus.db'}"


def stored(bge: Runner, uri: str, *extra: str) -> list[dict]:  # type: ignore[type-arg]
    res = bge("search", "the cat and the dog", "--store", uri, "-k", "1000", "--mode", "dense", "--json", *extra)
    assert res.code == 0, res.err
    return [json.loads(line) for line in res.out.splitlines()]


def counts(out: str) -> tuple[int, int, int, int, int]:
    match = re.search(r"(\d+) added, (\d+) updated, (\d+) unchanged, (\d+) removed; the index holds (\d+) chunks", out)
    assert match is not None, out
    a, u, s, r, total = map(int, match.groups())
    return a, u, s, r, total


def long_text(n_words: int, seed: int = 1) -> str:
    import random

    rng = random.Random(seed)
    return ". ".join(words(rng, 8) for _ in range(n_words // 8))


@pytest.mark.parametrize("kind", ["qdrant", "milvus"])
def test_deleted_and_shortened_files_leave_the_index(
    kind: str, bge: Runner, tiny_m3_path: Path, tmp_path: Path
) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "long.txt").write_text(long_text(200), encoding="utf-8")
    (notes / "gone.txt").write_text("the dog is in the water", encoding="utf-8")
    uri = store_uri(kind, tmp_path)
    first = bge("index", notes, "--store", uri, "--model", tiny_m3_path, "--max-tokens", "24")
    assert first.code == 0, first.err
    added, _, _, _, total = counts(first.out)
    assert added == total > 4

    (notes / "gone.txt").unlink()
    (notes / "long.txt").write_text(long_text(40), encoding="utf-8")  # the same start, shorter
    again = bge("index", notes, "--store", uri)
    assert again.code == 0, again.err
    rows = stored(bge, uri)
    assert {r["source"] for r in rows} == {"notes/long.txt"}
    added2, updated2, unchanged2, removed2, total2 = counts(again.out)
    assert total2 == len(rows) and removed2 == total - total2 + added2
    assert added2 + updated2 + unchanged2 == len(rows) and unchanged2 >= 1
    assert sorted(r["chunk"] for r in rows) == list(range(len(rows)))


def test_no_delete_keeps_chunks_and_other_folders_are_never_touched(
    bge: Runner, tiny_m3_path: Path, tmp_path: Path
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
        (folder / "one.txt").write_text(f"the cat in {folder.name}", encoding="utf-8")
        (folder / "two.txt").write_text(f"the dog in {folder.name}", encoding="utf-8")
    uri = f"qdrant:{tmp_path / 'q'}"
    assert bge("index", a, "--store", uri, "--model", tiny_m3_path).code == 0
    assert bge("index", b, "--store", uri).code == 0  # another folder into the same collection
    assert len(stored(bge, uri)) == 4
    (b / "two.txt").unlink()
    kept = bge("index", b, "--store", uri, "--no-delete")
    assert kept.code == 0 and counts(kept.out)[3] == 0 and len(stored(bge, uri)) == 4
    synced = bge("index", b, "--store", uri)
    assert synced.code == 0 and counts(synced.out)[3] == 1
    assert sorted(r["source"] for r in stored(bge, uri)) == ["a/one.txt", "a/two.txt", "b/one.txt"]
    # A file argument covers only itself.
    (a / "one.txt").unlink()
    assert bge("index", a / "two.txt", "--store", uri).code == 0
    assert sorted(r["source"] for r in stored(bge, uri)) == ["a/one.txt", "a/two.txt", "b/one.txt"]


def test_parent_folder_after_child_stores_each_document_once(bge: Runner, tiny_m3_path: Path, tmp_path: Path) -> None:
    parent = tmp_path / "parent"
    (parent / "notes").mkdir(parents=True)
    (parent / "notes" / "a.txt").write_text("the cat is on the mat", encoding="utf-8")
    (parent / "b.txt").write_text("the dog is in the water", encoding="utf-8")
    uri = f"qdrant:{tmp_path / 'q'}"
    assert bge("index", parent / "notes", "--store", uri, "--model", tiny_m3_path).code == 0
    res = bge("index", parent, "--store", uri)
    assert res.code == 0, res.err
    rows = stored(bge, uri)
    # The parent run names the file parent/notes/a.txt: the child run's notes/a.txt is replaced, not kept twice.
    assert sorted(r["doc_id"] for r in rows) == ["parent/b.txt", "parent/notes/a.txt"]
    assert counts(res.out)[3] == 1


def test_jsonl_ids_are_scoped_and_content_keyed(bge: Runner, tiny_m3_path: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "x.txt").write_text("the sun and the moon", encoding="utf-8")
    # The same _id in two files, and an _id equal to a file's name: all stored, nothing replaced.
    (src / "a.jsonl").write_text(
        json.dumps({"_id": "d1", "text": "the cat a"})
        + "\n"
        + json.dumps({"_id": "src/x.txt", "text": "the fish"})
        + "\n",
        encoding="utf-8",
    )
    (src / "b.jsonl").write_text(json.dumps({"_id": "d1", "text": "the dog b"}) + "\n", encoding="utf-8")
    rows_no_id = [{"text": f"row {w} the star"} for w in ("one", "two", "three")]
    (src / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows_no_id), encoding="utf-8")
    uri = f"qdrant:{tmp_path / 'q'}"
    res = bge("index", src, "--store", uri, "--model", tiny_m3_path)
    assert res.code == 0, res.err
    assert counts(res.out)[:4] == (7, 0, 0, 0)  # a fresh store: everything added
    texts = sorted(r["text"] for r in stored(bge, uri))
    assert texts == sorted(
        ["the sun and the moon", "the cat a", "the fish", "the dog b"] + [r["text"] for r in rows_no_id]
    )
    both = stored(bge, uri, "--filter", "doc_id=d1")
    assert sorted(h["source"] for h in both) == ["src/a.jsonl", "src/b.jsonl"]

    # Deleting line 1 of rows without _id: the others keep their ids, nothing is left behind.
    (src / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows_no_id[1:]), encoding="utf-8")
    res = bge("index", src, "--store", uri)
    assert res.code == 0, res.err
    assert counts(res.out)[:4] == (0, 0, 6, 1)
    assert sorted(r["text"] for r in stored(bge, uri) if r["source"] == "src/c.jsonl") == [
        "row three the star",
        "row two the star",
    ]


def test_collisions_within_a_run_are_reported_with_both_places(bge: Runner, tiny_m3_path: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    lines = [
        {"_id": "d1", "text": "the cat"},
        {"_id": "d2", "text": "the dog"},
        {"_id": "d1", "text": "the fish"},
        {"text": "the star"},
        {"text": "the star"},
    ]
    (src / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    other = tmp_path / "other" / "src"
    other.mkdir(parents=True)
    (other / "b.txt").write_text("the moon", encoding="utf-8")
    (src / "b.txt").write_text("the sun", encoding="utf-8")
    uri = f"qdrant:{tmp_path / 'q'}"
    res = bge("index", src, other, "--store", uri, "--model", tiny_m3_path)
    assert res.code == 3, res.err
    where = str(src / "a.jsonl")
    assert f"{where}:3: _id 'd1' as line 1 of the same file" in res.err
    assert f"{where}:5: the same title and text (and no _id) as line 4" in res.err
    assert f"{other / 'b.txt'}: same name 'src/b.txt' (so the same ids) as {src / 'b.txt'}" in res.err
    assert sorted(r["text"] for r in stored(bge, uri)) == ["the cat", "the dog", "the star", "the sun"]


def test_sync_across_processes(tiny_m3_path: Path, tmp_path: Path) -> None:
    """Index, edit, re-index and search as separate processes (what a user does)."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.txt").write_text("the cat is on the mat", encoding="utf-8")
    (notes / "b.txt").write_text("the dog is in the water", encoding="utf-8")
    uri = f"qdrant:{tmp_path / 'q'}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    def bge(*args: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bge_core.cli", *map(str, args)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )

    assert bge("index", notes, "--store", uri, "--model", tiny_m3_path).returncode == 0
    (notes / "b.txt").unlink()
    res = bge("index", notes, "--store", uri)
    assert res.returncode == 0, res.stderr
    assert "1 removed; the index holds 1 chunks" in res.stdout
    out = bge("search", "the dog is in the water", "--store", uri, "--json", "-k", "10")
    assert out.returncode == 0, out.stderr
    assert [json.loads(line)["doc_id"] for line in out.stdout.splitlines()] == ["notes/a.txt"]
