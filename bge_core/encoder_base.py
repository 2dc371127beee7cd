"""Shared machinery of the model classes: loading, tokenising, batching and the forward pass.

torch and transformers are imported here only inside functions, when a model is loaded.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from bge_core.batching import plan_batches
from bge_core.checks import check_max_length, check_unicode
from bge_core.load_report import install_load_report_filter
from bge_core.loading import resolve_model_dir
from bge_core.runtime import cpu_threads_for, resolve_device, resolve_dtype
from bge_core.tokenizer_cache import TokenizerFacts, read_tokenizer_facts, write_tokenizer_facts

if TYPE_CHECKING:
    import torch
    from tokenizers import Encoding, Tokenizer

__all__ = [
    "EncoderModel",
    "HostSlots",
    "RunnerModel",
    "StagedBatch",
    "StagedExecutor",
    "TransformerRunner",
    "check_texts",
    "pool",
    "special_token_ids",
]

logger = logging.getLogger(__name__)


def special_token_ids(tokenizer: Any) -> list[int]:
    """Ids of ``tokenizer``'s CLS, EOS, PAD and UNK tokens (those it defines), sorted: the ids
    BGE-M3 gives no lexical weight, at inference and in FlagEmbedding's training loss."""
    ids = {tokenizer.cls_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id}
    return sorted(int(i) for i in ids if i is not None)


def check_texts(texts: object, what: str = "texts") -> list[str]:
    """Validate a batch of texts: a list (or other non-str sequence/iterable) of ``str``."""
    if isinstance(texts, str):
        raise TypeError(f"{what} must be a list of strings, got a single str; wrap it: [{texts[:30]!r}]")
    if isinstance(texts, (bytes, bytearray)) or not isinstance(texts, Iterable):
        raise TypeError(f"{what} must be a list of strings, got {type(texts).__name__}")
    items = list(texts)
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise TypeError(f"{what}[{i}] is {type(t).__name__}, not str; every element must be a string")
    check_unicode(items, what)  # an unpaired surrogate: a clear ValueError, not the tokenizer's TypeError
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
        from tokenizers import Tokenizer

        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_length is not None:
            check_max_length(max_length)
        install_load_report_filter()  # the expected "pooler.* MISSING" report reads like a failure
        self.model_dir: Path = resolve_model_dir(model)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        if self.device.type == "cpu":
            _default_threads()
        # The tokenizer facts come from the cache (bge_core.tokenizer_cache) when an earlier run
        # stored them: then neither the tokenizer nor the model import transformers.
        self._hf_tokenizer: Any = None
        facts = read_tokenizer_facts(self.model_dir)
        if facts is None:
            facts = TokenizerFacts.of(self.hf_tokenizer)
            write_tokenizer_facts(self.model_dir, facts)
        self.tokenizer_facts = facts
        net = self._load_light(auto_class, model_kwargs)
        if net is None:
            import transformers

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
        tok_max = int(facts.model_max_length or model_max)
        limit = min(model_max, tok_max) if tok_max < 10**9 else model_max
        self.max_length = min(max_length, limit) if max_length else limit
        # Defaults: CPU batches stay small (cache-friendly); GPUs want many tokens per launch.
        self.batch_size = batch_size or (64 if self.device.type == "cpu" else 256)
        if max_batch_tokens is None:
            max_batch_tokens = 16384 if self.device.type == "cpu" else 262144
        self.max_batch_tokens = max(max_batch_tokens, self.max_length)
        self.pad_id = int(facts.pad_token_id if facts.pad_token_id is not None else 0)
        self.uses_token_type = "token_type_ids" in facts.model_input_names and bool(
            getattr(config, "type_vocab_size", 0) > 1
        )
        self._tokenizer: Tokenizer = Tokenizer.from_str(facts.backend)
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(self.max_length)
        self._forward_lock = threading.Lock()
        self.executor = StagedExecutor(self)

    @property
    def hf_tokenizer(self) -> Any:
        """The transformers fast tokenizer (loaded on first use when the facts came from the cache)."""
        if self._hf_tokenizer is None:
            import transformers

            tok = transformers.AutoTokenizer.from_pretrained(str(self.model_dir))
            if not getattr(tok, "is_fast", False):
                raise TypeError(f"{self.model_dir} has no fast tokenizer (tokenizer.json); convert it")
            self._hf_tokenizer = tok
        return self._hf_tokenizer

    def num_special_tokens(self, *, pair: bool = False) -> int:
        """Special tokens the tokenizer adds to one text (``pair=False``) or a pair."""
        facts = self.tokenizer_facts
        return facts.special_tokens_pair if pair else facts.special_tokens_single

    def _load_light(self, auto_class: str, model_kwargs: dict[str, Any] | None) -> Any:
        """The light BERT / XLM-R encoder (bge_core.light_model: no transformers modeling import,
        bit-identical outputs) for plain ``AutoModel`` loads it supports, else ``None``."""
        if auto_class != "AutoModel" or model_kwargs:
            return None
        from bge_core.light_model import light_config, load_light_model

        config = light_config(self.model_dir)
        return load_light_model(self.model_dir, config) if config is not None else None

    def set_max_length(self, max_length: int) -> None:
        """Lower the token cap (never above what the model supports); tokenisation follows."""
        self.max_length = min(max_length, self.max_length)
        self.max_batch_tokens = max(self.max_batch_tokens, self.max_length)
        self._tokenizer.enable_truncation(self.max_length)

    def plain_tokenizer(self) -> Tokenizer:
        """A private copy of the fast tokenizer without truncation (for pair templates)."""
        from tokenizers import Tokenizer

        tok: Tokenizer = Tokenizer.from_str(self._tokenizer.to_str())
        tok.no_truncation()
        return tok

    def special_token_ids(self) -> list[int]:
        """Ids of the CLS, EOS, PAD and UNK tokens (those the model defines)."""
        return special_token_ids(self.tokenizer_facts)

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
        tokens = int(batch["input_ids"].numel()) if self.device.type == "cpu" else 1 << 62
        with self._forward_lock, torch.inference_mode(), cpu_threads_for(tokens):
            return net(**batch, return_dict=True)


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: Literal["cls", "mean"]) -> torch.Tensor:
    """Sentence vectors from token states: the CLS token, or the mean over unmasked tokens."""
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class HostSlots:
    """Reusable host buffers for device-to-host copies of staged batches.

    Allocating pinned memory is slow (it dominated GPU encode time when done per batch), so
    each (slot, output) keeps a buffer that only grows. Two slots alternate: batch i is being
    unpacked from one while batch i+1 is copied into the other. ``pin`` page-locks the buffers
    (CUDA); without it the same staging runs with ordinary memory (tests run it on CPU).
    """

    def __init__(self, *, pin: bool) -> None:
        self._pin = pin
        self._buffers: dict[tuple[int, str], torch.Tensor] = {}

    def copy(self, t: torch.Tensor, slot: int, name: str) -> torch.Tensor:
        """Start copying ``t`` to the host; returns a view valid until the slot is reused."""
        import torch

        nbytes = t.numel() * t.element_size()
        buf = self._buffers.get((slot, name))
        if buf is None or buf.numel() < nbytes:
            buf = torch.empty(max(nbytes, 1 << 20), dtype=torch.uint8, pin_memory=self._pin)
            self._buffers[(slot, name)] = buf
        host = buf[:nbytes].view(t.dtype).view(t.shape)
        return host.copy_(t, non_blocking=self._pin)


@dataclass
class StagedBatch:
    """One batch after its forward: input positions, token ids and host-side outputs.

    When ``staged`` is true the outputs live in reused host buffers: a collector must copy
    what it keeps before returning.
    """

    positions: list[int]
    ids: list[list[int]]
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)
    staged: bool = False
    event: Any = None


#: ``(model output, collated inputs, token ids) -> named device tensors`` (the model's heads).
Project = Callable[[Any, "dict[str, torch.Tensor]", "list[list[int]]"], "dict[str, torch.Tensor]"]
#: Receives each finished batch, in launch order.
Collect = Callable[[StagedBatch], None]


class StagedExecutor:
    """Runs a model over planned batches as a software pipeline.

    Batch i+1 is launched before batch i's outputs are collected on the host, so on a GPU the
    device-to-host copies (into alternating pinned slots, see :class:`HostSlots`) and the host
    work of the collector overlap the next forward. On CPU outputs are used in place.

    Args:
        runner: the model runner.
        stage: copy outputs through the host slots (default: on CUDA only).
        pin: page-lock the slots (default: on CUDA only).
    """

    def __init__(self, runner: TransformerRunner, *, stage: bool | None = None, pin: bool | None = None) -> None:
        cuda = runner.device.type == "cuda"
        self.runner = runner
        self.stage = cuda if stage is None else stage
        self.pin = cuda if pin is None else pin
        self._lock = threading.Lock()
        self._free: list[HostSlots] = []

    def run(
        self,
        ids: Sequence[Sequence[int]],
        project: Project,
        collect: Collect,
        token_types: Sequence[Sequence[int]] | None = None,
    ) -> None:
        """Forward every batch of ``ids`` through ``project`` and hand each to ``collect``."""
        pending: StagedBatch | None = None
        with self._lock:
            # Concurrent callers each get their own buffers (the forward lock serialises them anyway).
            slots = self._free.pop() if self._free else HostSlots(pin=self.pin)
        try:
            for step, positions in enumerate(self.runner.batches(ids)):
                staged = self._launch(ids, token_types, positions, project, slots, step % 2)
                if pending is not None:
                    self._finish(pending, collect)
                pending = staged
            if pending is not None:
                self._finish(pending, collect)
        finally:
            with self._lock:
                self._free.append(slots)

    def _launch(
        self,
        ids: Sequence[Sequence[int]],
        token_types: Sequence[Sequence[int]] | None,
        positions: list[int],
        project: Project,
        slots: HostSlots,
        slot: int,
    ) -> StagedBatch:
        import torch

        runner = self.runner
        batch_ids = [list(ids[i]) for i in positions]
        types = [token_types[i] for i in positions] if token_types is not None else None
        inputs = runner.collate(batch_ids, types)
        batch = StagedBatch(positions=positions, ids=batch_ids, staged=self.stage)
        with torch.inference_mode():
            tensors = project(runner.forward(inputs), inputs, batch_ids)
            for name, t in tensors.items():
                batch.outputs[name] = slots.copy(t, slot, name) if self.stage else t
            if runner.device.type == "cuda":
                batch.event = torch.cuda.Event()  # type: ignore[no-untyped-call]
                batch.event.record()
        return batch

    @staticmethod
    def _finish(batch: StagedBatch, collect: Collect) -> None:
        if batch.event is not None:
            batch.event.synchronize()
        collect(batch)


class RunnerModel:
    """Properties every model class built on a :class:`TransformerRunner` shares."""

    _runner: TransformerRunner
    model_name: str

    @property
    def model(self) -> torch.nn.Module:
        """The underlying torch module (bge_core.light_model's encoder, or a transformers model)."""
        return self._runner.model

    @property
    def tokenizer(self) -> Any:
        """The Hugging Face fast tokenizer."""
        return self._runner.hf_tokenizer

    @property
    def max_length(self) -> int:
        """Token cap per input."""
        return self._runner.max_length

    @property
    def device(self) -> str:
        """The torch device the model runs on."""
        return str(self._runner.device)

    @property
    def dtype(self) -> str:
        """The compute dtype of the transformer."""
        return str(self._runner.dtype).removeprefix("torch.")

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Number of tokens of each text after truncation (including special tokens)."""
        return self._runner.count_tokens(check_texts(texts))

    def num_special_tokens(self, *, pair: bool = False) -> int:
        """Special tokens ([CLS], [SEP], ...) the tokenizer adds to one text, or to a pair."""
        return self._runner.num_special_tokens(pair=pair)


class EncoderModel(RunnerModel):
    """:class:`RunnerModel` plus the dense vector size (embedding models)."""

    @property
    def dim(self) -> int:
        """Size of the dense vectors."""
        return self._runner.hidden_size
