"""Tiny random LLM-reranker checkpoints for tests and benchmarks (no network needed).

- :func:`build_tiny_llm_reranker`: a Gemma-shaped causal LM (``GemmaForCausalLM``) whose
  tokenizer holds ``"Yes"`` (``yes_token=False``: a causal LM that cannot answer Yes/No).
- :func:`build_tiny_layerwise_reranker`: a MiniCPM layer-wise reranker laid out as
  BAAI/bge-reranker-v2-minicpm-layerwise (``LayerWiseMiniCPMForCausalLM``, one-logit heads).
- :func:`build_tiny_lightweight_reranker`: a Gemma-2 lightweight reranker laid out as
  BAAI/bge-reranker-v2.5-gemma2-lightweight (``CostWiseGemmaForCausalLM``, ``layer_wise``).

The tokenizer is a hand-listed Unigram vocabulary (words of :data:`LLM_WORDS` and single
characters) with Gemma's conventions (spaces become ``▁``, no prefix space), so any ASCII text
tokenises without ``<unk>``. Weights are random: scores are well-formed, not meaningful.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bge_core.testing import TINY_WORDS

__all__ = [
    "LLM_WORDS",
    "build_llm_tokenizer",
    "build_tiny_layerwise_reranker",
    "build_tiny_lightweight_reranker",
    "build_tiny_llm_reranker",
]

_PROMPT_WORDS = (
    (
        "Given query A and passage B, determine whether the contains an answer to by providing "
        "prediction of either Yes or No Predict"
    )
    .replace(",", "")
    .split()
)
#: Words of the tiny vocabulary (each also with a leading ``▁``).
LLM_WORDS: tuple[str, ...] = tuple(dict.fromkeys([*TINY_WORDS, *_PROMPT_WORDS, "A", "B", "Yes", "No"]))
_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>"]
_CHARS = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'-()\n")


def build_llm_tokenizer(path: str | Path, *, yes_token: bool = True, padding_side: str = "left") -> int:
    """Write a Gemma-style fast tokenizer into ``path``; returns its vocabulary size."""
    from tokenizers import Tokenizer, decoders, models, normalizers
    from transformers import PreTrainedTokenizerFast

    words = [w for w in LLM_WORDS if yes_token or w != "Yes"]
    vocab: list[tuple[str, float]] = [(t, 0.0) for t in _SPECIALS]
    for i, w in enumerate(words):
        vocab += [(w, -5.0 - 0.01 * i), ("▁" + w, -5.0 - 0.01 * i)]
    vocab += [("▁", -8.0)] + [(c, -10.0) for c in _CHARS]
    tok = Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.decoder = decoders.Replace("▁", " ")
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        pad_token="<pad>",
        padding_side=padding_side,
        model_max_length=8192,
    )
    fast.save_pretrained(str(path))
    return len(vocab)


def _ids() -> dict[str, int]:
    return {"pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2}


def _randomise(module: Any, std: float, seed: int) -> None:
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.endswith("norm.weight"):
                # Norm weights away from their init value, so a wrong norm formula shows.
                param.copy_(param + 0.1 * torch.randn(param.shape, generator=gen))
            else:
                param.copy_(torch.randn(param.shape, generator=gen) * std)


def _save(module: Any, out: Path, config: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")


def build_tiny_llm_reranker(
    path: str | Path,
    *,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    seed: int = 0,
    yes_token: bool = True,
    padding_side: str = "left",
) -> Path:
    """A tiny random Gemma causal LM plus tokenizer (bge-reranker-v2-gemma's layout)."""
    import torch
    from transformers import GemmaConfig, GemmaForCausalLM

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    vocab = build_llm_tokenizer(out, yes_token=yes_token, padding_side=padding_side)
    torch.manual_seed(seed)
    config = GemmaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(heads // 2, 1),
        head_dim=hidden // heads,
        max_position_embeddings=4096,
        initializer_range=0.2,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    model = GemmaForCausalLM(config)
    _randomise(model, 0.2, seed)
    model.save_pretrained(str(out))
    return out


def build_tiny_layerwise_reranker(
    path: str | Path, *, hidden: int = 64, layers: int = 4, heads: int = 4, start_layer: int = 2, seed: int = 0
) -> Path:
    """A tiny random MiniCPM layer-wise reranker (heads for layers ``start_layer..layers``)."""
    from bge_core.llm_reranker_models import LayerwiseMiniCPM, MiniCPMSettings

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    vocab = build_llm_tokenizer(out, padding_side="left")
    config: dict[str, Any] = {
        "architectures": ["LayerWiseMiniCPMForCausalLM"],
        "auto_map": {
            "AutoConfig": "configuration_minicpm_reranker.LayerWiseMiniCPMConfig",
            "AutoModel": "modeling_minicpm_reranker.LayerWiseMiniCPMModel",
            "AutoModelForCausalLM": "modeling_minicpm_reranker.LayerWiseMiniCPMForCausalLM",
        },
        "model_type": "minicpm",
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": hidden * 2,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": max(heads // 2, 1),
        "hidden_act": "silu",
        "max_position_embeddings": 4096,
        "initializer_range": 0.1,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "scale_emb": 12,
        "dim_model_base": 256,
        "scale_depth": 1.4,
        "start_layer": start_layer,
        "head_multi": True,
        "head_type": "simple",
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        **_ids(),
    }
    model = LayerwiseMiniCPM(MiniCPMSettings.from_config(config))
    _randomise(model, 0.1, seed)
    _save(model, out, config)
    return out


def build_tiny_lightweight_reranker(
    path: str | Path,
    *,
    hidden: int = 64,
    layers: int = 4,
    heads: int = 4,
    start_layer: int = 2,
    layer_sep: int = 1,
    sliding_window: int = 4096,
    seed: int = 0,
) -> Path:
    """A tiny random Gemma-2 lightweight reranker (heads every ``layer_sep`` from ``start_layer``)."""
    from bge_core.llm_reranker_models import Gemma2Settings, LightweightGemma2

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    vocab = build_llm_tokenizer(out, padding_side="right")
    config: dict[str, Any] = {
        "architectures": ["CostWiseGemmaForCausalLM"],
        "auto_map": {
            "AutoConfig": "gemma_config.CostWiseGemmaConfig",
            "AutoModel": "gemma_model.CostWiseGemmaModel",
            "AutoModelForCausalLM": "gemma_model.CostWiseGemmaForCausalLM",
        },
        "model_type": "cost_wise_gemma",
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": hidden * 2,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": max(heads // 2, 1),
        "head_dim": hidden // heads,
        "hidden_activation": "gelu_pytorch_tanh",
        "max_position_embeddings": 8192,
        "initializer_range": 0.1,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "query_pre_attn_scalar": hidden // heads,
        "attn_logit_softcapping": 50.0,
        "final_logit_softcapping": 30.0,
        "sliding_window": sliding_window,
        "attention_bias": False,
        "start_layer": start_layer,
        "layer_sep": layer_sep,
        "layer_wise": True,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        **_ids(),
    }
    model = LightweightGemma2(Gemma2Settings.from_config(config))
    _randomise(model, 0.1, seed)
    _save(model, out, config)
    return out
