"""The two BGE LLM rerankers that ship their own modeling code, written for inference here.

- :class:`LayerwiseMiniCPM` (bge-reranker-v2-minicpm-layerwise, ``LayerWiseMiniCPMForCausalLM``):
  a MiniCPM decoder whose normalised hidden state after layer ``k`` goes through its own
  one-logit head ``lm_head[k - start_layer]``.
- :class:`LightweightGemma2` (bge-reranker-v2.5-gemma2-lightweight, ``CostWiseGemmaForCausalLM``):
  a Gemma-2 decoder with one-logit heads from ``start_layer`` every ``layer_sep`` layers, and
  token compression: before chosen layers the passage tokens are mean-pooled ``compress_ratio``
  at a time.

The math follows FlagEmbedding 1.4.2's modeling files (read, not copied); parameter names are
the checkpoints', so their weights load as they are. Both return one score per chosen layer at
the last real token of every row (inputs are right-padded). This module imports torch: it is
imported only when such a model loads.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Gemma2Settings",
    "LayerwiseMiniCPM",
    "LightweightGemma2",
    "MiniCPMSettings",
    "compress_passages",
    "load_state_dict",
]


def load_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors: ``model.safetensors``, sharded safetensors (with their index) or
    ``pytorch_model.bin`` (read with ``weights_only=True``, so it cannot run code)."""
    from safetensors.torch import load_file

    from bge_core.errors import ModelFilesError

    single = folder / "model.safetensors"
    if single.is_file():
        return dict(load_file(str(single)))
    for index_name, loader in (("model.safetensors.index.json", "st"), ("pytorch_model.bin.index.json", "pt")):
        index = folder / index_name
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
            state: dict[str, torch.Tensor] = {}
            for shard in shards:
                path = folder / shard
                part = (
                    load_file(str(path))
                    if loader == "st"
                    else torch.load(str(path), map_location="cpu", weights_only=True)
                )
                state.update(part)
            return state
    binary = folder / "pytorch_model.bin"
    if binary.is_file():
        return dict(torch.load(str(binary), map_location="cpu", weights_only=True))
    raise ModelFilesError(
        f"{folder} holds no weights (model.safetensors, sharded safetensors or pytorch_model.bin); "
        "download the complete checkpoint"
    )


def _rope_theta(cfg: Mapping[str, Any]) -> float:
    params = cfg.get("rope_parameters") or {}
    return float(cfg.get("rope_theta") or params.get("rope_theta") or 10000.0)


def _rotary(positions: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of shape (batch, seq, head_dim) in fp32 (rotate-half layout)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim))
    freqs = positions.float()[..., None] * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: (batch, heads, seq, head_dim); rotation in fp32 as both reference models do.
    xf = x.float()
    out = xf * cos[:, None] + _rotate_half(xf) * sin[:, None]
    return out.to(x.dtype)


def _additive_mask(mask: torch.Tensor, dtype: torch.dtype, window: int | None = None) -> torch.Tensor:
    """(batch, 1, seq, seq) additive mask: causal, padding keys masked, optional sliding window."""
    n = mask.shape[1]
    idx = torch.arange(n, device=mask.device)
    allowed = idx[None, :] <= idx[:, None]
    if window is not None:
        allowed = allowed & (idx[:, None] - idx[None, :] < window)
    allowed = allowed[None, None] & mask[:, None, None, :].bool()
    # A fully masked row (a padding query) attends to itself so softmax stays finite.
    allowed = allowed | torch.eye(n, dtype=torch.bool, device=mask.device)[None, None]
    out = torch.zeros(allowed.shape, dtype=dtype, device=mask.device)
    return out.masked_fill(~allowed, torch.finfo(dtype).min)


def _last_token(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """values[b, last real position of row b] for right-padded rows."""
    last = mask.sum(dim=1).long() - 1
    return values[torch.arange(values.shape[0], device=values.device), last]


class _GatedMLP(nn.Module):
    def __init__(self, hidden: int, inner: int, act: str) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden, inner, bias=False)
        self.up_proj = nn.Linear(hidden, inner, bias=False)
        self.down_proj = nn.Linear(inner, hidden, bias=False)
        self._act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.gate_proj(x)
        if self._act == "silu":
            gate = F.silu(gate)
        elif self._act in ("gelu_pytorch_tanh", "gelu_tanh"):
            gate = F.gelu(gate, approximate="tanh")
        else:
            gate = F.gelu(gate)
        return self.down_proj(gate * self.up_proj(x))  # type: ignore[no-any-return]


class _Attention(nn.Module):
    def __init__(self, hidden: int, heads: int, kv_heads: int, head_dim: int, bias: bool = False) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.q_proj = nn.Linear(hidden, heads * head_dim, bias=bias)
        self.k_proj = nn.Linear(hidden, kv_heads * head_dim, bias=bias)
        self.v_proj = nn.Linear(hidden, kv_heads * head_dim, bias=bias)
        self.o_proj = nn.Linear(heads * head_dim, hidden, bias=bias)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor,
        scale: float,
        softcap: float | None = None,
    ) -> torch.Tensor:
        b, n, _ = x.shape
        q = self.q_proj(x).view(b, n, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, n, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, n, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = _apply_rotary(q, *rope), _apply_rotary(k, *rope)
        if self.kv_heads != self.heads:
            rep = self.heads // self.kv_heads
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        if softcap is None:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
        else:
            # Gemma-2 caps attention logits (tanh), which fused SDPA kernels cannot do.
            logits = torch.matmul(q, k.transpose(2, 3)) * scale
            logits = torch.tanh(logits / softcap) * softcap + mask
            probs = torch.softmax(logits, dim=-1, dtype=torch.float32).to(q.dtype)
            out = torch.matmul(probs, v)
        return self.o_proj(out.transpose(1, 2).reshape(b, n, -1))  # type: ignore[no-any-return]


# -- MiniCPM layer-wise --------------------------------------------------------------------


class _MiniCPMNorm(nn.Module):
    def __init__(self, hidden: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var = x.float().pow(2).mean(dim=-1, keepdim=True)
        return (x * torch.rsqrt(var + self.eps)).to(x.dtype) * self.weight


@dataclass(frozen=True)
class MiniCPMSettings:
    """The config.json fields the MiniCPM layer-wise reranker uses."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    rms_norm_eps: float
    rope_theta: float
    scale_emb: float
    scale_depth: float
    start_layer: int
    hidden_act: str
    attention_bias: bool

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> MiniCPMSettings:
        """Read the fields from a config.json mapping (FlagEmbedding's defaults where absent)."""
        heads = int(cfg["num_attention_heads"])
        return cls(
            vocab_size=int(cfg["vocab_size"]),
            hidden_size=int(cfg["hidden_size"]),
            intermediate_size=int(cfg["intermediate_size"]),
            num_hidden_layers=int(cfg["num_hidden_layers"]),
            num_attention_heads=heads,
            num_key_value_heads=int(cfg.get("num_key_value_heads") or heads),
            rms_norm_eps=float(cfg.get("rms_norm_eps", 1e-6)),
            rope_theta=_rope_theta(cfg),
            scale_emb=float(cfg.get("scale_emb", 1)),
            scale_depth=float(cfg.get("scale_depth", 1)),
            start_layer=int(cfg.get("start_layer", 8)),
            hidden_act=str(cfg.get("hidden_act", "silu")),
            attention_bias=bool(cfg.get("attention_bias", False)),
        )

    @property
    def layers(self) -> list[int]:
        """The layers that have a head."""
        return list(range(self.start_layer, self.num_hidden_layers + 1))


class _MiniCPMLayer(nn.Module):
    def __init__(self, s: MiniCPMSettings) -> None:
        super().__init__()
        head_dim = s.hidden_size // s.num_attention_heads
        self.self_attn = _Attention(
            s.hidden_size, s.num_attention_heads, s.num_key_value_heads, head_dim, s.attention_bias
        )
        self.mlp = _GatedMLP(s.hidden_size, s.intermediate_size, s.hidden_act)
        self.input_layernorm = _MiniCPMNorm(s.hidden_size, s.rms_norm_eps)
        self.post_attention_layernorm = _MiniCPMNorm(s.hidden_size, s.rms_norm_eps)
        self._residual_scale = s.scale_depth / math.sqrt(s.num_hidden_layers)
        self._scale = 1.0 / math.sqrt(head_dim)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), rope, mask, self._scale) * self._residual_scale
        out: torch.Tensor = x + self.mlp(self.post_attention_layernorm(x)) * self._residual_scale
        return out


class _MiniCPMBody(nn.Module):
    def __init__(self, s: MiniCPMSettings) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(s.vocab_size, s.hidden_size)
        self.layers = nn.ModuleList(_MiniCPMLayer(s) for _ in range(s.num_hidden_layers))
        self.norm = _MiniCPMNorm(s.hidden_size, s.rms_norm_eps)


class _Head(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.linear_head = nn.Linear(hidden, 1, bias=False)


class LayerwiseMiniCPM(nn.Module):
    """MiniCPM with one-logit heads per layer from ``start_layer`` (``head_type="simple"``)."""

    def __init__(self, settings: MiniCPMSettings) -> None:
        super().__init__()
        self.settings = settings
        self.model = _MiniCPMBody(settings)
        self.lm_head = nn.ModuleList(_Head(settings.hidden_size) for _ in settings.layers)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, layers: Sequence[int]) -> torch.Tensor:
        """Scores (len(layers), batch) at each row's last real token; ``layers`` sorted, unique."""
        s = self.settings
        body = self.model
        x = body.embed_tokens(input_ids) * s.scale_emb
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None].expand(input_ids.shape[0], -1)
        rope = _rotary(positions, s.hidden_size // s.num_attention_heads, s.rope_theta)
        rope = (rope[0].to(x.dtype), rope[1].to(x.dtype))
        mask = _additive_mask(attention_mask, x.dtype)
        wanted = set(layers)
        scores: list[torch.Tensor] = []
        for depth in range(max(layers) + 1):
            if depth in wanted:
                # Only the last real token's hidden state is scored.
                h = body.norm(_last_token(x, attention_mask))
                head: _Head = self.lm_head[depth - s.start_layer]  # type: ignore[assignment]
                scores.append(head.linear_head(h).float().view(-1))
            if depth < max(layers):
                x = body.layers[depth](x, rope, mask)
        return torch.stack(scores)


# -- Gemma-2 lightweight ---------------------------------------------------------------------


class _GemmaNorm(nn.Module):
    def __init__(self, hidden: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(hidden))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        out = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (out * (1.0 + self.weight.float())).type_as(x)


@dataclass(frozen=True)
class Gemma2Settings:
    """The config.json fields the Gemma-2 lightweight reranker uses."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    query_pre_attn_scalar: float
    attn_logit_softcapping: float | None
    final_logit_softcapping: float | None
    sliding_window: int | None
    sliding_layers: tuple[bool, ...]
    hidden_activation: str
    attention_bias: bool
    start_layer: int
    layer_sep: int

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> Gemma2Settings:
        """Read the fields from a config.json mapping (Gemma2Config's defaults where absent)."""
        layers = int(cfg["num_hidden_layers"])
        heads = int(cfg["num_attention_heads"])
        hidden = int(cfg["hidden_size"])
        types = cfg.get("layer_types")
        # Gemma-2 alternates: even layers use the sliding window, odd layers attend fully.
        sliding = tuple(t == "sliding_attention" for t in types) if types else tuple(i % 2 == 0 for i in range(layers))
        return cls(
            vocab_size=int(cfg["vocab_size"]),
            hidden_size=hidden,
            intermediate_size=int(cfg["intermediate_size"]),
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=int(cfg.get("num_key_value_heads") or heads),
            head_dim=int(cfg.get("head_dim") or hidden // heads),
            rms_norm_eps=float(cfg.get("rms_norm_eps", 1e-6)),
            rope_theta=_rope_theta(cfg),
            query_pre_attn_scalar=float(cfg.get("query_pre_attn_scalar", 256)),
            attn_logit_softcapping=cfg.get("attn_logit_softcapping"),
            final_logit_softcapping=cfg.get("final_logit_softcapping"),
            sliding_window=cfg.get("sliding_window"),
            sliding_layers=sliding,
            hidden_activation=str(cfg.get("hidden_activation") or cfg.get("hidden_act") or "gelu_pytorch_tanh"),
            attention_bias=bool(cfg.get("attention_bias", False)),
            start_layer=int(cfg.get("start_layer", 28)),
            layer_sep=int(cfg.get("layer_sep", 28)),
        )

    @property
    def layers(self) -> list[int]:
        """The layers that have a head."""
        return list(range(self.start_layer, self.num_hidden_layers + 1, self.layer_sep))


class _Gemma2Layer(nn.Module):
    def __init__(self, s: Gemma2Settings) -> None:
        super().__init__()
        self.self_attn = _Attention(
            s.hidden_size, s.num_attention_heads, s.num_key_value_heads, s.head_dim, s.attention_bias
        )
        self.mlp = _GatedMLP(s.hidden_size, s.intermediate_size, s.hidden_activation)
        self.input_layernorm = _GemmaNorm(s.hidden_size, s.rms_norm_eps)
        self.post_attention_layernorm = _GemmaNorm(s.hidden_size, s.rms_norm_eps)
        self.pre_feedforward_layernorm = _GemmaNorm(s.hidden_size, s.rms_norm_eps)
        self.post_feedforward_layernorm = _GemmaNorm(s.hidden_size, s.rms_norm_eps)
        self._scale = s.query_pre_attn_scalar**-0.5
        self._softcap = s.attn_logit_softcapping

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        h = self.self_attn(self.input_layernorm(x), rope, mask, self._scale, self._softcap)
        x = x + self.post_attention_layernorm(h)
        out: torch.Tensor = x + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(x)))
        return out


class _Gemma2Body(nn.Module):
    def __init__(self, s: Gemma2Settings) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(s.vocab_size, s.hidden_size)
        self.layers = nn.ModuleList(_Gemma2Layer(s) for _ in range(s.num_hidden_layers))
        self.norm = _GemmaNorm(s.hidden_size, s.rms_norm_eps)


def compress_passages(
    x: torch.Tensor, mask: torch.Tensor, query_lengths: torch.Tensor, prompt_lengths: torch.Tensor, ratio: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean-pool each row's passage tokens ``ratio`` at a time (the last group may be shorter).

    A right-padded row is ``query | passage | prompt | padding``; it becomes
    ``query | pooled passage | prompt`` and the rows are right-padded again.
    """
    lengths = mask.sum(dim=1).long()
    rows: list[torch.Tensor] = []
    for b in range(x.shape[0]):
        q, p, total = int(query_lengths[b]), int(prompt_lengths[b]), int(lengths[b])
        passage = x[b, q : total - p]
        n = passage.shape[0]
        groups = (n + ratio - 1) // ratio
        if n:
            padded = torch.zeros(groups * ratio, x.shape[-1], dtype=x.dtype, device=x.device)
            padded[:n] = passage
            counts = torch.full((groups,), ratio, dtype=x.dtype, device=x.device)
            counts[-1] = n - (groups - 1) * ratio
            pooled = padded.view(groups, ratio, -1).sum(dim=1) / counts[:, None]
        else:
            pooled = passage
        rows.append(torch.cat([x[b, :q], pooled, x[b, total - p : total]]))
    longest = max(r.shape[0] for r in rows)
    out = torch.zeros(x.shape[0], longest, x.shape[-1], dtype=x.dtype, device=x.device)
    new_mask = torch.zeros(x.shape[0], longest, dtype=mask.dtype, device=mask.device)
    for b, r in enumerate(rows):
        out[b, : r.shape[0]] = r
        new_mask[b, : r.shape[0]] = 1
    return out, new_mask


class LightweightGemma2(nn.Module):
    """Gemma-2 with one-logit heads (``layer_wise``) and passage token compression."""

    def __init__(self, settings: Gemma2Settings) -> None:
        super().__init__()
        self.settings = settings
        self.model = _Gemma2Body(settings)
        self.lm_head = nn.ModuleList(_Head(settings.hidden_size) for _ in settings.layers)

    def _masks(self, attention_mask: torch.Tensor, dtype: torch.dtype) -> dict[bool, torch.Tensor]:
        s = self.settings
        return {
            False: _additive_mask(attention_mask, dtype),
            True: _additive_mask(attention_mask, dtype, s.sliding_window),
        }

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        layers: Sequence[int],
        *,
        query_lengths: torch.Tensor,
        prompt_lengths: torch.Tensor,
        compress_layers: Sequence[int] = (),
        compress_ratio: int = 1,
    ) -> torch.Tensor:
        """Scores (len(layers), batch) at each row's last real token.

        As FlagEmbedding does, the ``i``-th requested layer is scored with ``lm_head[i]``.
        """
        s = self.settings
        body = self.model
        x = body.embed_tokens(input_ids)
        x = x * torch.tensor(s.hidden_size**0.5, dtype=x.dtype)

        def rope_for(n: int) -> tuple[torch.Tensor, torch.Tensor]:
            pos = torch.arange(n, device=x.device)[None]
            cos, sin = _rotary(pos, s.head_dim, s.rope_theta)
            return cos.to(x.dtype), sin.to(x.dtype)

        rope = rope_for(x.shape[1])
        masks = self._masks(attention_mask, x.dtype)
        wanted = list(layers)
        scores: list[torch.Tensor] = []
        top = max(wanted)
        for depth in range(top + 1):
            if depth in wanted:
                h = body.norm(_last_token(x, attention_mask))
                head: _Head = self.lm_head[len(scores)]  # type: ignore[assignment]
                logit = head.linear_head(h)
                if s.final_logit_softcapping is not None:
                    logit = torch.tanh(logit / s.final_logit_softcapping) * s.final_logit_softcapping
                scores.append(logit.float().view(-1))
            if depth == top:
                break
            if compress_ratio > 1 and depth in compress_layers and depth != 0:
                x, attention_mask = compress_passages(x, attention_mask, query_lengths, prompt_lengths, compress_ratio)
                rope = rope_for(x.shape[1])
                masks = self._masks(attention_mask, x.dtype)
            layer = body.layers[depth]
            x = layer(x, rope, masks[s.sliding_window is not None and s.sliding_layers[depth]])
        return torch.stack(scores)
