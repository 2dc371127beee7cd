"""Property-based tests of the encoder over hostile text (issue: reliability)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bge_core import BGEM3Encoder

SPECIAL = st.sampled_from(
    [
        "",
        " ",
        "\t\n\r  \u3000",
        "\x00\x01\x1b[31m\x7f",
        "😀🚀👩‍👩‍👧‍👦 emoji",
        "مرحبا بالعالم",
        "שלום עולם \u202e reversed",
        "\ud7ff\ue000\uffff",
        "the cat " * 50,
        "a" * 100_000,
        "e\u0301\u0301\u0301",
        "日本語のテキスト",
    ]
)
TEXT = st.one_of(st.text(max_size=300), SPECIAL)


def _check(enc: BGEM3Encoder, texts: list[str]) -> None:
    out = enc.encode(texts, dense=True, sparse=True, colbert=True)
    assert out.dense is not None and out.dense.shape == (len(texts), enc.dim)
    assert np.all(np.isfinite(out.dense))
    assert np.allclose(np.linalg.norm(out.dense, axis=1), 1.0, atol=1e-4)
    lengths = enc.count_tokens(texts)
    for sv, cb, n in zip(out.sparse, out.colbert, lengths):
        assert np.all(np.diff(sv.indices) > 0) and np.all(sv.values > 0) and np.all(np.isfinite(sv.values))
        assert cb.shape == (n - 1, enc.colbert_dim)
        assert np.all(np.isfinite(cb))
    # Order follows the input: encoding the reversed list gives the reversed outputs.
    rev = enc.encode(texts[::-1], dense=True, sparse=True, colbert=False)
    assert rev.dense is not None
    assert np.abs(rev.dense[::-1] - out.dense).max() < 1e-4
    assert [s.to_dict().keys() for s in rev.sparse[::-1]] == [s.to_dict().keys() for s in out.sparse]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(texts=st.lists(TEXT, min_size=1, max_size=6))
def test_encoding_hostile_text_keeps_invariants(m3: BGEM3Encoder, texts: list[str]) -> None:
    _check(m3, texts)


@pytest.mark.slow
@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(texts=st.lists(TEXT, min_size=1, max_size=12))
def test_encoding_hostile_text_keeps_invariants_long(m3: BGEM3Encoder, texts: list[str]) -> None:
    _check(m3, texts)


def test_asyncio_and_threads_match_sequential(m3: BGEM3Encoder) -> None:
    texts = [f"{a} {b}" for a in ("cell", "gene", "blood", "drug") for b in ("the cat", "risk", "mice")]
    expected = [m3.encode([t], colbert=True) for t in texts]

    async def main() -> list:  # type: ignore[type-arg]
        return await asyncio.gather(*(asyncio.to_thread(m3.encode, [t], colbert=True) for t in texts))

    got = asyncio.run(main())
    for e, g in zip(expected, got):
        assert e.dense is not None and g.dense is not None
        assert np.abs(e.dense - g.dense).max() < 1e-5
        assert e.sparse[0] == g.sparse[0]
        assert np.abs(e.colbert[0] - g.colbert[0]).max() < 1e-5
