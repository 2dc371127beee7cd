"""Shared machinery of the model classes: loading, tokenising, batching and the forward pass.

torch and transformers are imported here only inside functions, when a model is loaded.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bge_core.batching import plan_batches
from bge_core.loading import resolve_model_dir
from bge_core.runtime import resolve_device, resolve_dtype

if TYPE_CHECKING:
    import torch
    from tokenizers import Encoding, Tokenizer

__all__ = ["TransformerRunner", "check_texts"]

logger = logging.getLogger(__name__)


def check_texts(texts: object, what: str = "texts") -> list[str]:
    """Validate a batch of texts: a list (or other non-str sequence/iterable) of ``str``."""
    if isinstance(texts, str):
        raise TypeError(
            f"{what} must be a list of strings, got a single str; wrap it: [{texts[:30]!r}]"
        )
    if isinstance(texts, (bytes, bytearray)) or not isinstance(texts, Iterable):
        raise TypeError(f"{what} must be a list of strings, got {type(texts).__name__}")
    items = list(texts)
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise TypeError(
                f"{what}[{i}] is {type(t).__name__}, not str; every element must be a string"
            )
    return items


def _default_threads() -> None:
    """Use all cores for intra-op work unless the user pinned a number."""
    import torch

    if "OMP_NUM_THREADS" not in os.environ and "MKL_NUM_THREADS" not in os.environ:
        n = os.cpu_count() or 1
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)


class TransformerRunner:
    """Loads a transformers model + fast tokenizer and runs length-sorted, token-budgeted batches.

    Tokenisation uses a private copy of the Rust tokenizer whose truncation is configured
    once, so concurrent calls from several threads never mutate shared tokenizer state
    (the cause of "Already borrowed" errors). Forward passes are serialised by a lock.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        auto_class: str,
        device: str,
        dtype: str,
        max_length: int | None,
        batch_size: int | None,
        max_batch_tokens: int | None,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        import torch
        import transformers
        from tokenizers import Tokenizer

        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model_dir: Path = resolve_model_dir(model)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        if self.device.type == "cpu":
            _default_threads()
        self.hf_tokenizer = transformers.AutoTokenizer.from_pretrained(str(self.model_dir))
        if not getattr(self.hf_tokenizer, "is_fast", False):
            raise TypeError(f"{self.model_dir} has no fast tokenizer (tokenizer.json); convert it")
        cls = getattr(transformers, auto_class)
        kwargs: dict[str, Any] = {"dtype": torch.float32}
        kwargs.update(model_kwargs or {})
        try:
            net = cls.from_pretrained(str(self.model_dir), attn_implementation="sdpa", **kwargs)
        except (ValueError, ImportError):
            net = cls.from_pretrained(str(self.model_dir), **kwargs)
        net.eval()
        self.model: torch.nn.Module = net.to(device=self.device, dtype=self.dtype)
        config = net.config
        self.hidden_size = int(config.hidden_size)
        model_max = int(getattr(config, "max_position_embeddings", 512))
        # RoBERTa-style position ids start after the padding index.
        if getattr(config, "model_type", "") in {"xlm-roberta", "roberta", "camembert"}:
            model_max -= int(getattr(config, "pad_token_id", 1) or 1) + 1
        tok_max = int(getattr(self.hf_tokenizer, "model_max_length", model_max) or model_max)
        limit = min(model_max, tok_max) if tok_max < 10**9 else model_max
        self.max_length = min(max_length, limit) if max_length else limit
        # Defaults: CPU batches stay small (cache-friendly); GPUs want many tokens per launch.
        self.batch_size = batch_size or (64 if self.device.type == "cpu" else 256)
        if max_batch_tokens is None:
            max_batch_tokens = 16384 if self.device.type == "cpu" else 262144
        self.max_batch_tokens = max(max_batch_tokens, self.max_length)
        self.pad_id = int(self.hf_tokenizer.pad_token_id if self.hf_tokenizer.pad_token_id is not None else 0)
        self.uses_token_type = "token_type_ids" in self.hf_tokenizer.model_input_names and bool(
            getattr(config, "type_vocab_size", 0) > 1
        )
        self._tokenizer: Tokenizer = Tokenizer.from_str(self.hf_tokenizer.backend_tokenizer.to_str())
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(self.max_length)
        self._forward_lock = threading.Lock()

    # -- tokenisation -----------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids with special tokens, truncated to ``max_length`` (warns once per call)."""
        if not texts:
            return []
        encs: list[Encoding] = self._tokenizer.encode_batch(list(texts), add_special_tokens=True)
        truncated = sum(1 for e in encs if e.overflowing)
        if truncated:
            logger.warning(
                "%d of %d texts were longer than max_length=%d tokens and were truncated",
                truncated,
                len(texts),
                self.max_length,
            )
        return [e.ids for e in encs]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts after truncation."""
        return [len(ids) for ids in self.tokenize(texts)]

    # -- batching -----------------------------------------------------------------------------
    def batches(self, ids: Sequence[Sequence[int]]) -> list[list[int]]:
        """Plan length-sorted batches over tokenised inputs."""
        return plan_batches(
            [len(x) for x in ids], max_batch_size=self.batch_size, max_batch_tokens=self.max_batch_tokens
        )

    def collate(
        self, ids: Sequence[Sequence[int]], token_types: Sequence[Sequence[int]] | None = None
    ) -> dict[str, torch.Tensor]:
        """Right-pad a batch into tensors on the model's device."""
        import torch

        longest = max(len(x) for x in ids)
        input_ids = np.full((len(ids), longest), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), longest), dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        batch = {
            "input_ids": torch.from_numpy(input_ids).to(self.device),
            "attention_mask": torch.from_numpy(mask).to(self.device),
        }
        if self.uses_token_type or token_types is not None:
            tt = np.zeros((len(ids), longest), dtype=np.int64)
            for row, seq in enumerate(token_types or []):
                tt[row, : len(seq)] = seq
            batch["token_type_ids"] = torch.from_numpy(tt).to(self.device)
        return batch

    def forward(self, batch: dict[str, torch.Tensor], module: torch.nn.Module | None = None) -> Any:
        """One inference forward of ``module`` (default: the loaded model) under the lock."""
        import torch

        net = module if module is not None else self.model
        with self._forward_lock, torch.inference_mode():
            return net(**batch, return_dict=True)
