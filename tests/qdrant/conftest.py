"""Fixtures of the Qdrant adapter tests: local-mode clients and indexes on the tiny M3."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from qdrant_helpers import QD_CORPUS

pytest.importorskip("qdrant_client")


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
