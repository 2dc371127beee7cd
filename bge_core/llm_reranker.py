"""LLM members of the BGE reranker family, scored as FlagEmbedding 1.4.2 scores them.

- ``"llm-reranker"`` (:class:`LLMReranker`; bge-reranker-v2-gemma, any ``*ForCausalLM`` whose
  tokenizer has a one-token ``"Yes"``): the logit of ``"Yes"`` at the last token.
- ``"layerwise-reranker"`` (:class:`LayerwiseLLMReranker`; bge-reranker-v2-minicpm-layerwise):
  one score per chosen layer (``cutoff_layers``) from that layer's own head.
- ``"lightweight-reranker"`` (:class:`LightweightLLMReranker`; bge-reranker-v2.5-gemma2-lightweight):
  as layer-wise, plus passage token compression (``compress_ratio`` before ``compress_layers``).

Every kind builds the same input per pair: ``[bos] "A: " query`` (cut to ``query_max_length``
tokens), then ``"\\n" "B: " passage`` (cut so that the pair fits ``max_length`` plus the prompt),
then ``"\\n" prompt``. :class:`bge_core.Reranker` picks the class from the checkpoint
(:func:`reranker_kind`); these classes can also be used directly. torch and transformers are
imported only when a model loads.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from bge_core.batching import plan_batches
from bge_core.encoder_base import check_texts
from bge_core.errors import BGEError
from bge_core.loading import resolve_model_dir
from bge_core.reranker import Reranker
from bge_core.runtime import resolve_device, resolve_dtype
from bge_core.types import FloatArray

if TYPE_CHECKING:
    import torch
    from tokenizers import Tokenizer

__all__ = [
    "DEFAULT_PROMPT",
    "KNOWN_LLM_RERANKERS",
    "LIGHTWEIGHT_PROMPT",
    "RERANKER_KINDS",
    "LLMReranker",
    "LayerwiseLLMReranker",
    "LightweightLLMReranker",
    "RerankerKind",
    "RerankerKindError",
    "detect_layerwise",
    "detect_lightweight",
    "detect_llm_reranker",
    "reranker_class",
    "reranker_kind",
]

logger = logging.getLogger(__name__)

RerankerKind = Literal["reranker", "llm-reranker", "layerwise-reranker", "lightweight-reranker"]
RERANKER_KINDS: tuple[RerankerKind, ...] = ("reranker", "llm-reranker", "layerwise-reranker", "lightweight-reranker")

#: FlagEmbedding's prompt for the gemma and MiniCPM rerankers.
DEFAULT_PROMPT = (
    "Given a query A and a passage B, determine whether the passage contains an answer to the query "
    "by providing a prediction of either 'Yes' or 'No'."
)
#: FlagEmbedding's prompt for the Gemma-2 lightweight reranker.
LIGHTWEIGHT_PROMPT = "Predict whether passage B contains an answer to query A."

#: Hub ids whose kind is known without reading files.
KNOWN_LLM_RERANKERS: dict[str, RerankerKind] = {
    "baai/bge-reranker-v2-gemma": "llm-reranker",
    "baai/bge-reranker-v2-minicpm-layerwise": "layerwise-reranker",
    "baai/bge-reranker-v2.5-gemma2-lightweight": "lightweight-reranker",
}

_LAYERWISE_ARCH = "LayerWiseMiniCPMForCausalLM"
_LIGHTWEIGHT_ARCH = "CostWiseGemmaForCausalLM"
_M3_HEAD_FILES = ("colbert_linear.pt", "sparse_linear.pt", "colbert_linear.safetensors", "sparse_linear.safetensors")


_KIND_WORDS: dict[str, str] = {
    "reranker": "a cross-encoder reranker",
    "llm-reranker": "an LLM reranker (Yes-logit)",
    "layerwise-reranker": "a layer-wise MiniCPM reranker",
    "lightweight-reranker": "a lightweight Gemma-2 reranker",
}


class RerankerKindError(BGEError, ValueError):
    """A checkpoint is not a reranker this library serves, or not the kind that was asked for."""


# -- recognising a checkpoint (config.json only, before any weights load) ----------------------


def _read_config(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _archs(config: Mapping[str, Any]) -> list[str]:
    return [str(a) for a in config.get("architectures") or []]


def detect_layerwise(folder: Path, config: Mapping[str, Any]) -> bool:
    """A MiniCPM layer-wise reranker (FlagEmbedding's ``LayerWiseMiniCPMForCausalLM``)."""
    return _LAYERWISE_ARCH in _archs(config) or (config.get("model_type") == "minicpm" and "head_type" in config)


def detect_lightweight(folder: Path, config: Mapping[str, Any]) -> bool:
    """A Gemma-2 lightweight reranker (FlagEmbedding's ``CostWiseGemmaForCausalLM``)."""
    return _LIGHTWEIGHT_ARCH in _archs(config) or config.get("model_type") == "cost_wise_gemma"


def detect_llm_reranker(folder: Path, config: Mapping[str, Any]) -> bool:
    """Any other causal LM (scored by its ``"Yes"`` logit; the tokenizer is checked on load)."""
    return any(a.endswith("ForCausalLM") for a in _archs(config)) and not (
        detect_layerwise(folder, config) or detect_lightweight(folder, config)
    )


def _supported() -> str:
    return (
        "cross-encoders ('reranker': *ForSequenceClassification, e.g. BAAI/bge-reranker-v2-m3), "
        "'llm-reranker' (a causal LM scored by its 'Yes' logit, e.g. BAAI/bge-reranker-v2-gemma), "
        "'layerwise-reranker' (BAAI/bge-reranker-v2-minicpm-layerwise) and "
        "'lightweight-reranker' (BAAI/bge-reranker-v2.5-gemma2-lightweight)"
    )


def _describe(config: Mapping[str, Any]) -> str:
    arch = "+".join(_archs(config)) or "no architectures"
    return f"{arch}, model_type {config.get('model_type', '?')!r}"


def reranker_kind(name: str, folder: Path, config: Mapping[str, Any] | None = None) -> RerankerKind:
    """The reranker kind of a checkpoint folder, from its files; refuses non-rerankers.

    Raises:
        RerankerKindError: an embedding model (BGE-M3, dense encoder) or an unknown model type.
    """
    cfg = _read_config(folder) if config is None else config
    if any((folder / f).is_file() for f in _M3_HEAD_FILES):
        raise RerankerKindError(
            f"{name} is a BGE-M3 encoder (it ships colbert_linear/sparse_linear heads; {_describe(cfg)}), "
            "not a reranker: load it with bge_core.BGEM3Encoder to embed texts. A reranker must be one of "
            f"{_supported()}"
        )
    if detect_layerwise(folder, cfg):
        return "layerwise-reranker"
    if detect_lightweight(folder, cfg):
        return "lightweight-reranker"
    if any(a.endswith("ForSequenceClassification") for a in _archs(cfg)):
        return "reranker"
    if detect_llm_reranker(folder, cfg):
        return "llm-reranker"
    if not cfg:
        raise RerankerKindError(f"{name} has no readable config.json; point to a transformers checkpoint folder")
    raise RerankerKindError(
        f"{name} ({_describe(cfg)}) has no scoring head: it looks like an embedding model (use "
        f"bge_core.DenseEncoder or BGEM3Encoder for it). Reranker serves {_supported()}; pass kind= to "
        "force one if the checkpoint is one of them"
    )


def reranker_class(cls: type[Reranker], model: str | os.PathLike[str], kind: str | None) -> type[Reranker]:
    """The class :class:`bge_core.Reranker` instantiates for ``model`` (the dispatch hook).

    A subclass asked for by name is kept (it checks the checkpoint itself); ``kind`` forces a
    kind; otherwise known hub ids, then the checkpoint's config.json decide.
    """
    if cls is not Reranker:
        return cls
    if kind is None or kind == "auto":
        kind = _auto_kind(os.fspath(model))
    from bge_core.kinds import (
        KINDS,  # the one registry of model kinds and their classes
    )

    classes = {name: entry for name, entry in KINDS.items() if entry.role == "rerank"}
    if kind not in classes:
        raise RerankerKindError(f"unknown reranker kind {kind!r}; use 'auto' or one of {', '.join(map(repr, classes))}")
    chosen: type[Reranker] = classes[kind].model_class()
    return chosen


def _auto_kind(name: str) -> RerankerKind:
    known = KNOWN_LLM_RERANKERS.get(name.rstrip("/").lower())
    if known is not None:
        return known
    from bge_core.models import model_info

    info = model_info(name)
    if info is not None and not Path(name).expanduser().is_dir():
        if info.kind == "reranker":
            return "reranker"
        raise RerankerKindError(
            f"{name} is a known {info.kind} embedding model, not a reranker; use "
            f"{'bge_core.BGEM3Encoder' if info.kind == 'm3' else 'bge_core.DenseEncoder'}. "
            f"A reranker must be one of {_supported()}"
        )
    return reranker_kind(name, resolve_model_dir(name))


# -- shared machinery --------------------------------------------------------------------------


def _default_threads() -> None:
    import torch

    if "OMP_NUM_THREADS" not in os.environ and "MKL_NUM_THREADS" not in os.environ:
        n = os.cpu_count() or 1
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)


def _check_pairs(pairs: object) -> tuple[list[str], list[str]]:
    if isinstance(pairs, tuple) and len(pairs) == 2 and all(isinstance(p, str) for p in pairs):
        raise TypeError("pairs must be a list of (query, passage) tuples; wrap it: [pair]")
    if isinstance(pairs, str):
        raise TypeError("pairs must be a list of (query, passage) tuples, got a str")
    pair_list = list(pairs)  # type: ignore[call-overload]
    for i, pair in enumerate(pair_list):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise TypeError(f"pairs[{i}] must be a (query, passage) tuple")
    return check_texts([p[0] for p in pair_list], "queries"), check_texts([p[1] for p in pair_list], "passages")


def _sigmoid(x: FloatArray) -> FloatArray:
    return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(np.float32)


class LLMReranker(Reranker):
    """A causal-LM reranker: the logit of the ``"Yes"`` token after the prompt (kind ``"llm-reranker"``).

    Args:
        model: hub id or folder (bge-reranker-v2-gemma or any ``*ForCausalLM`` whose tokenizer
            encodes ``"Yes"`` as one token).
        device, dtype: as for the encoders (``"auto"``: fp16 on GPUs, bf16 on CPUs that run it).
        max_length: token cap of a passage (``"B: "`` included); the pair adds the query and prompt.
        query_max_length: token cap of ``"A: " + query`` (default ``3/4`` of ``max_length``).
        batch_size, max_batch_tokens: batches are length-sorted and capped by both.
        prompt: the instruction after the pair (FlagEmbedding's by default).
        query_prefix, passage_prefix: ``"A: "`` and ``"B: "`` as FlagEmbedding.
        show_progress: a progress bar over batches (``None``: when a call has more than 4 batches).
    """

    _default_prompt = DEFAULT_PROMPT
    _kind: RerankerKind = "llm-reranker"

    def __init__(
        self,
        model: str | os.PathLike[str] = "BAAI/bge-reranker-v2-gemma",
        *,
        device: str = "auto",
        dtype: str = "auto",
        max_length: int = 512,
        query_max_length: int | None = None,
        batch_size: int | None = None,
        max_batch_tokens: int | None = None,
        prompt: str | None = None,
        query_prefix: str = "A: ",
        passage_prefix: str = "B: ",
        show_progress: bool | None = None,
        kind: str | None = None,
    ) -> None:
        import transformers

        if kind not in (None, "auto", self._kind):
            raise RerankerKindError(
                f"{type(self).__name__} serves kind {self._kind!r}, not {kind!r}; use bge_core.Reranker(kind={kind!r})"
            )
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        self.model_name = os.fspath(model)
        self.model_dir = resolve_model_dir(model)
        self.config: dict[str, Any] = _read_config(self.model_dir)
        if kind is None or kind == "auto":
            # An explicit kind= skips recognition (for checkpoints with unusual config.json).
            found = reranker_kind(self.model_name, self.model_dir, self.config)
            if found != self._kind:
                raise RerankerKindError(
                    f"{self.model_name} is {_KIND_WORDS[found]} ({_describe(self.config)}), not "
                    f"{_KIND_WORDS[self._kind]}; load it with bge_core.Reranker, which picks the class "
                    f"for each kind ({_supported()})"
                )
        self._check_config()
        self._torch_device = resolve_device(device)
        self._torch_dtype = resolve_dtype(dtype, self._torch_device)
        if self._torch_device.type == "cpu":
            _default_threads()
        # trust_remote_code=False: a checkpoint with its own modeling code (auto_map) must not
        # prompt or run that code; the tokenizers of these checkpoints are standard ones.
        self.hf_tokenizer = transformers.AutoTokenizer.from_pretrained(str(self.model_dir), trust_remote_code=False)
        if not getattr(self.hf_tokenizer, "is_fast", False):
            raise BGEError(f"{self.model_dir} has no fast tokenizer (tokenizer.json); convert it")
        self._tok: Tokenizer = self._plain_tokenizer()
        self.prompt = self._default_prompt if prompt is None else prompt
        self.query_prefix, self.passage_prefix = query_prefix, passage_prefix
        self._max_length = max_length
        self.query_max_length = query_max_length or max_length * 3 // 4
        self.batch_size = batch_size or (32 if self._torch_device.type == "cpu" else 128)
        if max_batch_tokens is None:
            max_batch_tokens = 8192 if self._torch_device.type == "cpu" else 32768
        self.max_batch_tokens = max_batch_tokens
        self.show_progress = show_progress
        self.pad_id = int(self.hf_tokenizer.pad_token_id if self.hf_tokenizer.pad_token_id is not None else 0)
        self.bos_id: int | None = self.hf_tokenizer.bos_token_id
        self._sep = self._encode_plain("\n")
        self._prompt_ids = self._encode_plain(self.prompt)
        self._prepare_tokens()
        self._forward_lock = threading.Lock()
        net = self._load_model()
        net.eval()
        self._model: torch.nn.Module = net.to(device=self._torch_device, dtype=self._torch_dtype)

    # -- hooks of the three kinds ----------------------------------------------------------------
    def _check_config(self) -> None:
        """Refuse a checkpoint this class cannot score (before any weights load)."""

    def _prepare_tokens(self) -> None:
        # FlagEmbedding scores the first id of "Yes"; a word split in pieces would score a fragment.
        ids = self._encode_plain("Yes")
        unk = self.hf_tokenizer.unk_token_id
        if len(ids) != 1 or (unk is not None and ids[0] == unk):
            raise RerankerKindError(
                f"{self.model_name} ({_describe(self.config)}) is a causal LM whose tokenizer has no single 'Yes' "
                f"token (it encodes 'Yes' as {ids}), so it cannot be an LLM reranker that answers Yes/No. "
                f"Use a BGE LLM reranker checkpoint; Reranker serves {_supported()}"
            )
        self.yes_id = ids[0]
        # FlagEmbedding adds BOS only when the tokenizer's BOS differs from its padding token.
        self._add_bos = self.bos_id is not None and self.bos_id != self.hf_tokenizer.pad_token_id

    def _load_model(self) -> torch.nn.Module:
        import torch
        import transformers

        kwargs: dict[str, Any] = {"dtype": torch.float32 if self._torch_dtype == torch.float32 else self._torch_dtype}
        try:
            net = transformers.AutoModelForCausalLM.from_pretrained(
                str(self.model_dir), attn_implementation="sdpa", **kwargs
            )
        except (ValueError, ImportError):
            net = transformers.AutoModelForCausalLM.from_pretrained(str(self.model_dir), **kwargs)
        return net

    # -- tokenisation ------------------------------------------------------------------------------
    def _plain_tokenizer(self) -> Tokenizer:
        from tokenizers import Tokenizer

        # A private copy without truncation or padding: concurrent calls never share its state.
        tok = Tokenizer.from_str(self.hf_tokenizer.backend_tokenizer.to_str())
        tok.no_truncation()
        tok.no_padding()
        return tok

    def _encode_plain(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def _cut(self, ids: list[int], n: int) -> list[int]:
        if len(ids) <= n:
            return ids
        return ids[len(ids) - n :] if self.hf_tokenizer.truncation_side == "left" else ids[:n]

    def _pairs(self, queries: list[str], passages: list[str]) -> tuple[list[list[int]], list[int]]:
        """Token ids per pair and the length of each pair's ``[bos] query sep`` part."""
        q_enc = self._tok.encode_batch([self.query_prefix + q for q in queries], add_special_tokens=False)
        p_enc = self._tok.encode_batch([self.passage_prefix + p for p in passages], add_special_tokens=False)
        limit = self._max_length + len(self._sep) + len(self._prompt_ids)
        ids: list[list[int]] = []
        query_lengths: list[int] = []
        for q, p in zip(q_enc, p_enc):
            first = ([self.bos_id] if self._add_bos and self.bos_id is not None else []) + self._cut(
                q.ids, self.query_max_length
            )
            second = self._sep + self._cut(p.ids, self._max_length)
            # As FlagEmbedding ('only_second'): the passage absorbs the overflow, unless it is too
            # short to, in which case nothing is cut.
            overflow = len(first) + len(second) - limit
            if 0 < overflow < len(second):
                second = second[overflow:] if self.hf_tokenizer.truncation_side == "left" else second[:-overflow]
            ids.append(first + second + self._sep + self._prompt_ids)
            query_lengths.append(len(first) + len(self._sep))
        return ids, query_lengths

    # -- public API --------------------------------------------------------------------------------
    @property
    def model(self) -> torch.nn.Module:
        """The underlying torch module."""
        return self._model

    @property
    def device(self) -> str:
        """The torch device the model runs on."""
        return str(self._torch_device)

    @property
    def dtype(self) -> str:
        """The compute dtype of the model."""
        return str(self._torch_dtype).removeprefix("torch.")

    @property
    def tokenizer(self) -> Any:
        """The Hugging Face fast tokenizer."""
        return self.hf_tokenizer

    @property
    def max_length(self) -> int:
        """Token cap of a passage (the prompt and query come on top, as in FlagEmbedding)."""
        return self._max_length

    @property
    def kind(self) -> RerankerKind:
        """The reranker kind this class serves."""
        return self._kind

    def _batches(self, ids: Sequence[Sequence[int]]) -> list[list[int]]:
        return plan_batches(
            [len(x) for x in ids], max_batch_size=self.batch_size, max_batch_tokens=self.max_batch_tokens
        )

    def _progress(self, batches: list[list[int]]) -> Any:
        show = self.show_progress if self.show_progress is not None else len(batches) > 4
        if not show:
            return batches
        from tqdm.auto import tqdm

        return tqdm(batches, desc="reranking", unit="batch", dynamic_ncols=True)

    def _tensors(self, rows: Sequence[Sequence[int]], left: bool) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        longest = max(len(r) for r in rows)
        input_ids = np.full((len(rows), longest), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), longest), dtype=np.int64)
        for i, r in enumerate(rows):
            if left:
                input_ids[i, longest - len(r) :] = r
                mask[i, longest - len(r) :] = 1
            else:
                input_ids[i, : len(r)] = r
                mask[i, : len(r)] = 1
        return torch.from_numpy(input_ids).to(self._torch_device), torch.from_numpy(mask).to(self._torch_device)

    def _score_batch(self, rows: list[list[int]], query_lengths: list[int]) -> torch.Tensor:
        """(layers, batch) scores; one layer here."""

        # Left padding puts every row's last token in the last column: one logits column per batch.
        input_ids, mask = self._tensors(rows, left=True)
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        out = self._model(
            input_ids=input_ids, attention_mask=mask, position_ids=positions, logits_to_keep=1, use_cache=False
        )
        logits: torch.Tensor = out.logits[:, -1, self.yes_id]
        return logits.float()[None]

    def _score_all(self, pairs: Sequence[tuple[str, str]]) -> FloatArray:
        import torch

        queries, passages = _check_pairs(pairs)
        n_layers = len(getattr(self, "layers", [0]))
        out = np.zeros((n_layers, len(queries)), dtype=np.float32)
        if not queries:
            return out
        ids, query_lengths = self._pairs(queries, passages)
        batches = self._batches(ids)
        with self._forward_lock, torch.inference_mode():
            for batch in self._progress(batches):
                scores = self._score_batch([ids[i] for i in batch], [query_lengths[i] for i in batch])
                out[:, batch] = scores.cpu().numpy()
        return out

    def score(self, pairs: Sequence[tuple[str, str]], *, normalize: bool = False) -> FloatArray:
        """One score per (query, passage) pair (``normalize=True`` applies a sigmoid).

        For the layer-wise kinds this is the score of the last (deepest) chosen layer; see
        ``score_layers`` for all of them.
        """
        out = self._score_all(pairs)[-1]
        return _sigmoid(out) if normalize else out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model_name!r}, max_length={self._max_length})"


class _LayeredReranker(LLMReranker):
    """Shared by the two kinds that score several layers with their own heads."""

    _settings: Any

    def _settings_from_config(self) -> Any:
        raise NotImplementedError

    def _choose_layers(self, cutoff_layers: Sequence[int] | int | None) -> list[int]:
        available: list[int] = self._settings.layers
        if cutoff_layers is None:
            return [self._settings.num_hidden_layers]
        chosen = [cutoff_layers] if isinstance(cutoff_layers, int) else list(cutoff_layers)
        bad = [c for c in chosen if c not in available]
        if bad or not chosen:
            raise ValueError(
                f"cutoff_layers {bad or chosen} have no head in {self.model_name}; choose from {available}"
            )
        return sorted(set(chosen))

    def _prepare_tokens(self) -> None:
        if self.bos_id is None:
            raise RerankerKindError(f"{self.model_name}'s tokenizer has no BOS token, which this reranker needs")
        self._add_bos = True

    def _load_model(self) -> torch.nn.Module:
        from bge_core.llm_reranker_models import load_state_dict

        net = self._build()
        state = load_state_dict(self.model_dir)
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing:
            raise BGEError(
                f"{self.model_dir} lacks weights {sorted(missing)[:5]} (and {max(len(missing) - 5, 0)} more) of "
                f"a {self._kind}; re-download the checkpoint"
            )
        if unexpected:
            logger.info("ignored %d unused weights of %s", len(unexpected), self.model_dir)
        return net

    def _build(self) -> torch.nn.Module:
        raise NotImplementedError

    def score_layers(self, pairs: Sequence[tuple[str, str]], *, normalize: bool = False) -> FloatArray:
        """Scores of every chosen layer: shape ``(len(self.layers), len(pairs))``, shallow first."""
        out = self._score_all(pairs)
        return _sigmoid(out) if normalize else out


class LayerwiseLLMReranker(_LayeredReranker):
    """bge-reranker-v2-minicpm-layerwise (kind ``"layerwise-reranker"``).

    ``cutoff_layers`` picks the layers to score (each has its own head; default: the last
    layer). ``score`` returns the deepest chosen layer's score, ``score_layers`` all of them.
    Other arguments as :class:`LLMReranker`.
    """

    _kind: RerankerKind = "layerwise-reranker"

    def __init__(
        self,
        model: str | os.PathLike[str] = "BAAI/bge-reranker-v2-minicpm-layerwise",
        *,
        cutoff_layers: Sequence[int] | int | None = None,
        **options: Any,
    ) -> None:
        self._cutoff = cutoff_layers
        super().__init__(model, **options)

    def _check_config(self) -> None:
        from bge_core.llm_reranker_models import MiniCPMSettings

        head = self.config.get("head_type", "simple")
        if head != "simple":
            raise RerankerKindError(
                f"{self.model_name} is a layer-wise MiniCPM with head_type={head!r}; only the one-logit "
                "'simple' heads of bge-reranker-v2-minicpm-layerwise score pairs"
            )
        self._settings = MiniCPMSettings.from_config(self.config)
        self.layers = self._choose_layers(self._cutoff)

    def _build(self) -> torch.nn.Module:
        from bge_core.llm_reranker_models import LayerwiseMiniCPM

        return LayerwiseMiniCPM(self._settings)

    def _score_batch(self, rows: list[list[int]], query_lengths: list[int]) -> torch.Tensor:
        input_ids, mask = self._tensors(rows, left=False)
        return self._model(input_ids, mask, self.layers)  # type: ignore[no-any-return]


class LightweightLLMReranker(_LayeredReranker):
    """bge-reranker-v2.5-gemma2-lightweight (kind ``"lightweight-reranker"``).

    ``cutoff_layers`` as :class:`LayerwiseLLMReranker` (FlagEmbedding scores the ``i``-th chosen
    layer with the ``i``-th head; so does this class). ``compress_ratio`` (1, 2, 4 or 8)
    mean-pools passage tokens before each of ``compress_layers`` (default ``[8]``). The prompt
    defaults to FlagEmbedding's lightweight prompt.
    """

    _kind: RerankerKind = "lightweight-reranker"
    _default_prompt = LIGHTWEIGHT_PROMPT

    def __init__(
        self,
        model: str | os.PathLike[str] = "BAAI/bge-reranker-v2.5-gemma2-lightweight",
        *,
        cutoff_layers: Sequence[int] | int | None = None,
        compress_ratio: int = 1,
        compress_layers: Sequence[int] = (8,),
        **options: Any,
    ) -> None:
        if compress_ratio not in (1, 2, 4, 8):
            raise ValueError(f"compress_ratio must be 1, 2, 4 or 8, got {compress_ratio}")
        self._cutoff = cutoff_layers
        self.compress_ratio = compress_ratio
        self.compress_layers = [int(c) for c in compress_layers]
        super().__init__(model, **options)

    def _check_config(self) -> None:
        from bge_core.llm_reranker_models import Gemma2Settings

        if not self.config.get("layer_wise", False):
            raise RerankerKindError(
                f"{self.model_name} is a CostWiseGemma checkpoint without layer_wise heads; only "
                "bge-reranker-v2.5-gemma2-lightweight-style (layer_wise=true) checkpoints score pairs"
            )
        self._settings = Gemma2Settings.from_config(self.config)
        self.layers = self._choose_layers(self._cutoff)

    def _build(self) -> torch.nn.Module:
        from bge_core.llm_reranker_models import LightweightGemma2

        return LightweightGemma2(self._settings)

    def _score_batch(self, rows: list[list[int]], query_lengths: list[int]) -> torch.Tensor:
        import torch

        input_ids, mask = self._tensors(rows, left=False)
        prompt_len = len(self._sep) + len(self._prompt_ids)
        return self._model(  # type: ignore[no-any-return]
            input_ids,
            mask,
            self.layers,
            query_lengths=torch.tensor(query_lengths, device=self._torch_device),
            prompt_lengths=torch.tensor([prompt_len] * len(rows), device=self._torch_device),
            compress_layers=self.compress_layers,
            compress_ratio=self.compress_ratio,
        )
