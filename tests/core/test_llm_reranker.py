"""LLM rerankers (gemma Yes-logit, MiniCPM layer-wise, Gemma-2 lightweight) equal FlagEmbedding 1.4.2.

FlagEmbedding's ``LayerWiseFlagLLMReranker`` and ``LightWeightFlagLLMReranker`` cannot run on
transformers 5 as shipped (see ``_flag_layerwise`` / ``_flag_lightweight``); the reference
here is FlagEmbedding's own code with the smallest shims that let it run, each commented.
"""

from __future__ import annotations

import random
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bge_core import Reranker
from bge_core.llm_reranker import (
    LayerwiseLLMReranker,
    LightweightLLMReranker,
    LLMReranker,
    RerankerKindError,
)
from bge_core.testing_llm import (
    LLM_WORDS,
    build_tiny_layerwise_reranker,
    build_tiny_lightweight_reranker,
    build_tiny_llm_reranker,
)

pytest.importorskip("FlagEmbedding")
warnings.filterwarnings("ignore", category=UserWarning)

MAX_LENGTH = 40  # small, so that queries and passages get truncated
LAYERWISE = {"cutoff_layers": [2, 3, 4]}
LIGHTWEIGHT = {"cutoff_layers": [3, 4], "compress_ratio": 2, "compress_layers": [2]}


def _pairs(n: int = 40, seed: int = 0) -> list[tuple[str, str]]:
    """Mixed lengths (1 to 70 words; some over MAX_LENGTH), all inside the tiny vocabulary."""
    rng = random.Random(seed)
    words = [w for w in LLM_WORDS if w.isalpha()]
    pairs = []
    for i in range(n):
        q = " ".join(rng.choice(words) for _ in range(rng.randint(1, 12 if i % 5 else 45)))
        p = " ".join(rng.choice(words) for _ in range(rng.randint(1, 70)))
        pairs.append((q, p.capitalize() + "."))
    pairs.append(("the cat", ""))
    return pairs


PAIRS = _pairs()


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    """One intra-op thread: on a busy shared CPU, tiny models crawl when OpenMP threads spin."""
    import os

    import torch

    saved_env, saved_threads = os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads()
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved_threads)
    if saved_env is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = saved_env


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("llm")
    return {
        "llm": build_tiny_llm_reranker(root / "gemma"),
        "llm_right": build_tiny_llm_reranker(root / "gemma-right", padding_side="right", seed=1),
        "no_yes": build_tiny_llm_reranker(root / "no-yes", yes_token=False),
        "layerwise": build_tiny_layerwise_reranker(root / "minicpm"),
        "lightweight": build_tiny_lightweight_reranker(root / "gemma2"),
    }


# -- FlagEmbedding references ---------------------------------------------------------------------


def _flag_llm(path: Path) -> Any:
    from FlagEmbedding import FlagLLMReranker

    return FlagLLMReranker(str(path), devices="cpu", max_length=MAX_LENGTH)


def _flag_layerwise(path: Path) -> Any:
    """As shipped, on transformers 5.23 it fails with ``KeyError: 'type'`` at
    ``self.config.rope_scaling["type"]`` (transformers 5 fills ``rope_scaling`` with
    ``{'rope_theta', 'rope_type'}``), then ``AttributeError: ... DynamicCache has no attribute
    'from_legacy_cache'``, then returns NaN (from_pretrained leaves the non-persistent rotary
    buffers uninitialised). Shims: rope_scaling=None, use_cache=False, rotary buffers rebuilt."""
    import torch
    from FlagEmbedding import LayerWiseFlagLLMReranker
    from FlagEmbedding.inference.reranker.decoder_only import layerwise
    from FlagEmbedding.inference.reranker.decoder_only.models.configuration_minicpm_reranker import (
        LayerWiseMiniCPMConfig,
    )
    from FlagEmbedding.inference.reranker.decoder_only.models.modeling_minicpm_reranker import (
        LayerWiseMiniCPMForCausalLM,
    )

    class Loader:
        @staticmethod
        def from_pretrained(name: str, **kwargs: Any) -> Any:
            config = LayerWiseMiniCPMConfig.from_pretrained(name)
            config.rope_scaling = None
            config.use_cache = False
            model = LayerWiseMiniCPMForCausalLM.from_pretrained(name, config=config, **kwargs)
            for layer in model.model.layers:
                rot = layer.self_attn.rotary_emb
                rot.inv_freq = 1.0 / (rot.base ** (torch.arange(0, rot.dim, 2).float() / rot.dim))
                rot._set_cos_sin_cache(rot.max_position_embeddings, rot.inv_freq.device, torch.float32)
            return model

    saved = layerwise.LayerWiseMiniCPMForCausalLM
    layerwise.LayerWiseMiniCPMForCausalLM = Loader  # type: ignore[misc,assignment]
    try:
        ref = LayerWiseFlagLLMReranker(str(path), devices="cpu", max_length=MAX_LENGTH)
    finally:
        layerwise.LayerWiseMiniCPMForCausalLM = saved  # type: ignore[misc]
    ref.use_fp16 = False  # it forces fp16 when neither fp16 nor bf16 is asked for; CPU runs fp32
    ref.model.float()
    return ref


def _flag_lightweight(path: Path) -> Any:
    """As shipped, on transformers 5.23 it fails with ``TypeError: cannot unpack non-iterable
    NoneType object`` at ``cos, sin = position_embeddings`` (transformers 5's Gemma2DecoderLayer
    wants rotary embeddings from the caller; FlagEmbedding's CostWiseGemmaModel passes
    position_ids) and transformers 5 layers return a tensor where it indexes a tuple. Shim:
    each decoder layer gets position embeddings from Gemma2RotaryEmbedding and returns a tuple;
    eager attention (the one with Gemma-2's logit soft-capping)."""
    from FlagEmbedding import LightWeightFlagLLMReranker
    from FlagEmbedding.inference.reranker.decoder_only.models import gemma_model
    from transformers.models.gemma2.modeling_gemma2 import Gemma2RotaryEmbedding

    original = gemma_model.CostWiseGemmaForCausalLM

    class Loader:
        @staticmethod
        def from_pretrained(name: str, **kwargs: Any) -> Any:
            config = gemma_model.CostWiseGemmaConfig.from_pretrained(name)
            config.use_cache = False
            config._attn_implementation = "eager"
            model = original.from_pretrained(name, config=config, **kwargs)
            rotary = Gemma2RotaryEmbedding(config=config)
            for layer in model.model.layers:

                def forward(
                    self: Any, hidden: Any, *args: Any, _fwd: Any = layer.forward, position_ids: Any = None, **kw: Any
                ) -> Any:
                    pe = rotary(hidden, position_ids.expand(hidden.shape[0], -1))
                    return (_fwd(hidden, *args, position_embeddings=pe, position_ids=position_ids, **kw),)

                layer.forward = types.MethodType(forward, layer)
            return model

    gemma_model.CostWiseGemmaForCausalLM = Loader  # type: ignore[misc,assignment]
    try:
        ref = LightWeightFlagLLMReranker(str(path), devices="cpu", max_length=MAX_LENGTH)
    finally:
        gemma_model.CostWiseGemmaForCausalLM = original  # type: ignore[misc]
    ref.use_fp16 = False
    ref.model.float()
    return ref


@pytest.fixture(scope="module")
def flag_scores(ckpts: dict[str, Path]) -> dict[str, np.ndarray]:
    """FlagEmbedding's raw scores (batch size 7), shape (layers, pairs)."""
    out = {
        "llm": np.asarray([_flag_llm(ckpts["llm"]).compute_score(PAIRS, batch_size=7)]),
        "llm_right": np.asarray([_flag_llm(ckpts["llm_right"]).compute_score(PAIRS, batch_size=7)]),
        "layerwise": np.asarray(_flag_layerwise(ckpts["layerwise"]).compute_score(PAIRS, batch_size=7, **LAYERWISE)),
        "lightweight": np.asarray(
            _flag_lightweight(ckpts["lightweight"]).compute_score(PAIRS, batch_size=7, **LIGHTWEIGHT)
        ),
    }
    return {k: v.astype(np.float64) for k, v in out.items()}


OPTIONS = {"llm": {}, "llm_right": {}, "layerwise": LAYERWISE, "lightweight": LIGHTWEIGHT}
CLASSES = {
    "llm": LLMReranker,
    "llm_right": LLMReranker,
    "layerwise": LayerwiseLLMReranker,
    "lightweight": LightweightLLMReranker,
}


def _ours(path: Path, name: str, batch_size: int) -> Any:
    return Reranker(path, device="cpu", dtype="float32", max_length=MAX_LENGTH, batch_size=batch_size, **OPTIONS[name])


# -- parity ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(OPTIONS))
@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_scores_equal_flagembedding(
    ckpts: dict[str, Path], flag_scores: dict[str, np.ndarray], name: str, batch_size: int
) -> None:
    ours = _ours(ckpts[name], name, batch_size)
    assert type(ours) is CLASSES[name]
    ref = flag_scores[name]
    assert ref.shape == (len(OPTIONS[name].get("cutoff_layers", [0])), len(PAIRS))
    assert np.ptp(ref[-1]) > 0.05, "degenerate reference scores: the test could not catch a bug"
    raw = ours.score(PAIRS)
    assert raw.dtype == np.float32 and raw.shape == (len(PAIRS),)
    np.testing.assert_allclose(raw, ref[-1], atol=1e-4, rtol=0)
    sig = 1.0 / (1.0 + np.exp(-ref[-1]))
    np.testing.assert_allclose(ours.score(PAIRS, normalize=True), sig, atol=1e-4, rtol=0)
    if name in ("layerwise", "lightweight"):
        layers = ours.score_layers(PAIRS)
        assert layers.shape == ref.shape and ours.layers == OPTIONS[name]["cutoff_layers"]
        np.testing.assert_allclose(layers, ref, atol=1e-4, rtol=0)
        np.testing.assert_allclose(ours.score_layers(PAIRS, normalize=True), 1 / (1 + np.exp(-ref)), atol=1e-4)


def test_lightweight_compression_changes_scores_and_matches(ckpts: dict[str, Path]) -> None:
    """Compression at two layers with ratio 4 (FlagEmbedding's model-card style call)."""
    options = {"cutoff_layers": [2, 3, 4], "compress_ratio": 4, "compress_layers": [1, 3]}
    ref = np.asarray(_flag_lightweight(ckpts["lightweight"]).compute_score(PAIRS[:12], batch_size=5, **options))
    ours = LightweightLLMReranker(ckpts["lightweight"], device="cpu", dtype="float32", max_length=MAX_LENGTH, **options)
    np.testing.assert_allclose(ours.score_layers(PAIRS[:12]), ref, atol=1e-4)
    plain = LightweightLLMReranker(
        ckpts["lightweight"], device="cpu", dtype="float32", max_length=MAX_LENGTH, cutoff_layers=[2, 3, 4]
    )
    assert not np.allclose(plain.score_layers(PAIRS[:12])[1:], ref[1:], atol=1e-3)


def test_prompt_and_default_layer(ckpts: dict[str, Path]) -> None:
    from FlagEmbedding import FlagLLMReranker

    prompt = "Is passage B about query A? Yes or No."
    ref = FlagLLMReranker(str(ckpts["llm"]), devices="cpu", prompt=prompt).compute_score(PAIRS[:6])
    ours = Reranker(ckpts["llm"], device="cpu", dtype="float32", prompt=prompt)
    np.testing.assert_allclose(ours.score(PAIRS[:6]), ref, atol=1e-4)
    default = Reranker(ckpts["llm"], device="cpu", dtype="float32")
    assert not np.allclose(default.score(PAIRS[:6]), ref, atol=1e-3)
    layerwise = Reranker(ckpts["layerwise"], device="cpu", dtype="float32")
    assert layerwise.layers == [4]  # default: the last layer, as FlagEmbedding


# -- recognition and refusals ------------------------------------------------------------------------


def test_refuses_what_it_cannot_serve(ckpts: dict[str, Path], tiny_reranker_path: Path, tiny_m3_path: Path) -> None:
    with pytest.raises(RerankerKindError, match="BGE-M3 encoder.*BGEM3Encoder"):
        Reranker(tiny_m3_path, device="cpu")
    with pytest.raises(RerankerKindError, match="cross-encoder reranker.*not an LLM reranker"):
        LLMReranker(tiny_reranker_path, device="cpu")
    with pytest.raises(RerankerKindError, match="no single 'Yes' token"):
        Reranker(ckpts["no_yes"], device="cpu")
    with pytest.raises(RerankerKindError, match="layer-wise MiniCPM reranker.*not a lightweight"):
        LightweightLLMReranker(ckpts["layerwise"], device="cpu")
    with pytest.raises(RerankerKindError, match="unknown reranker kind 'colbert'"):
        Reranker(ckpts["llm"], kind="colbert")
    with pytest.raises(ValueError, match=r"cutoff_layers \[9\] have no head.*\[2, 3, 4\]"):
        Reranker(ckpts["layerwise"], device="cpu", cutoff_layers=[9])
    with pytest.raises(ValueError, match="compress_ratio must be 1, 2, 4 or 8"):
        Reranker(ckpts["lightweight"], device="cpu", compress_ratio=3)


def test_refusal_happens_before_weights_load(ckpts: dict[str, Path], tmp_path: Path, tiny_m3_path: Path) -> None:
    import shutil

    no_weights = tmp_path / "no-yes"
    shutil.copytree(ckpts["no_yes"], no_weights)
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(RerankerKindError, match="no single 'Yes' token"):
        Reranker(no_weights, device="cpu")
    encoder = tmp_path / "m3"
    shutil.copytree(tiny_m3_path, encoder)
    (encoder / "model.safetensors").unlink()
    with pytest.raises(RerankerKindError, match="BGE-M3"):
        Reranker(encoder)


def test_dispatch_keeps_cross_encoders_and_forces_kind(ckpts: dict[str, Path], tiny_reranker_path: Path) -> None:
    cross = Reranker(tiny_reranker_path, device="cpu", dtype="float32")
    assert type(cross) is Reranker and cross.score([("a", "b")]).shape == (1,)
    forced = Reranker(tiny_reranker_path, device="cpu", dtype="float32", kind="reranker")
    assert type(forced) is Reranker
    llm = Reranker(ckpts["llm"], device="cpu", dtype="float32", kind="llm-reranker")
    assert isinstance(llm, Reranker) and llm.kind == "llm-reranker"


def test_empty_and_bad_input(ckpts: dict[str, Path]) -> None:
    ours = Reranker(ckpts["layerwise"], device="cpu", dtype="float32", **LAYERWISE)
    assert ours.score([]).shape == (0,) and ours.score_layers([]).shape == (3, 0)
    with pytest.raises(TypeError, match="wrap it"):
        ours.score(("q", "p"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"pairs\[0\]"):
        ours.score([("q",)])  # type: ignore[list-item]


def test_rerank_orders_by_score(ckpts: dict[str, Path]) -> None:
    ours = Reranker(ckpts["lightweight"], device="cpu", dtype="float32", **LIGHTWEIGHT)
    docs = [p for _, p in PAIRS[:8]]
    results = ours.rerank("the cat", docs, top_k=3)
    scores = ours.score([("the cat", d) for d in docs])
    assert [r.index for r in results] == list(np.argsort(-scores, kind="stable")[:3])
    assert results[0].score == pytest.approx(float(scores.max()), abs=1e-6)


def test_progress_bar_on_long_calls(ckpts: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    ours = Reranker(ckpts["llm"], device="cpu", dtype="float32", batch_size=2)
    ours.score(PAIRS)
    assert "reranking" in capsys.readouterr().err
    ours.score(PAIRS[:4])
    assert "reranking" not in capsys.readouterr().err


# -- through the index and the framework adapters -----------------------------------------------------


def test_index_search_reranks_with_llm_rerankers(m3: Any, ckpts: dict[str, Path], corpus: list[str]) -> None:
    from bge_core.index import VectorIndex
    from bge_core.reference import InMemoryStore

    idx = VectorIndex(InMemoryStore(), m3)
    idx.add_texts(corpus)
    query = "cancer cells in the liver"
    for name in ("llm", "layerwise", "lightweight"):
        reranker = _ours(ckpts[name], name, 8)
        hits = idx.search(query, 3, rerank=reranker)
        scores = reranker.score([(query, h.text) for h in hits])
        assert np.allclose([h.score for h in hits], scores, atol=1e-6)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert all("rerank" in h.scores for h in hits)


def test_langchain_and_llama_index_rerankers_accept_them(ckpts: dict[str, Path]) -> None:
    pytest.importorskip("langchain_core")
    from langchain_core.documents import Document

    from langchain_bge import BGERerank

    docs = [Document(page_content=p) for _, p in PAIRS[:6]]
    reranker = _ours(ckpts["layerwise"], "layerwise", 8)
    out = BGERerank(reranker=reranker, top_n=2).compress_documents(docs, "the cat")
    expected = reranker.score([("the cat", d.page_content) for d in docs])
    assert [d.metadata["relevance_score"] for d in out] == pytest.approx(sorted(expected, reverse=True)[:2], abs=1e-6)
    by_name = BGERerank(model=str(ckpts["llm"]), device="cpu", dtype="float32", top_n=2)
    assert type(by_name.cross_encoder) is LLMReranker

    pytest.importorskip("llama_index.core")
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    from llama_index_bge import BGERerank as LIRerank

    nodes = [NodeWithScore(node=TextNode(text=p)) for _, p in PAIRS[:6]]
    li = LIRerank(reranker=reranker, top_n=2).postprocess_nodes(nodes, QueryBundle("the cat"))
    assert [n.score for n in li] == pytest.approx(sorted(expected, reverse=True)[:2], abs=1e-6)


@pytest.mark.parametrize("name", ["llm", "layerwise", "lightweight"])
def test_bfloat16_runs_close_to_float32(ckpts: dict[str, Path], name: str) -> None:
    fp32 = _ours(ckpts[name], name, 8).score(PAIRS[:10])
    bf16 = Reranker(ckpts[name], device="cpu", dtype="bfloat16", max_length=MAX_LENGTH, **OPTIONS[name])
    assert next(bf16.model.parameters()).dtype.is_floating_point and bf16.dtype == "bfloat16"
    got = bf16.score(PAIRS[:10])
    assert got.dtype == np.float32 and np.all(np.isfinite(got))
    np.testing.assert_allclose(got, fp32, atol=0.15)
