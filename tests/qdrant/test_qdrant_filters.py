"""Dict and native filters; hostile values and keys never change the query."""

from __future__ import annotations

from typing import Any

import pytest
from qdrant_client import models

from bge_qdrant.filters import payload_path, to_filter

HOSTILE = [
    '" or 1==1 or "',
    "' OR '1'='1",
    'x\\" || true',
    "\\",
    "metadata.topic",
    "*",
    '{"$ne": null}',
    "bio\x00",
    "",
]


@pytest.fixture
def tagged(make_index: Any) -> Any:
    index = make_index()
    index.add_texts(
        ["the cat", "the dog", "the fish", "the bird", "the tree"],
        [
            {"topic": "bio", "n": 1, "flag": True},
            {"topic": "art", "n": 2, "flag": False},
            {"topic": '" or 1==1 or "', "n": 1.0, "a.b": "dotted", "x[0]": "bracket"},
            {"topic": "bio", "n": 3.5, "nested": {"k": "v"}},
            {"topic": "sky"},
        ],
    )
    return index


def _texts(index: Any, flt: Any, mode: str = "dense") -> set[str]:
    return {h.text for h in index.search("the cat", 10, mode=mode, filter=flt)}


def test_dict_filters(tagged: Any) -> None:
    assert _texts(tagged, {"topic": "bio"}) == {"the cat", "the bird"}
    assert _texts(tagged, {"topic": ["art", "sky"]}) == {"the dog", "the tree"}
    assert _texts(tagged, {"topic": "bio", "n": 3.5}) == {"the bird"}
    # numbers match by value (1 == 1.0), bools only match bools
    assert _texts(tagged, {"n": 1}) == {"the cat", "the fish"}
    assert _texts(tagged, {"flag": True}) == {"the cat"}
    assert _texts(tagged, {"flag": False}) == {"the dog"}
    assert _texts(tagged, {"n": [2, 3.5]}) == {"the dog", "the bird"}
    # keys with dots and brackets are literal keys, not paths
    assert _texts(tagged, {"a.b": "dotted"}) == {"the fish"}
    assert _texts(tagged, {"x[0]": "bracket"}) == {"the fish"}
    assert _texts(tagged, {"missing": "x"}) == set()
    for mode in ("sparse", "hybrid", "colbert"):
        assert _texts(tagged, {"topic": "bio"}, mode) <= {"the cat", "the bird"}
        assert "the cat" in _texts(tagged, {"topic": "bio"}, mode)


def test_native_filters_pass_through(tagged: Any) -> None:
    flt = models.Filter(must_not=[models.FieldCondition(key="metadata.topic", match=models.MatchValue(value="bio"))])
    assert to_filter(flt) is flt
    assert _texts(tagged, flt) == {"the dog", "the fish", "the tree"}
    nested = models.Filter(must=[models.FieldCondition(key="metadata.nested.k", match=models.MatchValue(value="v"))])
    assert _texts(tagged, nested, "hybrid") == {"the bird"}


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_only_match_themselves(tagged: Any, value: str) -> None:
    expected = {"the fish"} if value == '" or 1==1 or "' else set()
    assert _texts(tagged, {"topic": value}) == expected
    assert _texts(tagged, {"topic": [value, "sky"]}) == expected | {"the tree"}


@pytest.mark.parametrize("key", ['topic" or 1==1 or "', 'a"b', '"'])
def test_keys_with_quotes_are_refused(tagged: Any, key: str) -> None:
    with pytest.raises(ValueError, match="double quote"):
        tagged.search("the cat", filter={key: "bio"})


@pytest.mark.parametrize("key", ["topic) or (1", "x' or '1", "\\", "topic.*", "a b", "[0]", "ключ"])
def test_hostile_keys_are_literal(tagged: Any, key: str) -> None:
    assert payload_path(key) == f'metadata."{key}"'
    assert _texts(tagged, {key: "bio"}) == set()


def test_bad_filter_values_are_refused(tagged: Any) -> None:
    with pytest.raises(ValueError, match="must be str, int, float or bool"):
        tagged.search("the cat", filter={"topic": {"$ne": "bio"}})
    with pytest.raises(ValueError, match="finite"):
        tagged.search("the cat", filter={"n": float("nan")})
    with pytest.raises(TypeError, match="qdrant_client.models.Filter"):
        to_filter("topic == 'bio'")
    assert to_filter({}) is None and to_filter(None) is None
