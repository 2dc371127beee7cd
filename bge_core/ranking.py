"""Rerank steps shared by the index, the ``Reranker`` and every framework reranker:
best-first top-n selection and ColBERT (MaxSim) scores of texts for a query."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bge_core.scoring import maxsim

__all__ = ["check_top_n", "colbert_scores", "top_n_order"]


def check_top_n(top_n: object) -> int | None:
    """``top_n`` if it is a positive int or ``None`` (keep all), else a ``ValueError``."""
    if top_n is not None and (not isinstance(top_n, int) or isinstance(top_n, bool) or top_n < 1):
        raise ValueError(f"top_n must be a positive int or None (keep all), got {top_n!r}")
    return top_n


def top_n_order(scores: Sequence[float] | np.ndarray, top_n: int | None = None) -> list[int]:
    """Positions of ``scores`` best first (ties keep input order), cut to ``top_n`` (``None``: all)."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    if top_n is not None:
        order = order[:top_n]
    return [int(i) for i in order]


def colbert_scores(encoder: Any, query: str, texts: Sequence[str]) -> list[float]:
    """ColBERT MaxSim score of each text for ``query`` (``encoder``: a ``BGEM3Encoder`` with
    its ColBERT head), in input order."""
    if not isinstance(query, str):
        raise TypeError(f"query must be a str, got {type(query).__name__}")
    items = list(texts)
    if not items:
        return []
    if not getattr(encoder, "supports_colbert", False):
        raise ValueError(
            f"{getattr(encoder, 'model_name', type(encoder).__name__)} has no ColBERT head (no ColBERT output): use a "
            "BGE-M3 checkpoint with colbert_linear.pt, loaded with colbert=True"
        )
    q = encoder.encode_outputs([query], query=True, dense=False, sparse=False, colbert=True).colbert[0]
    docs = encoder.encode_outputs(items, query=False, dense=False, sparse=False, colbert=True).colbert
    return [maxsim(q, d) for d in docs]
