"""BGEM3Encoder / DenseEncoder / Reranker behaviour: bad input, order, threads, loading."""

from __future__ import annotations

import logging
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from bge_core import BGEM3Encoder, M3Output, SparseVector
from bge_core.errors import ModelFilesError, ModelNotAvailableError

TEXTS = ["the cat", "cancer cells grow in the liver", "", "dog " * 30, "zzz", "blood"]


def test_outputs_have_documented_shapes(m3: BGEM3Encoder) -> None:
    out = m3.encode(TEXTS, dense=True, sparse=True, colbert=True)
    assert isinstance(out, M3Output)
    assert out.dense is not None and out.dense.dtype == np.float32 and out.dense.shape == (len(TEXTS), m3.dim)
    assert np.allclose(np.linalg.norm(out.dense, axis=1), 1.0, atol=1e-5)
    lengths = m3.count_tokens(TEXTS)
    for sv, cb, n in zip(out.sparse, out.colbert, lengths):
        assert sv.indices.dtype == np.int32 and sv.values.dtype == np.float32
        assert np.all(np.diff(sv.indices) > 0) and np.all(sv.values > 0)
        assert cb.shape == (n - 1, m3.colbert_dim)
        assert np.allclose(np.linalg.norm(cb, axis=1), 1.0, atol=1e-5)
    assert len(out.sparse[2]) == 0  # "" has only special tokens


def test_only_requested_outputs(m3: BGEM3Encoder) -> None:
    out = m3.encode(["the cat"], dense=False, sparse=True, colbert=False)
    assert out.dense is None and len(out.sparse) == 1 and out.colbert == []
    with pytest.raises(ValueError, match="at least one output"):
        m3.encode(["x"], dense=False, sparse=False, colbert=False)


def test_one_forward_pass_for_all_outputs(m3: BGEM3Encoder) -> None:
    calls = []
    handle = m3.model.register_forward_hook(lambda mod, args, kwargs_out: calls.append(1))
    try:
        m3.encode(["the cat", "the dog"], dense=True, sparse=True, colbert=True)
    finally:
        handle.remove()
    assert len(calls) == 1


def test_order_is_restored_across_batches(m3: BGEM3Encoder) -> None:
    texts = [("cell " * (i % 7 + 1)).strip() for i in range(23)]
    together = m3.encode(texts, colbert=True)
    alone = [m3.encode([t], colbert=True) for t in texts]
    assert together.dense is not None
    for i, single in enumerate(alone):
        assert single.dense is not None
        assert np.abs(together.dense[i] - single.dense[0]).max() < 1e-5
        assert together.sparse[i].to_dict().keys() == single.sparse[0].to_dict().keys()
        assert together.colbert[i].shape == single.colbert[0].shape


@pytest.mark.parametrize(
    "bad, match",
    [
        ("a str", "list of strings"),
        (None, "list of strings"),
        (["ok", None], r"texts\[1\]"),
        (["ok", 3], r"texts\[1\] is int"),
    ],
)
def test_bad_input_is_refused(m3: BGEM3Encoder, bad: object, match: str) -> None:
    with pytest.raises(TypeError, match=match):
        m3.encode(bad)  # type: ignore[arg-type]


def test_empty_list_and_empty_string(m3: BGEM3Encoder) -> None:
    empty = m3.encode([], colbert=True)
    assert len(empty) == 0 and empty.dense is not None and empty.dense.shape == (0, m3.dim)
    one = m3.encode([""], colbert=True)
    assert one.sparse == [SparseVector.empty()] and one.colbert[0].shape[0] == 1  # the </s> vector


def test_overlong_text_is_truncated_with_one_warning(tiny_m3_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    enc = BGEM3Encoder(tiny_m3_path, device="cpu", dtype="float32", max_length=16)
    with caplog.at_level(logging.WARNING, logger="bge_core"):
        out = enc.encode(["cell " * 100, "gene " * 100, "the cat"], colbert=True)
    warnings = [r for r in caplog.records if "truncated" in r.getMessage()]
    assert len(warnings) == 1 and "2 of 3" in warnings[0].getMessage()
    assert out.colbert[0].shape[0] == 15


def test_8192_tokens_encode_on_cpu(m3: BGEM3Encoder) -> None:
    text = " ".join(["protein"] * 9000)
    out = m3.encode([text, "the cat"], colbert=True)
    assert out.colbert[0].shape == (8191, m3.colbert_dim)
    assert m3.count_tokens([text]) == [8192]


def test_iter_encode_streams_in_order(m3: BGEM3Encoder) -> None:
    texts = (f"cell {i % 5} gene" for i in range(11))
    parts = list(m3.iter_encode(texts, chunk_size=4))
    assert [len(p) for p in parts] == [4, 4, 3]
    joined = M3Output.concat(parts)
    ref = m3.encode([f"cell {i % 5} gene" for i in range(11)])
    assert joined.dense is not None and ref.dense is not None
    assert np.abs(joined.dense - ref.dense).max() < 1e-5


def test_concurrent_encode_from_threads(m3: BGEM3Encoder) -> None:
    texts = [f"{w} cells and the {v}" for w in ("blood", "liver", "heart") for v in ("gene", "drug", "risk", "cat")]
    expected = m3.encode(texts, colbert=True)
    assert expected.dense is not None
    barrier = threading.Barrier(6)

    def work(i: int) -> M3Output:
        barrier.wait()
        sub = texts[i:] + texts[:i]
        return m3.encode(sub, colbert=True)

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(work, range(6)))
    for i, out in enumerate(results):
        assert out.dense is not None
        rolled = np.roll(expected.dense, -i, axis=0)
        assert np.abs(out.dense - rolled).max() < 1e-5


def test_missing_head_is_refused(tiny_m3_path: Path, tmp_path: Path) -> None:
    broken = tmp_path / "no-colbert"
    shutil.copytree(tiny_m3_path, broken)
    (broken / "colbert_linear.pt").unlink()
    with pytest.raises(ModelFilesError, match="colbert_linear.pt"):
        BGEM3Encoder(broken, device="cpu", dtype="float32")
    enc = BGEM3Encoder(broken, device="cpu", dtype="float32", colbert=False)
    assert not enc.supports_colbert
    with pytest.raises(ValueError, match="colbert=False"):
        enc.encode(["x"], colbert=True)


class _Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (print, ("pwned",))


def test_tampered_head_is_refused(tiny_m3_path: Path, tmp_path: Path) -> None:
    import torch

    bad = tmp_path / "tampered"
    shutil.copytree(tiny_m3_path, bad)
    torch.save({"weight": torch.zeros(32, 32), "evil": _Evil()}, bad / "sparse_linear.pt")
    with pytest.raises(ModelFilesError, match="weights_only"):
        BGEM3Encoder(bad, device="cpu", dtype="float32")


def test_missing_model_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelNotAvailableError, match="HF_HUB_OFFLINE"):
        BGEM3Encoder("BAAI/bge-m3-not-cached")
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        BGEM3Encoder(str(tmp_path / "nope"))


def test_dtype_and_device_validation(tiny_m3_path: Path) -> None:
    with pytest.raises(ValueError, match="dtype"):
        BGEM3Encoder(tiny_m3_path, device="cpu", dtype="float8")
    bf16 = BGEM3Encoder(tiny_m3_path, device="cpu", dtype="bfloat16")
    fp32 = BGEM3Encoder(tiny_m3_path, device="cpu", dtype="float32")
    a, b = bf16.encode(TEXTS), fp32.encode(TEXTS)
    assert a.dense is not None and b.dense is not None and a.dense.dtype == np.float32
    assert float(np.min(np.sum(a.dense * b.dense, axis=1))) > 0.99


def test_auto_dtype_follows_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from bge_core import runtime

    runtime.cpu_has_native_bf16.cache_clear()
    monkeypatch.setenv("BGE_CPU_BF16", "0")
    assert runtime.resolve_dtype("auto", torch.device("cpu")) == torch.float32
    runtime.cpu_has_native_bf16.cache_clear()
    monkeypatch.setenv("BGE_CPU_BF16", "1")
    assert runtime.resolve_dtype("auto", torch.device("cpu")) == torch.bfloat16
    runtime.cpu_has_native_bf16.cache_clear()


def test_reranker_rerank_and_bad_input(reranker) -> None:  # type: ignore[no-untyped-def]
    docs = ["the cat is in the water", "blood cells", "the dog"]
    results = reranker.rerank("the cat", docs)
    scores = reranker.score([("the cat", d) for d in docs])
    assert [r.index for r in results] == list(np.argsort(-scores, kind="stable"))
    assert results[0].text == docs[results[0].index]
    assert len(reranker.rerank("the cat", docs, top_k=1)) == 1
    with pytest.raises(TypeError, match="list of"):
        reranker.score(("the cat", "x"))
    assert reranker.score([]).shape == (0,)


@pytest.mark.slow  # loads the real all-MiniLM-L6-v2 weights
def test_minilm_matches_sentence_transformers(minilm_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from bge_core import DenseEncoder

    texts = ["A man is eating food.", "Ribosomes translate mRNA into protein.", "", "日本語のテキスト", "x" * 3000]
    ours = DenseEncoder(minilm_path, device="cpu", dtype="float32")
    assert ours.pooling == "mean" and ours.max_length == 256 and ours.query_instruction == ""
    ref = SentenceTransformer(str(minilm_path), device="cpu").encode(texts, normalize_embeddings=True)
    cos = np.sum(ours.encode(texts) * ref, axis=1)
    assert float(cos.min()) >= 0.9999
