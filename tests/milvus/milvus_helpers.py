"""Helpers shared by the Milvus tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bge_core.testing import TINY_CORPUS

#: The corpus of tests/conftest.py, for module-scoped fixtures (test_corpus_in_step checks it).
CORPUS = list(TINY_CORPUS)


def metadatas_for(corpus: list[str]) -> list[dict[str, Any]]:
    """Metadata used by the parity tests."""
    return [{"i": i, "group": "even" if i % 2 == 0 else "odd", "tag": f"t{i % 3}"} for i in range(len(corpus))]


def release(path: Path) -> None:
    """Stop the in-process Milvus Lite server of ``path`` (frees its file lock)."""
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(str(path))
