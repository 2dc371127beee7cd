"""Data and assertions shared by every store's tests (importable as ``store_checks`` from any
test folder: ``tests/`` is on ``sys.path`` through ``tests/conftest.py``).

One corpus, one hit comparison, one fault-injecting proxy: the store conformance suite
(``tests/stores``) and the store-specific tests (``tests/qdrant``, ``tests/milvus``) use these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bge_core.testing import TINY_CORPUS

#: Values that must never change a filter's meaning (quotes, escapes, expression syntax).
HOSTILE = [
    'x" or 1==1 or "',
    "x' or 1==1 or '",
    "a\\b",
    'a\\" or true or \\"',
    "\\",
    "line\nbreak\ttab\rret",
    "é😀中",
    ") or (1 == 1",
    '"]) or exists metadata["',
    "metadata.group",
    "*",
    '{"$ne": null}',
    "",
]


def _metadata(i: int) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "i": i,
        "group": "even" if i % 2 == 0 else "odd",
        "tag": f"t{i % 3}",
        "x": i * 0.5,
        "flag": i % 3 == 0,
        "q": HOSTILE[i % len(HOSTILE)],
    }
    if i % 4 == 1:
        meta["a.b"] = "dotted"
    return meta


#: (text, metadata) rows: the tiny checkpoint's corpus (with an empty text and one whose
#: words are all unknown, so its sparse vector is empty) and typed, hostile metadata.
CORPUS: list[tuple[str, dict[str, Any]]] = [(t, _metadata(i)) for i, t in enumerate(TINY_CORPUS)]

#: Queries: ordinary ones and one with no known word (an empty sparse query).
QUERIES = ["the cat on the mat", "cancer cells in the liver", "dense sparse retrieval", "heart disease drug", "zzz qqq"]

#: ``(mode, fusion, stage)``: every search mode and hybrid fusion, with the ``Hit.scores`` key of
#: the stage that ranks its hits last.
SEARCH_CASES: list[tuple[str, str, str]] = [
    ("dense", "rrf", "dense"),
    ("sparse", "rrf", "sparse"),
    ("hybrid", "rrf", "fusion"),
    ("hybrid", "dbsf", "fusion"),
    ("hybrid", "weighted", "fusion"),
    ("colbert", "rrf", "colbert"),
]

#: Filters every store must answer exactly as the reference store.
FILTERS: list[dict[str, Any]] = [
    {"group": "even"},
    {"tag": ["t0", "t2"]},
    {"i": 3},
    {"i": 3.0},
    {"x": 1.5},
    {"flag": True},
    {"flag": False},
    {"i": True},  # a bool never matches a number
    {"i": "3"},  # a string never matches a number
    {"group": "odd", "tag": "t1"},
    {"a.b": "dotted"},  # a key with a dot is a literal key, not a path
    {"missing": "x"},
    *({"q": h} for h in HOSTILE),
    {"q": HOSTILE[:3]},
    *({h: "x"} for h in HOSTILE if h and '"' not in h),  # hostile keys (Qdrant paths cannot hold '"')
]


# A small corpus of TINY_WORDS texts with metadata to filter on (group g, topic, a float score),
# used by the Qdrant and Edge store tests.
SMALL_CORPUS: list[tuple[str, dict[str, Any]]] = [
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

SMALL_QUERIES = [
    "cancer cells in the blood",
    "the dog in the water",
    "music and art book",
    "gene protein study in mice",
    "zzz qqq",  # no known word: an empty sparse query
]


def texts_and_metadatas(rows: list[tuple[str, dict[str, Any]]] | None = None) -> tuple[list[str], list[dict[str, Any]]]:
    """``(texts, metadatas)`` of ``rows`` (default :data:`CORPUS`), metadata copied."""
    rows = CORPUS if rows is None else rows
    return [t for t, _ in rows], [dict(m) for _, m in rows]


def assert_same_hits(expected: list[Any], got: list[Any], stage: str | None = None, tol: float = 1e-5) -> None:
    """``got`` equals the reference's ``expected``: same length, scores within ``tol`` position
    by position, the same ids in each group of tied scores (the last group may hold other
    rows of the same score: it can continue past the cut), same text and metadata per id, and (with ``stage``)
    ``got[i].scores[stage] == got[i].score``."""
    assert len(got) == len(expected), ([h.id for h in expected], [h.id for h in got])
    for i, (e, g) in enumerate(zip(expected, got)):
        assert abs(e.score - g.score) <= tol, (i, e.score, g.score)
        if stage is not None:
            assert g.scores[stage] == pytest.approx(g.score)
    i = 0
    while i < len(expected):
        j = i
        while j + 1 < len(expected) and abs(expected[j + 1].score - expected[i].score) <= tol:
            j += 1
        if j + 1 == len(expected) and len(got) == len(expected):
            # The last score group may continue past the cut (a tie with a row not listed):
            # its rows are equally right, only their scores (checked above) must agree.
            break
        assert {h.id for h in got[i : j + 1]} == {h.id for h in expected[i : j + 1]}, (i, j)
        i = j + 1
    by_id = {h.id: h for h in expected}
    for g in got:
        if g.id in by_id:
            assert g.text == by_id[g.id].text and g.metadata == by_id[g.id].metadata, g.id


class FlakyProxy:
    """Delegates to ``inner`` (a client or a store); call number ``fail_on`` (1-based) and the
    following ones of ``method`` raise ``error`` until it has been raised ``times`` times.
    ``only`` narrows the counted calls to those whose first argument equals it (a collection
    name)."""

    def __init__(
        self, inner: Any, method: str, fail_on: int, error: BaseException, times: int = 1, only: str | None = None
    ) -> None:
        self.inner, self.method, self.fail_on, self.error, self.times, self.only = (
            inner,
            method,
            fail_on,
            error,
            times,
            only,
        )
        self.calls = 0
        self.failures = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name != self.method:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.only is None or (args and args[0] == self.only) or kwargs.get("collection_name") == self.only:
                self.calls += 1
                if self.calls >= self.fail_on and self.failures < self.times:
                    self.failures += 1
                    raise self.error
            return attr(*args, **kwargs)

        return call


def release_milvus(path: Path | str) -> None:
    """Stop the in-process Milvus Lite server of ``path`` (frees its file lock)."""
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(str(path))


def release_milvus_under(folder: Path) -> None:
    """Stop the in-process Milvus Lite servers of every database below ``folder``.

    ``MilvusClient("x.db").close()`` (and an in-process ``bge`` run on ``milvus:x.db``) leaves
    the Milvus Lite server of ``x.db`` running, holding its LOCK file, until the process ends;
    test teardowns call this so each test releases what it opened. The databases are the
    ``*.db`` folders below ``folder`` and, where Milvus Lite lists its servers, the ones it
    serves from there (also those whose folder is gone: a failed ``bge index`` removes the
    store it created). A no-op when Milvus Lite was never imported."""
    import os
    import sys

    manager = sys.modules.get("milvus_lite.server_manager")
    if manager is None:
        return
    root = os.path.abspath(folder.resolve())
    served = list(getattr(manager.server_manager_instance, "_servers", {}))  # private: read defensively
    paths = {str(db.resolve()) for db in folder.rglob("*.db") if db.is_dir()}
    paths.update(p for p in served if isinstance(p, str) and p.startswith(root + os.sep))
    for path in sorted(paths):
        release_milvus(path)
