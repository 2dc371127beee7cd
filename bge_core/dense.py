"""Dense-only BGE encoders (v1.5 en/zh and any BERT-family model)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from bge_core.checks import check_max_length
from bge_core.encoder_base import (
    EncoderModel,
    StagedBatch,
    TransformerRunner,
    check_texts,
    pool,
)
from bge_core.kinds import ModelSpec
from bge_core.loading import read_sentence_transformers_config
from bge_core.models import model_info
from bge_core.types import FloatArray, M3Output

if TYPE_CHECKING:
    import torch

__all__ = ["DenseEncoder"]

_UNSET: Any = object()


class DenseEncoder(EncoderModel):
    """Dense sentence encoder: BGE v1.5 (CLS pooling, L2, query instruction) or any BERT-family model.

    Pooling, normalisation and max length come from, in order: the arguments, a
    sentence-transformers layout in the model folder (``modules.json``,
    ``1_Pooling/config.json``, ``sentence_bert_config.json``), the registry of known BGE
    models, and finally CLS pooling with L2 normalisation (the BGE recipe).

    ``query_instruction`` defaults to the model's known instruction (English or Chinese v1.5
    models) and to none otherwise; pass ``""`` to switch it off. ``text_instruction``
    (default none) prefixes documents.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        device: str = "auto",
        dtype: str = "auto",
        max_length: int | None = None,
        batch_size: int | None = None,
        max_batch_tokens: int | None = None,
        pooling: Literal["cls", "mean"] | None = None,
        normalize: bool | None = None,
        query_instruction: str | None = _UNSET,
        text_instruction: str | None = None,
    ) -> None:
        self.model_name = os.fspath(model)
        spec_options: dict[str, Any] = {
            "device": device,
            "dtype": dtype,
            "max_length": max_length,
            "batch_size": batch_size,
            "max_batch_tokens": max_batch_tokens,
            "pooling": pooling,
            "normalize": normalize,
            "text_instruction": text_instruction,
        }
        if query_instruction is not _UNSET:
            spec_options["query_instruction"] = query_instruction or ""
        self.load_spec = ModelSpec.create(model, "dense", **spec_options)
        info = model_info(self.model_name)
        self._runner = TransformerRunner(
            model,
            auto_class="AutoModel",
            device=device,
            dtype=dtype,
            max_length=None,
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
        )
        st = read_sentence_transformers_config(self._runner.model_dir)
        if max_length is not None:
            check_max_length(max_length)
        cap = max_length or st.get("max_length") or (info.max_length if info else None)
        if cap:
            self._runner.set_max_length(cap)
        self.pooling: Literal["cls", "mean"] = pooling or st.get("pooling") or (info.pooling if info else "cls")
        self.normalize: bool = normalize if normalize is not None else bool(st.get("normalize", True))
        if query_instruction is _UNSET:
            query_instruction = info.query_instruction if info else None
        self.query_instruction: str = query_instruction or ""
        self.text_instruction: str = text_instruction or ""

    supports_sparse = False
    supports_colbert = False
    colbert_dim = 0

    def encode(self, texts: Sequence[str]) -> FloatArray:
        """Embed ``texts`` as they are (no instruction): ``n x dim`` float32."""
        import torch

        items = check_texts(texts)
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        if not items:
            return out
        ids = self._runner.tokenize(items)

        def project(
            result: Any, inputs: dict[str, torch.Tensor], batch_ids: list[list[int]]
        ) -> dict[str, torch.Tensor]:
            vec = pool(result.last_hidden_state.float(), inputs["attention_mask"], self.pooling)
            return {"dense": torch.nn.functional.normalize(vec, dim=-1) if self.normalize else vec}

        def collect(batch: StagedBatch) -> None:
            out[batch.positions] = batch.outputs["dense"].numpy()

        self._runner.executor.run(ids, project, collect)
        return out

    def encode_queries(self, texts: Sequence[str]) -> FloatArray:
        """Embed queries, prefixed with the model's query instruction."""
        items = check_texts(texts)
        return self.encode([self.query_instruction + t for t in items])

    def encode_documents(self, texts: Sequence[str]) -> FloatArray:
        """Embed documents, prefixed with ``text_instruction`` (none by default)."""
        if not self.text_instruction:
            return self.encode(texts)
        return self.encode([self.text_instruction + t for t in check_texts(texts)])

    def encode_outputs(
        self, texts: Sequence[str], *, query: bool, dense: bool = True, sparse: bool = False, colbert: bool = False
    ) -> M3Output:
        """Index-facing form of :meth:`encode_queries` / :meth:`encode_documents`."""
        if sparse or colbert:
            raise ValueError(f"{self.model_name} is a dense-only model; it has no sparse or ColBERT output")
        vecs = self.encode_queries(texts) if query else self.encode_documents(texts)
        return M3Output(dense=vecs)

    def __repr__(self) -> str:
        return f"DenseEncoder(model={self.model_name!r}, pooling={self.pooling!r}, device={self.device!r}, dtype={self.dtype!r})"
