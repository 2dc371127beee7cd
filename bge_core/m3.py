"""BGE-M3: dense, sparse (lexical weights) and ColBERT vectors from one forward pass."""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from bge_core.encoder_base import (
    EncoderModel,
    StagedBatch,
    TransformerRunner,
    check_texts,
)
from bge_core.kinds import ModelSpec
from bge_core.loading import load_head_state_dict
from bge_core.scoring import dense_score, lexical_score, maxsim
from bge_core.types import FloatArray, M3Output, SparseVector

if TYPE_CHECKING:
    import torch

__all__ = ["BGEM3Encoder", "M3Scores"]


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


class BGEM3Encoder(EncoderModel):
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
        normalize: L2-normalise the dense vectors (BGE-M3's recipe; default ``True``).
        query_instruction / text_instruction: BGE-M3 uses no instruction; accepted empty (so
            that every embedding model takes the same options) and refused otherwise.
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
        normalize: bool = True,
        query_instruction: str | None = None,
        text_instruction: str | None = None,
    ) -> None:
        if query_instruction or text_instruction:
            raise ValueError(
                f"{os.fspath(model)} is a BGE-M3 model, which uses no query instruction; drop "
                "query_instruction / text_instruction (or use a v1.5 dense model)"
            )
        self.load_spec = ModelSpec.create(
            model,
            "m3",
            device=device,
            dtype=dtype,
            max_length=max_length,
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            sparse=sparse,
            colbert=colbert,
            normalize=normalize,
        )
        self.normalize = normalize
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
        self._unused_ids = np.array(self._runner.special_token_ids(), dtype=np.int64)

    def _load_head(self, name: str, hidden: int) -> torch.nn.Linear:
        """Load a head; it runs in float32 on fp32 models and in the model's dtype otherwise
        (as FlagEmbedding with ``use_fp16``); normalisation always runs in float32."""
        import torch

        state = load_head_state_dict(self._runner.model_dir, name)
        weight = state.get("weight")
        if weight is None or weight.ndim != 2 or weight.shape[1] != hidden:
            raise ValueError(f"{name} in {self._runner.model_dir} does not fit the model (hidden size {hidden})")
        head = torch.nn.Linear(hidden, int(weight.shape[0]), bias="bias" in state)
        head.load_state_dict(state)
        return head.to(device=self._runner.device, dtype=self._runner.dtype).eval()

    # -- properties ------------------------------------------------------------------------
    @property
    def colbert_dim(self) -> int:
        """Size of each ColBERT token vector (0 when the head is not loaded)."""
        return 0 if self._colbert_head is None else int(self._colbert_head.out_features)

    @property
    def supports_sparse(self) -> bool:
        """Whether the sparse head is loaded."""
        return self._sparse_head is not None

    @property
    def supports_colbert(self) -> bool:
        """Whether the ColBERT head is loaded."""
        return self._colbert_head is not None

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
            return M3Output(dense=np.zeros((0, self.dim), dtype=np.float32) if dense else None)
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

    def _encode_ids(self, ids: list[list[int]], *, dense: bool, sparse: bool, colbert: bool) -> M3Output:
        result = _Collector(len(ids), self.dim, self.colbert_dim, dense=dense, sparse=sparse, colbert=colbert)

        def project(out: Any, inputs: dict[str, torch.Tensor], batch_ids: list[list[int]]) -> dict[str, torch.Tensor]:
            return self._heads(out.last_hidden_state, batch_ids, dense=dense, sparse=sparse, colbert=colbert)

        self._runner.executor.run(ids, project, lambda batch: self._collect(batch, result))
        return result.output()

    def _heads(
        self, hidden: torch.Tensor, batch_ids: list[list[int]], *, dense: bool, sparse: bool, colbert: bool
    ) -> dict[str, torch.Tensor]:
        """The M3 heads on one batch's token states (device tensors, unpacked by :meth:`_collect`)."""
        import torch

        runner = self._runner
        out: dict[str, torch.Tensor] = {}
        if dense:
            cls = hidden[:, 0].float()
            out["dense"] = torch.nn.functional.normalize(cls, dim=-1) if self.normalize else cls
        if sparse:
            assert self._sparse_head is not None
            head = self._sparse_head
            out["sparse"] = torch.relu(head(hidden.to(head.weight.dtype))).squeeze(-1).float()
        if colbert:
            assert self._colbert_head is not None
            head = self._colbert_head
            # Only the kept token vectors (all but CLS, no padding) are projected and leave
            # the device, packed; the gather index is built on the host (no device sync).
            width = hidden.shape[1]
            rows = np.concatenate([r * width + np.arange(1, len(x)) for r, x in enumerate(batch_ids)])
            gather = torch.from_numpy(rows).to(runner.device, non_blocking=True)
            tokens = hidden.reshape(-1, hidden.shape[-1]).index_select(0, gather)
            vecs = torch.nn.functional.normalize(head(tokens.to(head.weight.dtype)).float(), dim=-1)
            if runner.device.type != "cpu" and runner.dtype != torch.float32:
                # Unit vectors cross the bus as fp16 (half the bytes, ~5e-4 error, below the
                # half-precision model's own); the host widens them to float32.
                vecs = vecs.half()
            out["colbert"] = vecs
        return out

    def _collect(self, batch: StagedBatch, result: _Collector) -> None:
        import torch

        idx = batch.positions
        lengths = [len(x) for x in batch.ids]
        outputs = batch.outputs
        if "dense" in outputs and result.dense is not None:
            result.dense[idx] = outputs["dense"].numpy()
        if "sparse" in outputs:
            w_np = outputs["sparse"].numpy()
            for row, i in enumerate(idx):
                result.sparse[i] = self._lexical(batch.ids[row], w_np[row, : lengths[row]])
        if "colbert" in outputs:
            host = outputs["colbert"]
            if host.dtype != torch.float32:
                host = host.float()
            elif batch.staged:
                # The staged buffer is reused two batches later: copy out (torch's CPU kernels
                # are multi-threaded, numpy's copy is not).
                host = host.clone()
            packed = host.numpy()
            bounds = np.cumsum([n - 1 for n in lengths])[:-1]
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
