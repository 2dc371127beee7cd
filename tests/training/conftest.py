"""Fixtures for the mining / fine-tuning tests: a tiny dense checkpoint, a tiny BEIR folder
with a train split over a 60-document corpus, and an index of it on the reference store."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bge_core.testing import TINY_WORDS


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(TINY_WORDS) for _ in range(n))


def make_beir(root: Path, *, n_docs: int = 60, n_queries: int = 12, split: str = "train", seed: int = 3) -> Path:
    """A BEIR folder: ``d0..`` documents, ``q0..`` queries, each with one or two positives."""
    rng = random.Random(seed)
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    docs = {f"d{i}": _words(rng, 12) for i in range(n_docs)}
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"_id": doc_id, "title": "", "text": text}) + "\n" for doc_id, text in docs.items())
    with (
        open(root / "queries.jsonl", "w", encoding="utf-8") as fh,
        open(root / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as qr,
    ):
        qr.write("query-id\tcorpus-id\tscore\n")
        for i in range(n_queries):
            pos = [f"d{i}"] + ([f"d{i + 20}"] if i % 3 == 0 else [])
            query = " ".join(docs[pos[0]].split()[:5])
            fh.write(json.dumps({"_id": f"q{i}", "text": query}) + "\n")
            qr.writelines(f"q{i}\t{p}\t1\n" for p in pos)
    return root


@pytest.fixture(scope="session")
def tiny_dense_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT-family checkpoint without M3 heads: a dense model (CLS pooling, BGE recipe)."""
    from bge_core.testing import build_tiny_m3

    return build_tiny_m3(tmp_path_factory.mktemp("ckpt") / "tiny-dense", heads=False, max_positions=130)


@pytest.fixture(scope="session")
def beir_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_beir(tmp_path_factory.mktemp("beir") / "tinybeir")


@pytest.fixture
def dense_index(tiny_dense_path: Path, beir_dir: Path) -> Any:
    """The tiny BEIR corpus in a VectorIndex on the reference store (ids = BEIR doc ids)."""
    from bge_core import DenseEncoder
    from bge_core.evaluation import load_beir
    from bge_core.index import Document, VectorIndex
    from bge_core.reference import InMemoryStore

    data = load_beir(beir_dir, split="train")
    enc = DenseEncoder(tiny_dense_path, device="cpu", dtype="float32")
    index = VectorIndex(InMemoryStore(), enc, show_progress=False)
    index.add_documents([Document(data.doc_text(d), {"doc_id": d}, d) for d in data.corpus])
    return index


@pytest.fixture
def bge(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``bge`` in-process; returns (exit code, stdout, stderr)."""
    from bge_core.cli.main import main

    def run(*argv: Any) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        cap = capsys.readouterr()
        return code, cap.out, cap.err

    return run
