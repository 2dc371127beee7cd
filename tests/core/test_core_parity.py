"""Numerical parity with FlagEmbedding 1.4 (the reference implementation) on tiny checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

FlagEmbedding = pytest.importorskip("FlagEmbedding", reason="FlagEmbedding is the test-time reference")

TEXTS = [
    "the cat is on the mat",
    "cancer cells grow in the liver and the blood of the patients in the study",
    "",
    "a",
    "zzz qqq xyz",
    " ".join(["gene protein cell"] * 40),
    "the the the the dog dog",
    "dense sparse hybrid retrieval with colbert rerank and fusion score",
]


@pytest.fixture(scope="module")
def flag_m3(tiny_m3_path):  # type: ignore[no-untyped-def]
    return FlagEmbedding.BGEM3FlagModel(str(tiny_m3_path), use_fp16=False, devices="cpu")


@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_m3_encode_matches_flagembedding(tiny_m3_path, flag_m3, batch_size):  # type: ignore[no-untyped-def]
    from bge_core import BGEM3Encoder

    enc = BGEM3Encoder(tiny_m3_path, device="cpu", dtype="float32", batch_size=batch_size, max_length=64)
    ours = enc.encode(TEXTS, dense=True, sparse=True, colbert=True)
    ref = flag_m3.encode(
        TEXTS,
        batch_size=batch_size,
        max_length=64,
        return_dense=True,
        return_sparse=True,
        return_colbert_vecs=True,
    )
    assert ours.dense is not None
    assert np.abs(ours.dense - ref["dense_vecs"]).max() <= 1e-5
    for mine, theirs in zip(ours.sparse, ref["lexical_weights"]):
        theirs_d = {int(k): float(v) for k, v in theirs.items()}
        assert set(mine.to_dict()) == set(theirs_d)
        for key, value in mine.to_dict().items():
            assert abs(value - theirs_d[key]) <= 1e-5
    assert any(len(s) > 0 for s in ours.sparse)
    for mine_c, theirs_c in zip(ours.colbert, ref["colbert_vecs"]):
        assert mine_c.shape == theirs_c.shape
        assert np.abs(mine_c - theirs_c).max() <= 1e-5


def test_m3_compute_score_matches_flagembedding(m3, flag_m3):  # type: ignore[no-untyped-def]
    pairs = [(TEXTS[0], TEXTS[1]), (TEXTS[6], TEXTS[0]), (TEXTS[7], TEXTS[5]), ("cat", "the cat")]
    weights = [0.4, 0.2, 0.4]
    ours = m3.compute_score(pairs, weights, max_query_length=32, max_passage_length=64)
    ref = flag_m3.compute_score(pairs, max_query_length=32, max_passage_length=64, weights_for_different_modes=weights)
    for key in ("dense", "sparse", "colbert", "sparse+dense", "colbert+sparse+dense"):
        assert np.abs(np.array(ours[key]) - np.array(ref[key])).max() <= 1e-5, key


def test_dense_encoder_matches_flagmodel(tiny_m3_path):  # type: ignore[no-untyped-def]
    from bge_core import DenseEncoder

    instruction = "Represent this sentence for searching relevant passages: "
    ours = DenseEncoder(
        tiny_m3_path, device="cpu", dtype="float32", batch_size=3, query_instruction=instruction, max_length=64
    )
    ref = FlagEmbedding.FlagModel(
        str(tiny_m3_path),
        use_fp16=False,
        devices="cpu",
        pooling_method="cls",
        query_instruction_for_retrieval=instruction,
        passage_max_length=64,
        query_max_length=64,
    )
    queries = [t for t in TEXTS if t]
    assert np.abs(ours.encode_queries(queries) - ref.encode_queries(queries)).max() <= 1e-5
    assert np.abs(ours.encode_documents(TEXTS) - ref.encode_corpus(TEXTS)).max() <= 1e-5


@pytest.mark.parametrize("max_length", [20, 48])
def test_reranker_matches_flagreranker(tiny_reranker_path, max_length):  # type: ignore[no-untyped-def]
    from bge_core import Reranker

    # Texts stay inside the tiny vocabulary: FlagReranker on transformers 5 re-tokenises decoded ids.
    pairs = [
        (
            "the cat is in the water",
            "the dog is in the fire and the cat is in the water with more data for a long test",
        ),
        ("cancer cells", "blood cells in the liver"),
        (" ".join(["the cat is in the water"] * 6), "dog"),
        ("gene", " ".join(["protein levels in mice"] * 10)),
    ]
    ours = Reranker(tiny_reranker_path, device="cpu", dtype="float32", max_length=max_length, batch_size=2)
    ref = FlagEmbedding.FlagReranker(str(tiny_reranker_path), use_fp16=False, devices="cpu", max_length=max_length)
    expected = np.array(ref.compute_score(pairs, max_length=max_length))
    assert np.abs(ours.score(pairs) - expected).max() <= 1e-5
    normed = np.array(ref.compute_score(pairs, max_length=max_length, normalize=True))
    assert np.abs(ours.score(pairs, normalize=True) - normed).max() <= 1e-5
