"""Fixtures of the LangChain adapter tests: tiny checkpoints, a corpus and an in-memory index."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

# Texts made of TINY_WORDS, with metadata to filter on.
LC_CORPUS: list[tuple[str, dict[str, Any]]] = [
    ("the cat is on the mat", {"topic": "animal", "n": 0}),
    ("the dog is in the water", {"topic": "animal", "n": 1}),
    ("cancer cells grow in the liver", {"topic": "bio", "n": 2}),
    ("blood cells and the immune response", {"topic": "bio", "n": 3}),
    ("a new drug treatment for heart disease", {"topic": "bio", "n": 4}),
    ("dense sparse hybrid retrieval with colbert rerank", {"topic": "search", "n": 5}),
    ("the sun and the moon and the star", {"topic": "sky", "n": 6}),
    ("music art and book paper", {"topic": "art", "n": 7}),
    ("mice study of gene protein levels", {"topic": "bio", "n": 8}),
    ("patients in the trial had lower risk", {"topic": "bio", "n": 9}),
]


@pytest.fixture(scope="session")
def tiny_dense_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny checkpoint without M3 heads: loads as a ``DenseEncoder``."""
    from bge_core.testing import build_tiny_m3

    return build_tiny_m3(tmp_path_factory.mktemp("ckpt") / "tiny-dense", heads=False, seed=3)


@pytest.fixture
def fresh_m3(tiny_m3_path: Path) -> Any:
    """A new encoder per test: its shared output cache starts empty."""
    from bge_core import BGEM3Encoder

    return BGEM3Encoder(tiny_m3_path, device="cpu", dtype="float32", batch_size=4)


@pytest.fixture(scope="session")
def lc_index(m3: Any) -> Any:
    """A ``VectorIndex`` over the in-memory reference store holding LC_CORPUS."""
    from bge_core.index import VectorIndex
    from bge_core.reference import InMemoryStore

    index = VectorIndex(InMemoryStore(), m3, show_progress=False)
    index.add_texts([t for t, _ in LC_CORPUS], [m for _, m in LC_CORPUS], ids=[f"doc-{m['n']}" for _, m in LC_CORPUS])
    return index


class ForwardCounter:
    """Counts texts (batch rows) passed through a torch module's forward."""

    def __init__(self, module: Any) -> None:
        self.texts = 0
        self.calls = 0
        self._handle = module.register_forward_hook(self._hook, with_kwargs=True)

    def _hook(self, module: Any, args: Any, kwargs: Any, output: Any) -> None:
        ids = kwargs.get("input_ids") if kwargs else None
        if ids is None:
            ids = args[0]
        self.calls += 1
        self.texts += int(ids.shape[0])

    def reset(self) -> None:
        self.texts = 0
        self.calls = 0

    def remove(self) -> None:
        self._handle.remove()


@pytest.fixture
def count_forward() -> Any:
    """``count_forward(module)`` -> a ForwardCounter; hooks are removed after the test."""
    made: list[ForwardCounter] = []

    def make(module: Any) -> ForwardCounter:
        c = ForwardCounter(module)
        made.append(c)
        return c

    yield make
    for c in made:
        c.remove()
