"""BGE-M3: dense, sparse (lexical weights) and ColBERT vectors from one forward pass."""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bge_core.encoder_base import TransformerRunner, check_texts
from bge_core.loading import load_head_state_dict
from bge_core.scoring import dense_score, lexical_score, maxsim
from bge_core.types import FloatArray, M3Output, SparseVector

if TYPE_CHECKING:
    import torch

__all__ = ["BGEM3Encoder", "M3Scores"]


class _PinnedSlots:
    """Reusable page-locked host buffers for asynchronous device-to-host copies.

    Allocating pinned memory is slow (it dominated GPU encode time when done per batch), so
    each (slot, output) keeps a buffer that only grows. Two slots alternate: batch i is being
    unpacked from one while batch i+1 is copied into the other.
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple[int, str], torch.Tensor] = {}
        self._lock = threading.Lock()

    def copy(self, t: torch.Tensor, slot: int, name: str) -> torch.Tensor:
        """Start copying ``t`` to the host; returns a view valid until the slot is reused."""
        import torch

        if t.device.type == "cpu":
            return t
        nbytes = t.numel() * t.element_size()
        with self._lock:
            buf = self._buffers.get((slot, name))
            if buf is None or buf.numel() < nbytes:
                buf = torch.empty(max(nbytes, 1 << 20), dtype=torch.uint8, pin_memory=True)
                self._buffers[(slot, name)] = buf
        host = buf[:nbytes].view(t.dtype).view(t.shape)
        return host.copy_(t, non_blocking=True)


@dataclass
class _Staged:
    """Host-side tensors of a launched batch (valid after ``event`` completes)."""

    batch_idx: list[int]
    batch_ids: list[list[int]]
    lengths: list[int]
    dense: torch.Tensor | None = None
    sparse: torch.Tensor | None = None
    colbert: torch.Tensor | None = None
    event: Any = None
    pinned: bool = False


class _Collector:
    """Output arrays filled batch by batch in input order."""

    def __init__(self, n: int, dim: int, colbert_dim: int, *, dense: bool, sparse: bool, colbert: bool) -> None:
        self.dense = np.zeros((n, dim), dtype=np.float32) if dense else None
        self.sparse: list[SparseVector] = [SparseVector.empty()] * n if sparse else []
        empty = np.zeros((0, colbert_dim), np.float32)
        self.colbert: list[FloatArray] = [empty] * n if colbert else []

    def output(self) -> M3Output:
        return M3Output(dense=self.dense, sparse=self.sparse, colbert=self.colbert)

logger = logging.getLogger(__name__)

M3Scores = dict[str, list[float]]


class BGEM3Encoder:
    """BGE-M3 encoder: ``encode`` computes any of dense / sparse / ColBERT in ONE forward pass.

    Args:
        model: hub id (``"BAAI/bge-m3"``) or local folder with ``colbert_linear.pt`` and
            ``sparse_linear.pt`` (or ``.safetensors``).
        device: ``"auto"`` (cuda, mps, cpu), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
        dtype: ``"auto"`` (bf16 on CPUs with AMX/AVX512-BF16 and on CUDA, fp32 on other CPUs),
            ``"float32"``, ``"bfloat16"``, ``"float16"``.
        max_length: token cap per text (longer texts are truncated with a logged warning).
        batch_size: most texts per forward pass (default 64 on CPU, 256 on GPU).
        max_batch_tokens: most padded tokens per forward pass (bounds memory).
        sparse / colbert: set to ``False`` to load a checkpoint without that head; the
            output can then not be requested.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = "BAAI/bge-m3",
        *,
        device: str = "auto",
        dtype: str = "auto",
        max_length: int = 8192,
        batch_size: int | None = None,
        max_batch_tokens: int | None = None,
        sparse: bool = True,
        colbert: bool = True,
    ) -> None:

        self._runner = TransformerRunner(
            model,
            auto_class="AutoModel",
            device=device,
            dtype=dtype,
            max_length=max_length,
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
        )
        self.model_name = os.fspath(model)
        hidden = self._runner.hidden_size
        self._colbert_head: torch.nn.Linear | None = None
        self._sparse_head: torch.nn.Linear | None = None
        if colbert:
            self._colbert_head = self._load_head("colbert_linear", hidden)
        if sparse:
            self._sparse_head = self._load_head("sparse_linear", hidden)
        tok = self._runner.hf_tokenizer
        self._slots_lock = threading.Lock()
        self._free_slots: list[_PinnedSlots] = []
        unused = {tok.cls_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id}
        self._unused_ids = np.array(sorted(i for i in unused if i is not None), dtype=np.int64)

    def _load_head(self, name: str, hidden: int) -> torch.nn.Linear:
        """Load a head; it runs in float32 on fp32 models and in the model's dtype otherwise
        (as FlagEmbedding with ``use_fp16``); normalisation always runs in float32."""
        import torch

        state = load_head_state_dict(self._runner.model_dir, name)
        weight = state.get("weight")
        if weight is None or weight.ndim != 2 or weight.shape[1] != hidden:
            raise ValueError(
                f"{name} in {self._runner.model_dir} does not fit the model (hidden size {hidden})"
            )
        head = torch.nn.Linear(hidden, int(weight.shape[0]), bias="bias" in state)
        head.load_state_dict(state)
        return head.to(device=self._runner.device, dtype=self._runner.dtype).eval()

    # -- properties ------------------------------------------------------------------------
    @property
    def model(self) -> torch.nn.Module:
        """The underlying transformers module (XLM-RoBERTa for BGE-M3)."""
        return self._runner.model

    @property
    def tokenizer(self) -> Any:
        """The Hugging Face fast tokenizer."""
        return self._runner.hf_tokenizer

    @property
    def dim(self) -> int:
        """Size of the dense vectors."""
        return self._runner.hidden_size

    @property
    def colbert_dim(self) -> int:
        """Size of each ColBERT token vector (0 when the head is not loaded)."""
        return 0 if self._colbert_head is None else int(self._colbert_head.out_features)

    @property
    def max_length(self) -> int:
        """Token cap per text."""
        return self._runner.max_length

    @property
    def supports_sparse(self) -> bool:
        """Whether the sparse head is loaded."""
        return self._sparse_head is not None

    @property
    def supports_colbert(self) -> bool:
        """Whether the ColBERT head is loaded."""
        return self._colbert_head is not None

    @property
    def device(self) -> str:
        """The torch device the model runs on."""
        return str(self._runner.device)

    @property
    def dtype(self) -> str:
        """The compute dtype of the transformer (heads always run in float32)."""
        return str(self._runner.dtype).removeprefix("torch.")

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Number of tokens of each text after truncation (including special tokens)."""
        return self._runner.count_tokens(check_texts(texts))

    # -- encoding --------------------------------------------------------------------------
    def encode(
        self,
        texts: Sequence[str],
        *,
        dense: bool = True,
        sparse: bool = True,
        colbert: bool = False,
    ) -> M3Output:
        """Encode ``texts`` once and return the requested outputs in input order."""
        items = check_texts(texts)
        self._check_outputs(dense, sparse, colbert)
        if not items:
            return M3Output(
                dense=np.zeros((0, self.dim), dtype=np.float32) if dense else None
            )
        ids = self._runner.tokenize(items)
        return self._encode_ids(ids, dense=dense, sparse=sparse, colbert=colbert)

    def encode_queries(
        self, texts: Sequence[str], *, dense: bool = True, sparse: bool = True, colbert: bool = False
    ) -> M3Output:
        """Encode queries (BGE-M3 uses no query instruction; same as :meth:`encode`)."""
        return self.encode(texts, dense=dense, sparse=sparse, colbert=colbert)

    def encode_documents(
        self, texts: Sequence[str], *, dense: bool = True, sparse: bool = True, colbert: bool = False
    ) -> M3Output:
        """Encode documents (same as :meth:`encode`; kept for symmetry with v1.5 models)."""
        return self.encode(texts, dense=dense, sparse=sparse, colbert=colbert)

    def encode_outputs(
        self, texts: Sequence[str], *, query: bool, dense: bool = True, sparse: bool = True, colbert: bool = False
    ) -> M3Output:
        """Index-facing encode (M3 treats queries and documents alike)."""
        return self.encode(texts, dense=dense, sparse=sparse, colbert=colbert)

    def iter_encode(
        self,
        texts: Iterable[str],
        *,
        dense: bool = True,
        sparse: bool = True,
        colbert: bool = False,
        chunk_size: int = 256,
    ) -> Iterator[M3Output]:
        """Stream outputs for an iterable of any length, ``chunk_size`` texts at a time.

        Memory is bounded by one chunk; each yielded output covers the next texts in order.
        """
        if isinstance(texts, str):
            check_texts(texts)
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        self._check_outputs(dense, sparse, colbert)
        it = iter(texts)
        offset = 0
        while chunk := list(itertools.islice(it, chunk_size)):
            try:
                check_texts(chunk)
            except TypeError as exc:
                raise TypeError(f"{exc} (position {offset} onwards in the stream)") from None
            yield self.encode(chunk, dense=dense, sparse=sparse, colbert=colbert)
            offset += len(chunk)

    def _check_outputs(self, dense: bool, sparse: bool, colbert: bool) -> None:
        if not (dense or sparse or colbert):
            raise ValueError("request at least one output: dense, sparse or colbert")
        if sparse and self._sparse_head is None:
            raise ValueError("sparse output requested but the encoder was created with sparse=False")
        if colbert and self._colbert_head is None:
            raise ValueError("colbert output requested but the encoder was created with colbert=False")

    def _encode_ids(
        self, ids: list[list[int]], *, dense: bool, sparse: bool, colbert: bool
    ) -> M3Output:
        n = len(ids)
        result = _Collector(n, self.dim, self.colbert_dim, dense=dense, sparse=sparse, colbert=colbert)
        # Software pipeline: batch i+1 is launched before batch i's outputs are unpacked on
        # the host, so on a GPU the device-to-host copies and the numpy work overlap compute.
        pending: _Staged | None = None
        with self._slots_lock:
            # Concurrent callers each get their own buffers (rare; the forward lock serialises them anyway).
            slots = self._free_slots.pop() if self._free_slots else _PinnedSlots()
        try:
            for step, batch_idx in enumerate(self._runner.batches(ids)):
                staged = self._launch([ids[i] for i in batch_idx], batch_idx, dense, sparse, colbert, slots, step % 2)
                if pending is not None:
                    self._unpack(pending, result)
                pending = staged
            if pending is not None:
                self._unpack(pending, result)
        finally:
            with self._slots_lock:
                self._free_slots.append(slots)
        return result.output()

    def _launch(
        self,
        batch_ids: list[list[int]],
        batch_idx: list[int],
        dense: bool,
        sparse: bool,
        colbert: bool,
        slots: _PinnedSlots,
        slot: int,
    ) -> _Staged:
        import torch

        runner = self._runner
        inputs = runner.collate(batch_ids)
        lengths = [len(x) for x in batch_ids]
        staged = _Staged(batch_idx=batch_idx, batch_ids=batch_ids, lengths=lengths, pinned=runner.device.type == "cuda")
        with torch.inference_mode():
            hidden = runner.forward(inputs).last_hidden_state
            if dense:
                staged.dense = slots.copy(torch.nn.functional.normalize(hidden[:, 0].float(), dim=-1), slot, "dense")
            if sparse:
                assert self._sparse_head is not None
                head = self._sparse_head
                weights = torch.relu(head(hidden.to(head.weight.dtype))).squeeze(-1).float()
                staged.sparse = slots.copy(weights, slot, "sparse")
            if colbert:
                assert self._colbert_head is not None
                head = self._colbert_head
                # Only the kept token vectors (all but CLS, no padding) are projected and leave
                # the device, packed; the gather index is built on the host (no device sync).
                width = hidden.shape[1]
                rows = np.concatenate([r * width + np.arange(1, n) for r, n in enumerate(lengths)])
                gather = torch.from_numpy(rows).to(runner.device, non_blocking=True)
                tokens = hidden.reshape(-1, hidden.shape[-1]).index_select(0, gather)
                vecs = torch.nn.functional.normalize(head(tokens.to(head.weight.dtype)).float(), dim=-1)
                if runner.device.type != "cpu" and runner.dtype != torch.float32:
                    # Unit vectors cross the bus as fp16 (half the bytes, ~5e-4 error, below the
                    # half-precision model's own); the host widens them to float32.
                    vecs = vecs.half()
                staged.colbert = slots.copy(vecs, slot, "colbert")
            if runner.device.type == "cuda":
                staged.event = torch.cuda.Event()  # type: ignore[no-untyped-call]
                staged.event.record()
        return staged

    def _unpack(self, staged: _Staged, result: _Collector) -> None:
        import torch

        if staged.event is not None:
            staged.event.synchronize()
        idx = staged.batch_idx
        if staged.dense is not None and result.dense is not None:
            result.dense[idx] = staged.dense.numpy()
        if staged.sparse is not None:
            w_np = staged.sparse.numpy()
            for row, i in enumerate(idx):
                result.sparse[i] = self._lexical(staged.batch_ids[row], w_np[row, : staged.lengths[row]])
        if staged.colbert is not None:
            host = staged.colbert
            if staged.pinned:
                # The pinned buffer is reused two batches later: copy out (torch's CPU kernels
                # are multi-threaded, numpy's copy is not), widening fp16 to float32 on the way.
                host = host.float() if host.dtype != torch.float32 else host.clone()
            packed = host.numpy()
            bounds = np.cumsum([n - 1 for n in staged.lengths])[:-1]
            for i, part in zip(idx, np.split(packed, bounds)):
                result.colbert[i] = part

    def _lexical(self, ids: Sequence[int], weights: np.ndarray) -> SparseVector:
        """Drop special / zero-weight tokens, merge repeated ids by max (FlagEmbedding's rule)."""
        tok = np.asarray(ids, dtype=np.int64)
        keep = (weights > 0) & ~np.isin(tok, self._unused_ids)
        tok, w = tok[keep], weights[keep].astype(np.float32)
        if tok.size == 0:
            return SparseVector.empty()
        order = np.lexsort((w, tok))
        tok, w = tok[order], w[order]
        last = np.r_[tok[1:] != tok[:-1], True]  # last of each id run holds the max weight
        return SparseVector(tok[last].astype(np.int32), w[last])

    # -- scoring ---------------------------------------------------------------------------
    def compute_score(
        self,
        pairs: Sequence[tuple[str, str]],
        weights: Sequence[float] = (1.0, 1.0, 1.0),
        *,
        max_query_length: int | None = None,
        max_passage_length: int | None = None,
    ) -> M3Scores:
        """Scores of (query, passage) pairs, equal to FlagEmbedding's ``compute_score``.

        Returns ``{"dense", "sparse", "colbert", "sparse+dense", "colbert+sparse+dense"}``
        lists; ``weights`` are for (dense, sparse, colbert).
        """
        if isinstance(pairs, tuple) and len(pairs) == 2 and all(isinstance(p, str) for p in pairs):
            raise TypeError("pairs must be a list of (query, passage) tuples; wrap it: [pair]")
        if len(weights) != 3:
            raise ValueError("weights must have 3 entries: (dense, sparse, colbert)")
        queries = check_texts([p[0] for p in pairs], "queries")
        passages = check_texts([p[1] for p in pairs], "passages")
        q = self._encode_capped(queries, max_query_length)
        p = self._encode_capped(passages, max_passage_length)
        w_d, w_s, w_c = (float(x) for x in weights)
        out: M3Scores = {k: [] for k in ("dense", "sparse", "colbert", "sparse+dense", "colbert+sparse+dense")}
        assert q.dense is not None and p.dense is not None
        for i in range(len(pairs)):
            d = float(dense_score(q.dense[i], p.dense[i]))
            s = lexical_score(q.sparse[i], p.sparse[i])
            c = maxsim(q.colbert[i], p.colbert[i])
            out["dense"].append(d)
            out["sparse"].append(s)
            out["colbert"].append(c)
            out["sparse+dense"].append((w_s * s + w_d * d) / (w_s + w_d))
            out["colbert+sparse+dense"].append((w_d * d + w_s * s + w_c * c) / (w_d + w_s + w_c))
        return out

    def _encode_capped(self, texts: list[str], cap: int | None) -> M3Output:
        if cap is None or cap >= self._runner.max_length:
            return self.encode(texts, dense=True, sparse=True, colbert=True)
        ids = [x[: cap - 1] + x[-1:] if len(x) > cap else x for x in self._runner.tokenize(texts)]
        return self._encode_ids(ids, dense=True, sparse=True, colbert=True)

    def __repr__(self) -> str:
        return (
            f"BGEM3Encoder(model={self.model_name!r}, device={self.device!r}, dtype={self.dtype!r}, "
            f"max_length={self.max_length})"
        )
