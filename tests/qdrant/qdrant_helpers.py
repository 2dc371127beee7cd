"""Data of the Qdrant adapter tests (the hit comparison lives in ``store_checks``)."""

from __future__ import annotations

from typing import Any

from store_checks import assert_same_hits

__all__ = ["QD_CORPUS", "QUERIES", "assert_same_hits"]

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
