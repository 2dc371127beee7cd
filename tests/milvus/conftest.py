"""Milvus Lite fixtures: each test gets its own database file in a temp dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from store_checks import CORPUS
from store_checks import release_milvus as release


@pytest.fixture
def milvus_db(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "milvus.db"
    yield path
    release(path)


@pytest.fixture
def client(milvus_db: Path) -> Iterator[Any]:
    from pymilvus import MilvusClient

    c = MilvusClient(str(milvus_db))
    yield c
    c.close()


@pytest.fixture
def metadatas(corpus: list[str]) -> list[dict[str, Any]]:
    """The metadata of ``store_checks.CORPUS`` (whose texts are ``corpus``)."""
    assert [t for t, _ in CORPUS] == corpus
    return [dict(m) for _, m in CORPUS]
