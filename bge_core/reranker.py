"""BGE cross-encoder rerankers (bge-reranker-base / large / v2-m3)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from bge_core.encoder_base import (
    RunnerModel,
    StagedBatch,
    TransformerRunner,
    check_texts,
)
from bge_core.kinds import ModelSpec
from bge_core.ranking import check_top_n, top_n_order
from bge_core.types import FloatArray, RerankResult

if TYPE_CHECKING:
    import torch

__all__ = ["Reranker"]


class Reranker(RunnerModel):
    """Cross-encoder reranker: one relevance logit per (query, passage) pair.

    Truncation follows FlagReranker >= 1.3: the query is cut to ``query_max_length`` tokens
    (default ``3/4`` of ``max_length``), then the passage so that the pair fits ``max_length``.

    ``Reranker(model)`` serves the whole BGE reranker family: an LLM reranker checkpoint (or
    ``kind=``) gets its class from :mod:`bge_core.llm_reranker`, checked before weights load.
    """

    def __new__(cls, model: str | os.PathLike[str] = "BAAI/bge-reranker-v2-m3", *args: Any, **kwargs: Any) -> Reranker:  # noqa: PYI034
        # The one dispatch hook: the returned class's __init__ then runs with the same arguments.
        from bge_core.llm_reranker import reranker_class

        return super().__new__(reranker_class(cls, model, kwargs.get("kind")))

    def __init__(
        self,
        model: str | os.PathLike[str] = "BAAI/bge-reranker-v2-m3",
        *,
        device: str = "auto",
        dtype: str = "auto",
        max_length: int = 512,
        query_max_length: int | None = None,
        batch_size: int | None = None,
        max_batch_tokens: int | None = None,
        kind: str | None = None,
    ) -> None:
        self.model_name = os.fspath(model)
        self.load_spec = ModelSpec.create(
            model,
            "reranker",
            device=device,
            dtype=dtype,
            max_length=max_length,
            query_max_length=query_max_length,
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
        )
        self._runner = TransformerRunner(
            model,
            auto_class="AutoModelForSequenceClassification",
            device=device,
            dtype=dtype,
            max_length=max_length,
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
        )
        self.query_max_length = query_max_length or self._runner.max_length * 3 // 4
        # Pieces are tokenised without special tokens; the pair template is applied by hand.
        self._plain = self._runner.plain_tokenizer()
        self._n_special = int(self._runner.hf_tokenizer.num_special_tokens_to_add(pair=True))

    def _pair_ids(self, queries: list[str], passages: list[str]) -> tuple[list[list[int]], list[list[int]]]:
        q_enc = self._plain.encode_batch(queries, add_special_tokens=False)
        p_enc = self._plain.encode_batch(passages, add_special_tokens=False)
        ids: list[list[int]] = []
        types: list[list[int]] = []
        for q, p in zip(q_enc, p_enc):
            q.truncate(self.query_max_length)
            overflow = len(q.ids) + len(p.ids) + self._n_special - self._runner.max_length
            # As FlagReranker on transformers 5 ("only_second" truncation): the passage absorbs
            # the overflow; a passage too short for that is kept and the query is cut instead.
            if 0 < overflow < len(p.ids):
                p.truncate(len(p.ids) - overflow)
            elif overflow > 0:
                q.truncate(max(len(q.ids) - overflow, 0))
            pair = self._plain.post_process(q, p, add_special_tokens=True)
            ids.append(pair.ids)
            types.append(pair.type_ids)
        return ids, types

    def score(self, pairs: Sequence[tuple[str, str]], *, normalize: bool = False) -> FloatArray:
        """Raw logits of each (query, passage) pair (``normalize=True`` applies a sigmoid)."""
        if isinstance(pairs, tuple) and len(pairs) == 2 and all(isinstance(p, str) for p in pairs):
            raise TypeError("pairs must be a list of (query, passage) tuples; wrap it: [pair]")
        if isinstance(pairs, str):
            raise TypeError("pairs must be a list of (query, passage) tuples, got a str")
        pair_list = list(pairs)
        for i, pair in enumerate(pair_list):
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise TypeError(f"pairs[{i}] must be a (query, passage) tuple")
        queries = check_texts([p[0] for p in pair_list], "queries")
        passages = check_texts([p[1] for p in pair_list], "passages")
        out = np.zeros(len(pair_list), dtype=np.float32)
        if not pair_list:
            return out
        ids, types = self._pair_ids(queries, passages)

        def project(
            result: Any, inputs: dict[str, torch.Tensor], batch_ids: list[list[int]]
        ) -> dict[str, torch.Tensor]:
            return {"score": result.logits.float().view(-1)}

        def collect(batch: StagedBatch) -> None:
            out[batch.positions] = batch.outputs["score"].numpy()

        self._runner.executor.run(ids, project, collect, types if self._runner.uses_token_type else None)
        if normalize:
            out = (1.0 / (1.0 + np.exp(-out.astype(np.float64)))).astype(np.float32)
        return out

    def rerank(
        self, query: str, documents: Sequence[str], *, top_k: int | None = None, normalize: bool = False
    ) -> list[RerankResult]:
        """Score ``documents`` against ``query`` and return them best first."""
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        docs = check_texts(documents, "documents")
        scores = self.score([(query, d) for d in docs], normalize=normalize)
        return [
            RerankResult(index=i, score=float(scores[i]), text=docs[i]) for i in top_n_order(scores, check_top_n(top_k))
        ]

    def __repr__(self) -> str:
        return f"Reranker(model={self.model_name!r}, max_length={self.max_length})"
