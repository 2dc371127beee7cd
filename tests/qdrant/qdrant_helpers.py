"""Data of the Qdrant adapter tests (the hit comparison lives in ``store_checks``)."""

from __future__ import annotations

from store_checks import SMALL_CORPUS, SMALL_QUERIES, assert_same_hits

__all__ = ["QD_CORPUS", "QUERIES", "assert_same_hits"]

# The small filterable corpus shared with tests/edge (tests/store_checks.py).
QD_CORPUS = SMALL_CORPUS
QUERIES = SMALL_QUERIES
