"""Helpers shared by the Milvus tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: The corpus of tests/conftest.py, for module-scoped fixtures (test_corpus_in_step checks it).
CORPUS = [
    "the cat is on the mat",
    "the dog is in the water",
    "cancer cells grow in the liver",
    "blood cells and the immune response",
    "a new drug treatment for heart disease",
    "dense sparse hybrid retrieval with colbert rerank",
    "the sun and the moon and the star",
    "music art and book paper",
    "mice study of gene protein levels",
    "patients in the trial had lower risk",
    "",
    "zzz qqq",
]


def metadatas_for(corpus: list[str]) -> list[dict[str, Any]]:
    """Metadata used by the parity tests."""
    return [{"i": i, "group": "even" if i % 2 == 0 else "odd", "tag": f"t{i % 3}"} for i in range(len(corpus))]


def release(path: Path) -> None:
    """Stop the in-process Milvus Lite server of ``path`` (frees its file lock)."""
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(str(path))
