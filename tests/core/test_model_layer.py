"""The one model layer: kind detection and load, the shared lazy picklable holder, the rerank
helpers, the staged-batch executor (its CUDA staging logic run on CPU) and the async batcher."""

from __future__ import annotations

import asyncio
import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bge_core import BGEM3Encoder, DenseEncoder, Reranker
from bge_core.errors import ModelNotAvailableError
from bge_core.holder import ModelHolder, as_holder
from bge_core.kinds import (
    KINDS,
    ModelKind,
    ModelKindError,
    ModelSpec,
    detect_kind,
    load,
    register_kind,
)
from bge_core.ranking import check_top_n, colbert_scores, top_n_order
from bge_core.scoring import maxsim

TEXTS = ["the cat", "cancer cells grow in the liver", "", "dog " * 30, "zzz", "blood", "gene protein levels"]


@pytest.fixture(scope="module")
def dense_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bge_core.testing import build_tiny_m3

    return build_tiny_m3(tmp_path_factory.mktemp("ckpt") / "tiny-dense", heads=False, seed=3)


# -- kinds -----------------------------------------------------------------------------------
def test_detect_kind_from_files(tiny_m3_path: Path, dense_path: Path, tiny_reranker_path: Path) -> None:
    assert detect_kind(tiny_m3_path).name == "m3"
    assert detect_kind(dense_path).name == "dense"
    assert detect_kind(tiny_reranker_path).name == "reranker"
    assert detect_kind("BAAI/bge-m3").name == "m3"  # the registry: no file access
    assert detect_kind("BAAI/bge-small-en-v1.5").name == "dense"
    assert detect_kind("BAAI/bge-reranker-v2-m3").name == "reranker"


def test_role_mismatch_says_what_to_do(tiny_reranker_path: Path, tiny_m3_path: Path) -> None:
    with pytest.raises(ModelKindError, match="is a reranker model.*use it as a reranker"):
        detect_kind(tiny_reranker_path, role="embed")
    with pytest.raises(ModelKindError, match="pass a reranker model"):
        detect_kind(tiny_m3_path, role="rerank")
    with pytest.raises(ModelKindError, match="unknown model kind 'colbert'"):
        detect_kind(tiny_m3_path, "colbert")


def test_incomplete_and_unknown_checkpoints_are_refused(tiny_m3_path: Path, tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    shutil.copytree(tiny_m3_path, partial)
    (partial / "sparse_linear.pt").unlink()
    with pytest.raises(ModelKindError, match="colbert_linear but no sparse_linear.*sparse=False"):
        detect_kind(partial)
    decoder = tmp_path / "decoder"
    shutil.copytree(tiny_m3_path, decoder)
    for head in ("sparse_linear.pt", "colbert_linear.pt"):
        (decoder / head).unlink()
    cfg = json.loads((decoder / "config.json").read_text())
    cfg["architectures"] = ["SomeForCausalLM"]
    (decoder / "config.json").write_text(json.dumps(cfg))
    # Any other causal LM is taken for an LLM reranker (its tokenizer is checked on load) and is
    # refused where an embedding model is wanted.
    assert detect_kind(decoder).name == "llm-reranker"
    with pytest.raises(ModelKindError, match="llm-reranker model.*not a model that can embed"):
        detect_kind(decoder, role="embed")


def test_unknown_hub_id_gets_one_answer_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """An uncached hub id offline is "not available" for the CLI and both frameworks alike
    (the LlamaIndex copy used to guess M3 from ``"bge-m3" in name``)."""
    pytest.importorskip("langchain_bge")
    pytest.importorskip("llama_index_bge")
    from bge_core.cli.encoders import model_kind
    from langchain_bge.lazy_models import resolve_kind
    from llama_index_bge.encoder_ref import looks_like_m3

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    name = "someone/my-bge-m3-finetune-not-cached"
    for ask in (lambda: model_kind(name), lambda: resolve_kind(name, "auto"), lambda: looks_like_m3(name)):
        with pytest.raises(ModelNotAvailableError, match="HF_HUB_OFFLINE"):
            ask()


def test_load_picks_the_class(tiny_m3_path: Path, dense_path: Path, tiny_reranker_path: Path) -> None:
    assert type(load(tiny_m3_path, device="cpu", dtype="float32")) is BGEM3Encoder
    assert type(load(dense_path, device="cpu", dtype="float32")) is DenseEncoder
    assert type(load(tiny_reranker_path, device="cpu", dtype="float32")) is Reranker
    assert type(load(tiny_m3_path, "dense", device="cpu", dtype="float32")) is DenseEncoder


class _Custom:
    def __init__(self, name: str, **options: Any) -> None:
        self.name, self.options = name, options


def test_adding_a_kind_is_one_entry(tiny_m3_path: Path, tmp_path: Path) -> None:
    folder = tmp_path / "llm"
    shutil.copytree(tiny_m3_path, folder)
    for head in ("sparse_linear.pt", "colbert_linear.pt"):
        (folder / head).unlink()
    cfg = json.loads((folder / "config.json").read_text())
    cfg["architectures"] = ["TinyForCausalLM"]
    (folder / "config.json").write_text(json.dumps(cfg))
    entry = ModelKind(
        "test-llm",
        "rerank",
        f"{__name__}:_Custom",
        lambda f, c: "TinyForCausalLM" in (c.get("architectures") or []),
        "a test LLM reranker",
    )
    register_kind(entry)
    try:
        obj = load(folder, top=3)
        assert isinstance(obj, _Custom) and obj.options == {"top": 3}
        assert detect_kind(folder, role="rerank") is entry
        with pytest.raises(ValueError, match="already registered"):
            register_kind(entry)
    finally:
        del KINDS["test-llm"]


# -- holder ----------------------------------------------------------------------------------
def test_holder_is_lazy_shared_and_picklable(tiny_m3_path: Path) -> None:
    a = ModelHolder(tiny_m3_path, device="cpu", dtype="float32", batch_size=3)
    b = ModelHolder(str(tiny_m3_path), kind="m3", device="cpu", dtype="float32", batch_size=3)
    copy = pickle.loads(pickle.dumps(a))
    assert not a.loaded and not copy.loaded
    enc = a.get()
    assert b.get() is enc  # equal specs ("auto" resolved to m3) share one model
    after = pickle.loads(pickle.dumps(a))
    assert not after.loaded  # the spec travels, not the model
    assert after.get() is enc  # in this process it joins the shared model
    other = ModelHolder(tiny_m3_path, device="cpu", dtype="float32", batch_size=5)
    assert other.get() is not enc


def test_holder_of_a_given_model_pickles_as_its_spec(m3: BGEM3Encoder) -> None:
    holder = as_holder(m3)
    assert holder.loaded and holder.get() is m3
    assert holder.spec == m3.load_spec
    copy = pickle.loads(pickle.dumps(holder))
    assert not copy.loaded
    assert isinstance(copy.spec, ModelSpec) and copy.spec.kind == "m3"
    np.testing.assert_allclose(copy.get().encode(["the cat"]).dense, m3.encode(["the cat"]).dense, rtol=1e-5, atol=1e-6)
    assert as_holder(holder) is holder
    with pytest.raises(TypeError, match=r"\.encode_outputs"):
        as_holder(object(), check="encode_outputs")


# -- ranking ---------------------------------------------------------------------------------
def test_top_n_order_is_stable_and_cut() -> None:
    assert top_n_order([0.1, 0.9, 0.5, 0.9]) == [1, 3, 2, 0]
    assert top_n_order(np.array([0.1, 0.9, 0.5, 0.9], np.float32), 2) == [1, 3]
    assert top_n_order([]) == []
    for bad in (0, -1, True, 2.0):
        with pytest.raises(ValueError, match="top_n"):
            check_top_n(bad)


def test_colbert_scores_equal_maxsim(m3: BGEM3Encoder) -> None:
    docs = ["the cat", "cancer cells", "blood gene"]
    q = m3.encode(["cat cells"], dense=False, sparse=False, colbert=True).colbert[0]
    d = m3.encode(docs, dense=False, sparse=False, colbert=True).colbert
    assert colbert_scores(m3, "cat cells", docs) == pytest.approx([maxsim(q, x) for x in d], rel=1e-6)
    assert colbert_scores(m3, "x", []) == []


def test_reranker_rerank_uses_top_n(reranker: Reranker) -> None:
    docs = ["the cat", "cancer cells", "blood gene", "dog"]
    scores = reranker.score([("cells", d) for d in docs])
    out = reranker.rerank("cells", docs, top_k=2)
    assert [r.index for r in out] == top_n_order(scores, 2)


# -- staged executor -------------------------------------------------------------------------
def _staged(model: Any) -> None:
    """Route ``model`` through the CUDA staging path (host slots, two alternating buffers),
    with ordinary memory instead of pinned memory so that it runs on CPU."""
    from bge_core.encoder_base import StagedExecutor

    model._runner.executor = StagedExecutor(model._runner, stage=True, pin=False)


def test_staged_executor_matches_direct_path_for_m3(tiny_m3_path: Path) -> None:
    direct = BGEM3Encoder(tiny_m3_path, device="cpu", dtype="float32", batch_size=2)
    staged = BGEM3Encoder(tiny_m3_path, device="cpu", dtype="float32", batch_size=2)
    _staged(staged)
    texts = TEXTS * 3  # many batches: every slot is reused
    a = direct.encode(texts, dense=True, sparse=True, colbert=True)
    b = staged.encode(texts, dense=True, sparse=True, colbert=True)
    assert a.dense is not None and b.dense is not None
    np.testing.assert_array_equal(a.dense, b.dense)
    for x, y in zip(a.sparse, b.sparse):
        np.testing.assert_array_equal(x.indices, y.indices)
        np.testing.assert_array_equal(x.values, y.values)
    for x, y in zip(a.colbert, b.colbert):
        np.testing.assert_array_equal(x, y)


def test_staged_executor_serves_dense_and_reranker(dense_path: Path, tiny_reranker_path: Path) -> None:
    direct = DenseEncoder(dense_path, device="cpu", dtype="float32", batch_size=2, pooling="mean")
    staged = DenseEncoder(dense_path, device="cpu", dtype="float32", batch_size=2, pooling="mean")
    _staged(staged)
    np.testing.assert_array_equal(direct.encode(TEXTS * 2), staged.encode(TEXTS * 2))
    rd = Reranker(tiny_reranker_path, device="cpu", dtype="float32", batch_size=2)
    rs = Reranker(tiny_reranker_path, device="cpu", dtype="float32", batch_size=2)
    _staged(rs)
    pairs = [("cells", t) for t in TEXTS * 2]
    np.testing.assert_array_equal(rd.score(pairs), rs.score(pairs))


def test_executor_pipelines_one_batch_ahead(tiny_m3_path: Path) -> None:
    """Batch i+1 is launched before batch i is collected (the overlap the GPU path relies on)."""
    enc = BGEM3Encoder(tiny_m3_path, device="cpu", dtype="float32", batch_size=1)
    events: list[str] = []
    runner = enc._runner
    real_forward = runner.forward

    def forward(batch: Any, module: Any = None) -> Any:
        events.append("launch")
        return real_forward(batch, module)

    runner.forward = forward  # type: ignore[method-assign]
    real_collect = enc._collect
    enc._collect = lambda batch, result: (events.append("collect"), real_collect(batch, result))[1]  # type: ignore[method-assign]
    enc.encode(["a", "b b", "c c c"], dense=True, sparse=False)
    assert events == ["launch", "launch", "collect", "launch", "collect", "collect"]


def test_dense_text_instruction_and_m3_refuses_instructions(dense_path: Path, tiny_m3_path: Path) -> None:
    plain = DenseEncoder(dense_path, device="cpu", dtype="float32")
    prefixed = DenseEncoder(dense_path, device="cpu", dtype="float32", text_instruction="passage: ")
    np.testing.assert_allclose(
        prefixed.encode_documents(["the cat"]), plain.encode(["passage: the cat"]), rtol=1e-5, atol=1e-6
    )
    with pytest.raises(ValueError, match="no query instruction"):
        BGEM3Encoder(tiny_m3_path, device="cpu", query_instruction="query: ")
    raw = BGEM3Encoder(tiny_m3_path, device="cpu", dtype="float32", normalize=False).encode(["the cat"], sparse=False)
    assert raw.dense is not None and not np.allclose(np.linalg.norm(raw.dense), 1.0, atol=1e-3)


def _tag(texts: list[str], query: bool) -> list[str]:
    return [("q:" if query else "d:") + t for t in texts]


# -- async batcher ---------------------------------------------------------------------------
async def test_dynamic_batcher_joins_concurrent_requests() -> None:
    from bge_core.async_batching import DynamicBatcher

    seen: list[tuple[int, bool]] = []

    def fn(texts: list[str], query: bool) -> list[str]:
        seen.append((len(texts), query))
        return [("q:" if query else "d:") + t for t in texts]

    batcher: DynamicBatcher[str] = DynamicBatcher(fn)
    requests = [[f"{i}-{j}" for j in range(32)] for i in range(4)]
    results = await asyncio.gather(
        *(batcher.submit(r, query=False) for r in requests), batcher.submit(["x"], query=True)
    )
    assert results[:4] == [["d:" + t for t in r] for r in requests]
    assert results[4] == ["q:x"]
    assert seen == [(128, False), (1, True)]  # four requests, one call; queries kept apart
    copy = pickle.loads(pickle.dumps(DynamicBatcher(_tag)))
    assert await copy.submit(["y"], query=True) == ["q:y"]


async def test_dynamic_batcher_hands_errors_to_every_caller() -> None:
    from bge_core.async_batching import DynamicBatcher

    def fn(texts: list[str], query: bool) -> list[str]:
        raise RuntimeError("boom")

    batcher: DynamicBatcher[str] = DynamicBatcher(fn)
    results = await asyncio.gather(
        batcher.submit(["a"], query=False), batcher.submit(["b"], query=False), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
