"""Reading SOURCE files and chunking (``bge_core.sources``)."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest

from bge_core.sources import (
    SourceError,
    SourceReport,
    chunk_text,
    find_source_files,
    iter_chunks,
    read_documents,
)
from tests.cli.conftest import row_digest, words


@pytest.fixture(scope="module")
def tokenizer(tiny_m3_path: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_m3_path))


def test_find_files_recursive_sorted_hidden_and_unsupported_skipped(docs_dir: Path) -> None:
    report = SourceReport()
    files = find_source_files([docs_dir], report)
    assert [f.name for f in files] == ["docs/a.txt", "docs/rows.jsonl", "docs/sub/long.md"]
    # A file named explicitly gets the same name as through its folder; an unsupported one is reported.
    report = SourceReport()
    files = find_source_files([docs_dir / "a.txt", docs_dir / "notes.rst"], report)
    assert [f.name for f in files] == ["docs/a.txt"]
    assert len(report.problems) == 1 and "notes.rst" in report.problems[0]


def test_find_files_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        find_source_files([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "x.pdf").write_bytes(b"%PDF")
    with pytest.raises(SourceError, match=r"no \.txt, \.md or \.jsonl files"):
        find_source_files([tmp_path / "empty"])


def test_read_documents_fields_titles_and_metadata(docs_dir: Path) -> None:
    docs = list(read_documents(find_source_files([docs_dir])))
    by_key = {d.key: d for d in docs}
    third = f"docs/rows.jsonl@{row_digest('', 'cancer cells grow in the liver')}"
    assert set(by_key) == {"docs/a.txt", "d1", "d2", third, "docs/sub/long.md"}
    assert by_key["d1"].text == "drug a new drug treatment for heart disease"  # title + " " + text
    assert by_key["d1"].metadata == {"year": 2020}
    assert by_key[third].metadata == {"lab": "x"}  # a "metadata" object is merged
    assert by_key["docs/sub/long.md"].title == "Heart study"
    assert by_key["docs/a.txt"].title == "a.txt"


def test_malformed_lines_and_bad_encodings_are_reported_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "rows.jsonl").write_bytes(
        b'{"text": "the cat"}\nnot json\n[1, 2]\n{"title": "no text"}\n\xff\xfe bad\n\n{"text": "the dog"}\n'
    )
    (tmp_path / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    report = SourceReport()
    with caplog.at_level(logging.WARNING):
        docs = list(read_documents(find_source_files([tmp_path]), report))
    assert [d.text for d in docs] == ["the cat", "the dog"]
    rows = str(tmp_path / "rows.jsonl")
    assert [p.split(": ")[0] for p in report.problems] == [
        str(tmp_path / "latin.txt"),
        f"{rows}:2",
        f"{rows}:3",
        f"{rows}:4",
        f"{rows}:5",
    ]
    assert "not UTF-8" in report.problems[0] and "malformed JSON" in report.problems[1]
    assert len(caplog.records) == 5


def test_chunk_text_caps_tokens_with_specials_and_covers_the_text(tokenizer) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(3)
    text = ". ".join(words(rng, 12) for _ in range(60)) + " zzz qqq"
    for cap in (8, 16, 50):
        chunks = chunk_text(text, tokenizer, cap)
        assert len(chunks) > 1
        counts = [len(tokenizer(c)["input_ids"]) for c in chunks]  # special tokens included
        assert max(counts) <= cap
        assert min(counts) > 2
        assert " ".join(chunks).split() == text.split()  # nothing lost, no word cut in two
    assert chunk_text("  the cat  ", tokenizer, 8) == ["the cat"]
    assert chunk_text("   ", tokenizer, 8) == []
    with pytest.raises(ValueError, match="no room"):
        chunk_text("the cat", tokenizer, 2)


def test_chunk_text_prefers_sentence_ends(tokenizer) -> None:  # type: ignore[no-untyped-def]
    text = "the cat is on the mat. the dog is in the water and the fish"
    chunks = chunk_text(text, tokenizer, 12)
    assert chunks[0] == "the cat is on the mat."


def test_iter_chunks_ids_and_metadata(docs_dir: Path, tokenizer) -> None:  # type: ignore[no-untyped-def]
    report = SourceReport()
    docs = read_documents(find_source_files([docs_dir], report), report)
    chunks = list(iter_chunks(docs, tokenizer, 32, report))
    long_md = [c for c in chunks if c.metadata["doc_id"] == "docs/sub/long.md"]
    assert len(long_md) > 5
    assert [c.id for c in long_md] == [f"file:docs/sub/long.md#{n}" for n in range(len(long_md))]
    assert all(c.metadata["chunk"] == n and c.metadata["title"] == "Heart study" for n, c in enumerate(long_md))
    assert all(c.metadata["source"] == "docs/sub/long.md" for c in long_md)
    d1 = next(c for c in chunks if c.metadata["doc_id"] == "d1")
    assert d1.id == "row:docs/rows.jsonl\x00id:d1#0"
    assert d1.metadata == {
        "year": 2020,
        "doc_id": "d1",
        "source": "docs/rows.jsonl",
        "title": "drug",
        "chunk": 0,
        "source_root": docs_dir.parent.as_posix(),
    }
    assert report.documents == 5 and report.files == 3 and report.chunks == len(chunks)
