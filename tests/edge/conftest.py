"""Fixtures of the Edge store tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from edge_helpers import EDGE_CORPUS

pytest.importorskip("qdrant_edge")


@pytest.fixture
def make_edge(m3: Any, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``make_edge(path=None, encoder=m3, **options)``: a QdrantEdgeIndex, closed at teardown."""
    from bge_qdrant import QdrantEdgeIndex

    made: list[Any] = []

    def make(path: Any = None, encoder: Any = None, **options: Any) -> Any:
        options.setdefault("show_progress", False)
        index = QdrantEdgeIndex(path or tmp_path / "edge", encoder or m3, **options)
        made.append(index)
        return index

    yield make
    for index in made:
        index.close()


@pytest.fixture
def edge_corpus() -> list[tuple[str, dict[str, Any]]]:
    return [(t, dict(m)) for t, m in EDGE_CORPUS]
