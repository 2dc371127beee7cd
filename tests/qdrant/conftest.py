"""Fixtures of the Qdrant adapter tests: local-mode clients and indexes on the tiny M3."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("qdrant_client")

# Texts made of TINY_WORDS, with metadata to filter on (group g, topic, a float score).
QD_CORPUS: list[tuple[str, dict[str, Any]]] = [
    ("the cat is on the mat", {"topic": "animal", "g": 0, "x": 0.5}),
    ("the dog is in the water", {"topic": "animal", "g": 1, "x": 1.0}),
    ("cancer cells grow in the liver", {"topic": "bio", "g": 2, "x": 1.5}),
    ("blood cells and the immune response", {"topic": "bio", "g": 0, "x": 2.0}),
    ("a new drug treatment for heart disease", {"topic": "bio", "g": 1, "x": 2.5}),
    ("dense sparse hybrid retrieval with colbert rerank", {"topic": "search", "g": 2, "x": 3.0}),
    ("the sun and the moon and the star", {"topic": "sky", "g": 0, "x": 3.5}),
    ("music art and book paper", {"topic": "art", "g": 1, "x": 4.0}),
    ("mice study of gene protein levels", {"topic": "bio", "g": 2, "x": 4.5}),
    ("patients in the trial had lower risk", {"topic": "bio", "g": 0, "x": 5.0}),
    ("cancer risk in mice and humans", {"topic": "bio", "g": 1, "x": 5.5}),
    ("the river and the mountain in the cold night", {"topic": "sky", "g": 2, "x": 6.0}),
]

QUERIES = [
    "cancer cells in the blood",
    "the dog in the water",
    "music and art book",
    "gene protein study in mice",
    "zzz qqq",  # no known word: an empty sparse query
]


@pytest.fixture
def qd_corpus() -> list[tuple[str, dict[str, Any]]]:
    return [(t, dict(m)) for t, m in QD_CORPUS]


@pytest.fixture
def memory_client() -> Iterator[Any]:
    from qdrant_client import QdrantClient

    client = QdrantClient(":memory:")
    yield client
    client.close()


@pytest.fixture
def make_index(m3: Any) -> Callable[..., Any]:
    """``make_index(client=None, name="docs", encoder=m3, **options)``: a QdrantIndex."""
    from qdrant_client import QdrantClient

    from bge_qdrant import QdrantIndex

    def make(client: Any = None, name: str = "docs", encoder: Any = None, **options: Any) -> Any:
        return QdrantIndex(client or QdrantClient(":memory:"), name, encoder or m3, **options)

    return make


@pytest.fixture
def filled(make_index: Callable[..., Any], qd_corpus: list[tuple[str, dict[str, Any]]]) -> Any:
    """A QdrantIndex holding QD_CORPUS."""
    index = make_index()
    index.add_texts([t for t, _ in qd_corpus], [m for _, m in qd_corpus])
    return index


@pytest.fixture
def reference(m3: Any, qd_corpus: list[tuple[str, dict[str, Any]]]) -> Any:
    """The exact InMemoryStore index holding QD_CORPUS."""
    from bge_core.index import VectorIndex
    from bge_core.reference import InMemoryStore

    index = VectorIndex(InMemoryStore(), m3)
    index.add_texts([t for t, _ in qd_corpus], [m for _, m in qd_corpus])
    return index


def assert_same_hits(expected: list[Any], got: list[Any], stage: str, tol: float = 1e-5) -> None:
    """Same length, scores within ``tol`` position by position, same ids except inside
    groups of tied scores, and ``got[i].scores[stage] == got[i].score``."""
    assert len(got) == len(expected), ([h.id for h in expected], [h.id for h in got])
    by_id = {h.id: h for h in expected}
    for i, (e, g) in enumerate(zip(expected, got)):
        assert abs(e.score - g.score) <= tol, (i, e.score, g.score)
        if e.id != g.id:
            tied = {h.id for h in expected if abs(h.score - e.score) <= tol}
            assert g.id in tied, (i, e.id, g.id)
        assert g.scores[stage] == pytest.approx(g.score)
        assert g.text == by_id[g.id].text
        assert g.metadata == by_id[g.id].metadata


def local_path(tmp_path: Path, name: str = "qdrant") -> str:
    return str(tmp_path / name)
