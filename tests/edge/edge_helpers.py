"""Shared data, assertions and the store fixture function of the Edge tests.

:func:`make_edge_store` is the factory the cross-store conformance suite (tests/stores/) can
import: ``make_edge_store(tmp_path)`` returns a fresh :class:`bge_qdrant.EdgeStore`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from store_checks import SMALL_CORPUS, SMALL_QUERIES

# The small filterable corpus shared with tests/qdrant (tests/store_checks.py).
EDGE_CORPUS = SMALL_CORPUS
QUERIES = SMALL_QUERIES


def make_edge_store(tmp_path: Path, collection_name: str = "bge", **options: Any) -> Any:
    """A fresh Edge store in ``tmp_path / "edge"`` (the conformance-suite fixture function)."""
    from bge_qdrant.edge_store import EdgeStore

    return EdgeStore(tmp_path / "edge", collection_name, **options)


def assert_same_hits(
    expected: list[Any], got: list[Any], stage: str, tol: float = 1e-5, beyond: list[Any] | None = None
) -> None:
    """Same length, scores within ``tol`` position by position, same ids except inside groups
    of tied scores (``beyond``: the reference's hits past the limit, so a tie across the cut
    is recognised), and ``got[i].scores[stage] == got[i].score``."""
    assert len(got) == len(expected), ([h.id for h in expected], [h.id for h in got])
    pool = [*expected, *(beyond or [])]
    by_id = {h.id: h for h in pool}
    for i, (e, g) in enumerate(zip(expected, got)):
        assert abs(e.score - g.score) <= tol, (i, e.score, g.score)
        if e.id != g.id:
            tied = {h.id for h in pool if abs(h.score - e.score) <= tol}
            assert g.id in tied, (i, e.id, g.id)
        assert g.scores[stage] == pytest.approx(g.score)
        assert g.text == by_id[g.id].text
        assert g.metadata == by_id[g.id].metadata


class HashEncoder:
    """A fast deterministic encoder (dense from a seeded RNG per text, sparse from word
    hashes) for durability and concurrency tests, where the model is not what is tested.
    ``encoded`` counts texts encoded as documents."""

    model_name = "hash-encoder"
    colbert_dim = 0
    supports_sparse = True
    supports_colbert = False
    max_length = 512

    def __init__(self, dim: int = 16, on_encode: Any = None) -> None:
        self.dim = dim
        self.encoded = 0
        self.on_encode = on_encode

    def encode_outputs(
        self, texts: Any, *, query: bool, dense: bool = True, sparse: bool = True, colbert: bool = False
    ) -> Any:
        import hashlib

        import numpy as np

        from bge_core.types import M3Output, SparseVector

        vecs = []
        sparses = []
        for t in texts:
            seed = int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little")
            v = np.random.default_rng(seed).normal(size=self.dim).astype(np.float32)
            vecs.append(v / np.linalg.norm(v))
            weights: dict[int, float] = {}
            for w in t.split():
                tok = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=3).digest(), "little")
                weights[tok] = weights.get(tok, 0.0) + 0.5
            sparses.append(SparseVector.from_dict(weights))
        if not query:
            self.encoded += len(texts)
            if self.on_encode is not None:
                self.on_encode(len(texts))
        return M3Output(
            dense=np.stack(vecs) if dense else None,
            sparse=sparses if sparse else [],
        )


def low_rank_unit_vectors(n: int, dim: int, seed: int, rank: int = 12) -> np.ndarray:
    """``n`` unit vectors of intrinsic dimension ``rank`` (like real embeddings, unlike i.i.d.
    noise in ``dim`` dimensions): HNSW finds each point itself, so answers can be compared exactly."""
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, rank)) @ rng.normal(size=(rank, dim))).astype(np.float32)
    out: np.ndarray = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out
