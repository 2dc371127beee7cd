"""One bad row, file or link never stops a run; secrets in store URIs are never printed (issue 16 items 5, 8, 9)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bge_core.checks import (
    check_max_length,
    check_unicode,
    unpaired_surrogate,
    value_problem,
)
from bge_core.sources import SourceReport, find_source_files, read_documents
from bge_core.uris import redact_secrets, redact_uri
from tests.cli.conftest import Runner


def bad_rows_folder(root: Path) -> Path:
    root.mkdir()
    lines = [
        '{"_id": "ok1", "text": "the cat is on the mat"}',
        '{"_id": "sur", "text": "\\ud800 x"}',  # a lone surrogate in the text
        '{"_id": "nan", "text": "the dog", "score": NaN}',
        '{"_id": "inf", "text": "the dog", "score": Infinity}',
        '{"_id": "big", "text": "the dog", "score": 1e999}',  # parses to inf
        '{"_id": "huge", "text": "the dog", "n": 36893488147419103232}',  # 2**65
        '{"_id": "key", "text": "the dog", "meta\\udc80": 1}',
        '{"_id": "ok2", "text": "the sun and the moon", "n": 9223372036854775807}',
    ]
    (root / "rows.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "good.txt").write_text("the fish in the water", encoding="utf-8")
    bad_name = os.fsencode(root) + b"/caf\xe9.txt"
    with open(bad_name, "wb") as fh:
        fh.write(b"the star")
    return root


@pytest.mark.parametrize("kind", ["qdrant", "milvus"])
def test_bad_rows_and_names_are_skipped_with_file_and_line(
    kind: str, bge: Runner, tiny_m3_path: Path, tmp_path: Path
) -> None:
    src = bad_rows_folder(tmp_path / "src")
    uri = f"qdrant:{tmp_path / 'q'}" if kind == "qdrant" else f"milvus:{tmp_path / 'm.db'}"
    res = bge("index", src, "--store", uri, "--model", tiny_m3_path)
    assert res.code == 3, res.err
    rows = str(src / "rows.jsonl")
    assert f"{rows}:2: 'text' holds an unpaired surrogate" in res.err
    assert f"{rows}:3: NaN is not a JSON number" in res.err
    assert f"{rows}:4: Infinity is not a JSON number" in res.err
    assert f"{rows}:5: score is inf" in res.err
    assert f"{rows}:6: n is an integer outside the 64-bit range" in res.err
    assert f"{rows}:7: field name" in res.err
    assert "caf\\xe9.txt: the file name is not valid UTF-8" in res.err
    assert "indexed 3 documents" in res.out
    hits = bge("search", "the cat", "--store", uri, "--json", "-k", "10", "--mode", "dense")
    assert hits.code == 0, hits.err
    assert sorted(json.loads(line)["doc_id"] for line in hits.out.splitlines()) == ["ok1", "ok2", "src/good.txt"]


def test_checks() -> None:
    assert unpaired_surrogate("ok") is None and unpaired_surrogate("ab\ud800") == 2
    with pytest.raises(ValueError, match=r"texts\[1\] holds an unpaired surrogate .* at position 0"):
        check_unicode(["fine", "\ud800abc"])
    assert (
        value_problem({"a": [1, {"b": float("nan")}]})
        == "a[1].b is nan (NaN and Infinity are not JSON; use null or a string)"
    )
    assert value_problem({"a": -(2**63)}) is None and value_problem({"a": 2**63}) is not None
    assert value_problem({"a": "x", "b": None, "c": True, "d": 1.5}) is None
    for bad in (-1, 0, 1, 2):
        with pytest.raises(ValueError, match="max_length"):
            check_max_length(bad, 512)
    for wrong in (True, 2.5, "8"):
        with pytest.raises(TypeError, match="max_length must be an int"):
            check_max_length(wrong, 512)
    with pytest.raises(ValueError, match="more than the model takes"):
        check_max_length(513, 512)
    assert check_max_length(3, 512) == 3


def test_links_and_unreadable_folders_are_reported(
    bge: Runner, tiny_m3_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "locked").mkdir()
    (src / "a.txt").write_text("the cat", encoding="utf-8")
    (src / "sub" / "b.txt").write_text("the dog", encoding="utf-8")
    (src / "sub" / "loop").symlink_to(src, target_is_directory=True)
    (src / "dangling.txt").symlink_to(tmp_path / "nowhere.txt")
    (src / "linked").symlink_to(src / "sub", target_is_directory=True)  # a second way to sub: files found once
    real_scandir = os.scandir

    def scandir(path: object = ".") -> object:
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", scandir)
    report = SourceReport()
    files = find_source_files([src], report)
    assert sorted(f.name for f in files) == ["src/a.txt", "src/sub/b.txt"]
    text = "\n".join(report.problems)
    assert "dangling symlink" in text and "symlink loop" in text and "locked: cannot read the folder" in text
    assert str(src / "locked") in report.incomplete
    res = bge("index", src, "--store", f"qdrant:{tmp_path / 'q'}", "--model", tiny_m3_path)
    assert res.code == 3, res.err
    assert "dangling symlink" in res.err and "cannot read the folder (Permission denied)" in res.err


def test_unreadable_source_folder_is_named(bge: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("the cat", encoding="utf-8")
    real_scandir = os.scandir

    def scandir(path: object = ".") -> object:
        if Path(str(path)) == src:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", scandir)
    res = bge("index", src, "--store", f"qdrant:{tmp_path / 'q'}")
    assert res.code == 1
    assert f"{src}: cannot read the folder (Permission denied)" in res.err
    assert not (tmp_path / "q").exists()


def test_binary_only_and_empty_sources_are_errors_before_a_store_exists(
    bge: Runner, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    binary = tmp_path / "bin"
    binary.mkdir()
    (binary / "data.txt").write_bytes(bytes(range(256)) * 8)
    res = bge("index", binary, "--store", f"qdrant:{tmp_path / 'q'}")
    assert res.code == 1 and "none of the 1 file(s) is readable UTF-8 text" in res.err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.txt").write_text("  \n", encoding="utf-8")
    res = bge("index", empty, "--store", f"qdrant:{tmp_path / 'q'}")
    assert res.code == 1 and "every file is empty" in res.err
    assert not (tmp_path / "q").exists()
    # An empty file among others is reported (not silently skipped) and counted in the summary.
    (empty / "b.txt").write_text("the cat", encoding="utf-8")
    report = SourceReport()
    docs = list(read_documents(find_source_files([empty], report), report))
    assert [d.key for d in docs] == ["empty/b.txt"] and report.empty == 1
    assert report.notes == [f"{empty / 'a.txt'}: empty document; skipped"]


def test_large_text_file_is_streamed_in_blocks(
    tiny_m3_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file over one block is chunked block by block; the chunks equal chunking it whole."""
    import random

    from transformers import AutoTokenizer

    from bge_core import sources
    from bge_core.sources import chunk_text, iter_chunks
    from tests.cli.conftest import words

    monkeypatch.setattr(sources, "TEXT_BLOCK_CHARS", 2000)
    rng = random.Random(5)
    text = "\n".join(". ".join(words(rng, 9) for _ in range(4)) for _ in range(120))
    (tmp_path / "big.txt").write_text(text, encoding="utf-8")
    tok = AutoTokenizer.from_pretrained(str(tiny_m3_path))
    report = SourceReport()
    docs = read_documents(find_source_files([tmp_path / "big.txt"], report), report)
    streamed = []

    def watch(it):  # type: ignore[no-untyped-def]
        for doc in it:
            streamed.append(doc.blocks is not None)
            yield doc

    chunks = [c.text for c in iter_chunks(watch(docs), tok, 32, report)]
    assert streamed == [True]
    assert " ".join(chunks).split() == text.split()  # nothing lost or doubled at block edges
    assert max(len(tok(c)["input_ids"]) for c in chunks) <= 32
    whole = chunk_text(text, tok, 32)
    assert abs(len(chunks) - len(whole)) <= len(whole) // 10


SECRET_URIS = [
    ("qdrant+http://127.0.0.1:16334/?api_key=SECRET", "api_key=***"),
    ("qdrant+http://user:SECRET@127.0.0.1:abc", "user:***@"),
    ("milvus+http://127.0.0.1:19999?token=SECRET", "token=***"),
    ("milvus+http://127.0.0.1:19999?token=root:SECRET", "token=***"),
    ("qdrant+https://SECRET@127.0.0.1:9", "https://***@"),
]


@pytest.mark.parametrize(("uri", "shown"), SECRET_URIS)
def test_secrets_in_store_uris_are_redacted(bge: Runner, uri: str, shown: str, tmp_path: Path) -> None:
    assert "SECRET" not in redact_uri(uri) and shown in redact_uri(uri)
    assert "SECRET" not in redact_secrets(f"error: cannot open {uri!r}: token=SECRET")
    (tmp_path / "a.txt").write_text("the cat", encoding="utf-8")
    for args in (("search", "cat"), ("index", tmp_path / "a.txt")):
        for verbose in ((), ("-v",)):
            res = bge(*args, "--store", uri, *verbose)
            assert res.code == 1
            assert "SECRET" not in res.err + res.out, res.err


_PEAK = """
import resource, sys
from transformers import AutoTokenizer
from bge_core.sources import SourceReport, find_source_files, iter_chunks, read_documents
tok = AutoTokenizer.from_pretrained(sys.argv[2])
r = SourceReport()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
n = sum(1 for _ in iter_chunks(read_documents(find_source_files([sys.argv[1]], r), r), tok, 64, r))
print(n, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)
"""


@pytest.mark.slow
def test_chunking_memory_does_not_grow_with_file_size(tiny_m3_path: Path, tmp_path: Path) -> None:
    """Peak RSS of reading + chunking a 1 MB and a 6 MB file: it was ~130 bytes per input byte."""
    import random
    import subprocess
    import sys

    from tests.cli.conftest import words

    rng = random.Random(2)
    block = "\n".join(". ".join(words(rng, 10) for _ in range(5)) for _ in range(400))
    growth = {}
    for mb in (1, 6):
        path = tmp_path / f"f{mb}.txt"
        with open(path, "w", encoding="utf-8") as fh:
            while fh.tell() < mb * 2**20:
                fh.write(block + "\n")
        out = subprocess.run(
            [sys.executable, "-c", _PEAK, str(path), str(tiny_m3_path)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
            timeout=900,
            check=True,
        )
        chunks, mib = map(int, out.stdout.split())
        assert chunks > 1000 * mb
        growth[mb] = mib
    # 5 MB more input: before streaming this cost ~650 MB more; now it must stay within block-sized noise.
    assert growth[6] - growth[1] < 40, growth
