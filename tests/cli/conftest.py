"""Fixtures for the ``bge`` CLI tests: a source folder, a tiny BEIR sample and an in-process runner."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from store_checks import release_milvus_under

from bge_core.testing import TINY_WORDS


@dataclass
class Result:
    """Exit code and captured output of one ``bge`` run."""

    code: int
    out: str
    err: str

    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("bge: error")]


Runner = Callable[..., Result]


@pytest.fixture
def bge(capsys: pytest.CaptureFixture[str]) -> Runner:
    """Run ``bge`` in-process: ``bge("search", "q", "--store", uri)``."""
    from bge_core.cli.main import main

    def run(*argv: str) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        cap = capsys.readouterr()
        return Result(code, cap.out, cap.err)

    return run


@pytest.fixture(autouse=True)
def _release_milvus_lite(tmp_path: Path) -> Iterator[None]:
    """Stop the Milvus Lite servers a test started below its ``tmp_path`` (in-process ``bge``
    runs on ``milvus:`` URIs leave them running, holding their LOCK files, otherwise)."""
    yield
    release_milvus_under(tmp_path)


@pytest.fixture
def milvus_client() -> Iterator[Callable[[Path], Any]]:
    """``open(path)``: a ``MilvusClient`` on a Milvus Lite database, closed at teardown even when
    the test fails (closing twice is harmless; the server is stopped by ``_release_milvus_lite``)."""
    pytest.importorskip("milvus_lite")
    from pymilvus import MilvusClient

    clients: list[Any] = []

    def open_(path: Path) -> Any:
        client = MilvusClient(str(path))
        clients.append(client)
        return client

    yield open_
    for client in clients:
        client.close()


def row_digest(title: str, text: str) -> str:
    """The content key of a JSONL row without ``_id`` (see ``bge_core.sources``)."""
    import hashlib

    return hashlib.blake2b(f"{title}\x00{text}".encode(), digest_size=12).hexdigest()


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(TINY_WORDS) for _ in range(n))


@pytest.fixture
def docs_dir(tmp_path: Path) -> Path:
    """``docs/`` with a .txt, a long .md (in a sub-folder) and a .jsonl of three rows."""
    rng = random.Random(7)
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("the cat is on the mat", encoding="utf-8")
    (root / "sub" / "long.md").write_text("# Heart study\n\n" + words(rng, 400), encoding="utf-8")
    rows = [
        {"_id": "d1", "title": "drug", "text": "a new drug treatment for heart disease", "year": 2020},
        {"_id": "d2", "title": "sky", "text": "the sun and the moon and the star", "year": 2021},
        {"text": "cancer cells grow in the liver", "metadata": {"lab": "x"}},
    ]
    (root / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    (root / ".hidden.txt").write_text("never indexed", encoding="utf-8")
    (root / "notes.rst").write_text("not a supported type", encoding="utf-8")
    return root


def write_beir(
    root: Path, corpus: dict[str, tuple[str, str]], queries: dict[str, str], qrels: dict[str, dict[str, int]]
) -> Path:
    """Write a BEIR-format folder."""
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(
            json.dumps({"_id": doc_id, "title": title, "text": text, "metadata": {}}) + "\n"
            for doc_id, (title, text) in corpus.items()
        )
    with open(root / "queries.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"_id": qid, "text": text, "metadata": {}}) + "\n" for qid, text in queries.items())
    with open(root / "qrels" / "test.tsv", "w", encoding="utf-8") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for qid, rel in qrels.items():
            fh.writelines(f"{qid}\t{doc_id}\t{grade}\n" for doc_id, grade in rel.items())
    return root
