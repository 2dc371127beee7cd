"""A light inference copy of transformers' BERT / XLM-RoBERTa encoder (no transformers import).

``from transformers import AutoModel`` costs 1.5 to 3.5 s of imports before any weight is
read (``modeling_utils`` pulls in torch._dynamo, torch.distributed.tensor, scipy.optimize, the
hub-kernel and flash-attention integrations), which is most of a ``bge search`` cold start.
BGE's encoders are plain BERT (v1.5, MiniLM) and XLM-RoBERTa (M3) stacks, so for those we build
the same modules from ``config.json`` and ``model.safetensors`` with torch alone.

The forward runs the same torch ops, in the same order, with the same arguments as
``transformers`` 5's ``BertModel`` / ``XLMRobertaModel`` with ``attn_implementation="sdpa"``
in eval mode (embeddings sum, the boolean 4D padding mask that ``create_bidirectional_mask``
builds, or none without padding, ``scaled_dot_product_attention``, post-LN residuals), so its
outputs are bit-identical (tests/core/test_light_model.py checks ``torch.equal`` against
transformers in float32 and bfloat16, with and without padding). Anything outside that
(another architecture, a decoder config, relative positions, an unknown activation, weights
not in one ``model.safetensors``, a missing encoder weight) returns ``None`` from
:func:`light_config` and the caller loads the model with transformers as before.
``BGE_LIGHT_MODEL=0`` switches the light path off.

bf16 inference forwards on CPU run the linear layers as oneDNN products with the bias in the
epilogue and build the additive attention mask once (``BGE_CPU_FUSION``, see
:func:`cpu_fusion_setting`): still bit-identical (aten's bf16 ``addmm`` reaches the same oneDNN
product, after a pass copying the broadcast bias into its output, and SDPA builds the same additive
mask from a boolean one in every layer), 1.1-2x faster on two cores (BENCHMARKS.md section 10).
"""

from __future__ import annotations

import functools
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = [
    "LightConfig",
    "LightOutput",
    "cpu_fusion_setting",
    "light_config",
    "light_model_enabled",
    "load_light_model",
]

# Defaults of transformers' BertConfig / XLMRobertaConfig / RobertaConfig for the fields we read
# (config.json written by transformers 5 leaves out values equal to the class default).
_DEFAULTS: dict[str, dict[str, Any]] = {
    "bert": {"vocab_size": 30522, "pad_token_id": 0},
    "xlm-roberta": {"vocab_size": 30522, "pad_token_id": 1},
    "roberta": {"vocab_size": 50265, "pad_token_id": 1},
}
_COMMON_DEFAULTS: dict[str, Any] = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
}
_ACTIVATIONS = ("gelu", "relu")
_PREFIXES = ("", "bert.", "roberta.", "model.")


def light_model_enabled() -> bool:
    """False when ``BGE_LIGHT_MODEL`` is set to 0/false/no/off (load through transformers)."""
    return os.environ.get("BGE_LIGHT_MODEL", "1").strip().lower() not in {"0", "false", "no", "off"}


@dataclass(frozen=True)
class LightConfig:
    """The fields of a BERT / XLM-R ``config.json`` the light encoder uses (transformers' defaults)."""

    model_type: str
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    hidden_act: str
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float
    pad_token_id: int


@dataclass
class LightOutput:
    """What the encoder classes read from a forward (``last_hidden_state``, as transformers)."""

    last_hidden_state: torch.Tensor


def light_config(model_dir: Path) -> LightConfig | None:
    """The light encoder's config for ``model_dir``, or ``None`` when transformers must load it."""
    if not light_model_enabled():
        return None
    try:
        raw = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    model_type = raw.get("model_type")
    if not isinstance(raw, dict) or model_type not in _DEFAULTS:
        return None
    if not (model_dir / "model.safetensors").is_file():
        return None
    if raw.get("is_decoder") or raw.get("add_cross_attention") or raw.get("chunk_size_feed_forward"):
        return None
    if raw.get("position_embedding_type") not in (None, "absolute") or raw.get("quantization_config"):
        return None
    values = {**_COMMON_DEFAULTS, **_DEFAULTS[model_type]}
    for key in values:
        if raw.get(key) is not None:
            values[key] = raw[key]
    if values["hidden_act"] not in _ACTIVATIONS or values["hidden_size"] % values["num_attention_heads"]:
        return None
    try:
        return LightConfig(
            model_type=str(model_type),
            vocab_size=int(values["vocab_size"]),
            hidden_size=int(values["hidden_size"]),
            num_hidden_layers=int(values["num_hidden_layers"]),
            num_attention_heads=int(values["num_attention_heads"]),
            intermediate_size=int(values["intermediate_size"]),
            hidden_act=str(values["hidden_act"]),
            max_position_embeddings=int(values["max_position_embeddings"]),
            type_vocab_size=int(values["type_vocab_size"]),
            layer_norm_eps=float(values["layer_norm_eps"]),
            pad_token_id=int(values["pad_token_id"]),
        )
    except (TypeError, ValueError):
        return None


_FUSIONS = ("exact", "fused", "off")


def cpu_fusion_setting() -> str:
    """The light encoder's CPU bf16 path from ``BGE_CPU_FUSION``: ``exact`` (default), ``fused`` or ``off``.

    ``exact`` runs the linear layers as oneDNN products with the bias in the epilogue and builds
    the additive attention mask once per forward: bit-identical to transformers, without the pass
    aten's bf16 ``addmm`` spends copying the broadcast bias into its output and the per-layer mask
    conversion. ``fused`` also runs GELU and the residual adds as post-ops of the products (results
    differ from transformers by bf16 rounding). ``off`` runs plain ``nn.Linear`` layers.
    Only bf16 inference forwards on CPU use it; float32, GPUs, autograd and tracing run plain ops.
    """
    raw = os.environ.get("BGE_CPU_FUSION", "").strip().lower() or "exact"
    if raw not in _FUSIONS:
        raise ValueError(f"BGE_CPU_FUSION must be one of {', '.join(_FUSIONS)} (default exact), got {raw!r}")
    return raw


@functools.lru_cache(maxsize=1)
def _onednn_bf16() -> bool:
    import torch

    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False  # measured and tested on x86 oneDNN only (ARM builds use ACL underneath)
    try:
        available = torch.backends.mkldnn.is_available()  # type: ignore[no-untyped-call]
        return bool(available and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _fast_mode(setting: str, hidden: torch.Tensor) -> str:
    """The CPU fusion level one forward runs with: ``setting`` for a bf16 CPU inference forward
    where oneDNN runs bf16, else "off" (GPU, float32, autograd, tracing / compiling)."""
    import torch

    if setting == "off" or hidden.device.type != "cpu" or hidden.dtype != torch.bfloat16:
        return "off"
    if torch.is_grad_enabled() or torch._C._get_tracing_state() is not None or torch.compiler.is_compiling():
        return "off"
    return setting if _onednn_bf16() else "off"


def _build(config: LightConfig) -> Any:
    import torch
    from torch import nn
    from torch.nn import functional as F

    heads = config.num_attention_heads
    head_dim = config.hidden_size // heads
    scaling = head_dim**-0.5
    roberta = config.model_type in ("xlm-roberta", "roberta")
    gelu = config.hidden_act == "gelu"
    act = F.gelu if gelu else F.relu

    def _linear(module: nn.Linear, x: torch.Tensor, fast: str) -> torch.Tensor:
        if fast == "off":
            out: torch.Tensor = module(x)
        else:
            # oneDNN's product with the bias in its epilogue: the same result as F.linear, bit for
            # bit, without the pass aten's bf16 addmm spends copying the broadcast bias first.
            out = torch.ops.mkldnn._linear_pointwise(x, module.weight, module.bias, "none", [], "")
        return out

    class Embeddings(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            h = config.hidden_size
            # _weight: no random init (the weights are loaded next; a normal_ on the meta device
            # would also import torch._dynamo, ~1 s).
            self.word_embeddings = nn.Embedding(
                config.vocab_size, h, padding_idx=config.pad_token_id, _weight=torch.empty(config.vocab_size, h)
            )
            self.position_embeddings = nn.Embedding(
                config.max_position_embeddings,
                h,
                padding_idx=config.pad_token_id if roberta else None,
                _weight=torch.empty(config.max_position_embeddings, h),
            )
            self.token_type_embeddings = nn.Embedding(
                config.type_vocab_size, h, _weight=torch.empty(config.type_vocab_size, h)
            )
            self.LayerNorm = nn.LayerNorm(h, eps=config.layer_norm_eps)

        def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None) -> torch.Tensor:
            seq = input_ids.shape[1]
            if roberta:  # positions count from pad+1 and skip padding (fairseq's make_positions)
                mask = input_ids.ne(config.pad_token_id).int()
                position_ids = (torch.cumsum(mask, dim=1).type_as(mask) * mask).long() + config.pad_token_id
            else:
                position_ids = torch.arange(seq, device=input_ids.device).unsqueeze(0)
            if token_type_ids is None:
                token_type_ids = torch.zeros_like(input_ids)
            embeddings = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
            embeddings = embeddings + self.position_embeddings(position_ids)
            out: torch.Tensor = self.LayerNorm(embeddings)
            return out

    class SelfAttention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            h = config.hidden_size
            self.query = nn.Linear(h, h)
            self.key = nn.Linear(h, h)
            self.value = nn.Linear(h, h)

        def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None, fast: str) -> torch.Tensor:
            shape = (*hidden.shape[:-1], -1, head_dim)
            q = _linear(self.query, hidden, fast).view(*shape).transpose(1, 2)
            k = _linear(self.key, hidden, fast).view(*shape).transpose(1, 2)
            v = _linear(self.value, hidden, fast).view(*shape).transpose(1, 2)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, scale=scaling, is_causal=False)
            out = out.reshape(out.shape[0], -1, q.shape[2], v.shape[-1]).transpose(1, 2).contiguous()
            return out.reshape(*hidden.shape[:-1], -1).contiguous()

    class DenseNorm(nn.Module):
        """``LayerNorm(dense(x) + residual)`` (BertSelfOutput / BertOutput)."""

        def __init__(self, n_in: int) -> None:
            super().__init__()
            self.dense = nn.Linear(n_in, config.hidden_size)
            self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

        def forward(self, hidden: torch.Tensor, residual: torch.Tensor, fast: str) -> torch.Tensor:
            if fast == "fused":  # the residual add as the product's post-op (one pass less)
                summed = torch.ops.mkldnn._linear_pointwise.binary(
                    hidden, residual, self.dense.weight, self.dense.bias, "add"
                )
            else:
                summed = _linear(self.dense, hidden, fast) + residual
            out: torch.Tensor = self.LayerNorm(summed)
            return out

    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.self = SelfAttention()
            self.output = DenseNorm(config.hidden_size)

        def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None, fast: str) -> torch.Tensor:
            out: torch.Tensor = self.output(self.self(hidden, mask, fast), hidden, fast)
            return out

    class Intermediate(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dense = nn.Linear(config.hidden_size, config.intermediate_size)

        def forward(self, hidden: torch.Tensor, fast: str) -> torch.Tensor:
            if fast == "fused":  # the activation as the product's post-op (erf GELU, as F.gelu)
                out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(
                    hidden, self.dense.weight, self.dense.bias, config.hidden_act, [], "none" if gelu else ""
                )
                return out
            return act(_linear(self.dense, hidden, fast))

    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attention = Attention()
            self.intermediate = Intermediate()
            self.output = DenseNorm(config.intermediate_size)

        def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None, fast: str) -> torch.Tensor:
            attn = self.attention(hidden, mask, fast)
            out: torch.Tensor = self.output(self.intermediate(attn, fast), attn, fast)
            return out

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.ModuleList([Layer() for _ in range(config.num_hidden_layers)])

    class LightEncoderModel(nn.Module):
        """BERT / XLM-R encoder stack for inference; ``forward`` returns ``last_hidden_state``."""

        def __init__(self) -> None:
            super().__init__()
            self.config = config
            #: CPU bf16 inference path: "exact" (default: oneDNN products with the bias fused,
            #: bit-identical to transformers), "fused" (also GELU and the residual add fused
            #: into the products: bf16-rounding differences) or "off" (plain nn.Linear).
            self.cpu_fusion = cpu_fusion_setting()
            self.embeddings = Embeddings()
            self.encoder = Encoder()

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor | None = None,
            token_type_ids: torch.Tensor | None = None,
            return_dict: bool = True,
        ) -> LightOutput:
            hidden = self.embeddings(input_ids, token_type_ids)
            fast = _fast_mode(self.cpu_fusion, hidden)
            mask = None
            if attention_mask is not None:
                # transformers' create_bidirectional_mask for sdpa: no mask without padding, else
                # a materialised boolean (batch, 1, query, key) mask of the kept keys.
                keep = attention_mask.to(device=hidden.device, dtype=torch.bool)
                # Traced / exported graphs keep the mask (as transformers does): a data-dependent
                # skip would be baked in for the example input.
                tracing = torch._C._get_tracing_state() is not None or torch.compiler.is_compiling()
                padded = not tracing and not bool(keep.all())
                if fast != "off" and padded:
                    # SDPA would turn a boolean mask into this additive one in every layer: build
                    # it once, broadcast over the queries (the CPU kernel reads it with stride 0;
                    # the same values are added, so the result is the same bit for bit).
                    mask = torch.zeros(keep.shape, dtype=hidden.dtype, device=hidden.device)
                    mask = mask.masked_fill_(~keep, float("-inf"))[:, None, None, :]
                elif tracing or padded:
                    batch, length = keep.shape
                    mask = keep[:, None, None, :].expand(batch, 1, length, length).contiguous()
            for layer in self.encoder.layer:
                hidden = layer(hidden, mask, fast)
            return LightOutput(last_hidden_state=hidden)

    return LightEncoderModel()


def load_light_model(model_dir: Path, config: LightConfig) -> torch.nn.Module | None:
    """The light encoder with the weights of ``model_dir/model.safetensors`` in float32 on CPU
    (as ``from_pretrained(dtype=float32)``), or ``None`` when a weight it needs is missing or
    has another shape (the caller then loads through transformers, which reports it)."""
    import torch
    from safetensors import safe_open

    with torch.device("meta"):
        net = _build(config)
    wanted = net.state_dict()
    state: dict[str, torch.Tensor] = {}
    with safe_open(str(model_dir / "model.safetensors"), framework="pt") as fh:
        keys = set(fh.keys())
        prefix = next((p for p in _PREFIXES if f"{p}embeddings.word_embeddings.weight" in keys), None)
        if prefix is None:
            return None
        for name, meta in wanted.items():
            key = prefix + name
            if key not in keys:
                legacy = key.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
                if legacy not in keys:
                    return None
                key = legacy
            tensor = fh.get_tensor(key)
            if tuple(tensor.shape) != tuple(meta.shape) or not tensor.is_floating_point():
                return None
            state[name] = tensor.to(torch.float32)
    net.load_state_dict(state, strict=True, assign=True)
    net.eval()
    module: torch.nn.Module = net
    return module
