"""Dict filters: exact reference semantics; hostile keys and values never change the query."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_checks import HOSTILE as STORE_HOSTILE
from store_checks import release_milvus as release

from bge_core.index import VectorIndex
from bge_core.reference import InMemoryStore
from bge_milvus import MilvusIndex
from bge_milvus.filters import dict_filter_expression, quote

# The hostile values of every store, and a quoted phrase.
HOSTILE = [*STORE_HOSTILE, 'he said "hi"']
METAS: list[dict[str, Any]] = (
    [
        {"k": 1},
        {"k": 1.0},
        {"k": True},
        {"k": "1"},
        {"k": False},
        {"k": 0},
        {"k": 2.5},
        {"k": None},
        {"k": [1, 2]},
        {"k": {"n": 1}},
        {"other": 1},
        {'q"k': "v"},
        {"a\\b": "v"},
        {"x] or [": 1},
        {"k": 2**60 + 1},
        {"k": float(2**60)},
    ]
    + [{"k": v} for v in HOSTILE]
    + [{v: "key"} for v in HOSTILE if v]
)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, m3: Any) -> Iterator[tuple[MilvusIndex, VectorIndex]]:
    from pymilvus import MilvusClient

    path = tmp_path_factory.mktemp("milvus") / "filters.db"
    client = MilvusClient(str(path))
    index = MilvusIndex(client, "f", m3, show_progress=False, colbert=False)
    ref = VectorIndex(InMemoryStore(), m3, colbert=False)
    texts = [f"the cat {i}" for i in range(len(METAS))]
    index.add_texts(texts, METAS)
    ref.add_texts(texts, METAS)
    yield index, ref
    client.close()
    release(path)


def same(index: MilvusIndex, ref: VectorIndex, flt: dict[str, Any]) -> list[str]:
    n = len(METAS)
    got = sorted(h.id for h in index.search("the cat", n, mode="dense", filter=flt))
    want = sorted(h.id for h in ref.search("the cat", n, mode="dense", filter=flt))
    assert got == want, flt
    return got


@pytest.mark.parametrize(
    "value,count",
    [
        (1, 2),
        (1.0, 2),
        (True, 1),
        ("1", 1),
        (False, 1),
        (0, 1),
        (2.5, 1),
        (2**60 + 1, 1),
        (float(2**60), 1),
        ([1, "1"], 3),
        ([0.0], 1),
        ([True, 2.5], 2),
    ],
)
def test_typed_equality_matches_reference(pair: tuple[MilvusIndex, VectorIndex], value: Any, count: int) -> None:
    assert len(same(*pair, {"k": value})) == count


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_values_and_keys(pair: tuple[MilvusIndex, VectorIndex], hostile: str) -> None:
    assert len(same(*pair, {"k": hostile})) == 1
    if hostile:
        assert len(same(*pair, {hostile: "key"})) == 1
        assert same(*pair, {hostile: hostile}) == []
    assert len(same(*pair, {"k": [hostile, "nothing"]})) == 1


def test_quoted_keys(pair: tuple[MilvusIndex, VectorIndex]) -> None:
    for key in ('q"k', "a\\b", "x] or ["):
        assert len(same(*pair, {key: "v" if key != "x] or [" else 1})) == 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.text(min_size=1, max_size=12), value=st.one_of(st.text(max_size=16), st.integers(), st.booleans()))
def test_random_filters_never_error_or_widen(pair: tuple[MilvusIndex, VectorIndex], key: str, value: Any) -> None:
    same(*pair, {key: value})
    same(*pair, {"k": value})


def test_expression_shape() -> None:
    expr = dict_filter_expression({'a"b': 'x" or 1==1 or "', "n": [1, 2.0, True]})
    assert expr == (
        '(filter_terms["a\\"b"] == "s:x\\" or 1==1 or \\"") and '
        '(filter_terms["n"] == "n:1" or filter_terms["n"] == "n:2" or filter_terms["n"] == "b:true")'
    )
    assert quote("a\\b\n") == '"a\\\\b\\n"'
