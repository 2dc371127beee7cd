"""BGE rerankers as LlamaIndex node postprocessors: cross-encoder and BGE-M3 ColBERT MaxSim."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from typing import Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.events.rerank import (
    ReRankEndEvent,
    ReRankStartEvent,
)
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from bge_core.holder import ModelHolder
from bge_core.ranking import check_top_n, colbert_scores, top_n_order
from llama_index_bge.nodes import with_stage_score
from llama_index_bge.pickling import KeepsHolder
from llama_index_bge.sparse import resolve_m3_ref

dispatcher = get_dispatcher(__name__)

__all__ = ["BGEColBERTRerank", "BGERerank"]


def _query_text(query_bundle: QueryBundle | None) -> str:
    if query_bundle is None:
        raise ValueError("reranking needs the query: pass query_str=... or query_bundle=... to postprocess_nodes")
    return query_bundle.query_str


def _rerank(
    post: BGERerank | BGEColBERTRerank,
    nodes: list[NodeWithScore],
    query_bundle: QueryBundle | None,
    score: Callable[[str, list[str]], Sequence[float]],
    stage: str,
) -> list[NodeWithScore]:
    """Score, order and cut ``nodes``, reporting it as LlamaIndex rerankers do: the
    instrumentation ``ReRankStartEvent`` / ``ReRankEndEvent`` and a ``RERANKING`` callback event."""
    query = _query_text(query_bundle)
    if not nodes:
        return []
    dispatcher.event(
        ReRankStartEvent(query=query_bundle, nodes=nodes, top_n=post.top_n or len(nodes), model_name=post.model)
    )
    with post.callback_manager.event(
        CBEventType.RERANKING,
        payload={
            EventPayload.NODES: nodes,
            EventPayload.MODEL_NAME: post.model,
            EventPayload.QUERY_STR: query,
            EventPayload.TOP_K: post.top_n,
        },
    ) as event:
        scores = score(query, [n.node.get_content(metadata_mode=post.metadata_mode) for n in nodes])
        ranked = [with_stage_score(nodes[i], stage, float(scores[i])) for i in top_n_order(scores, post.top_n)]
        event.on_end(payload={EventPayload.NODES: ranked})
    dispatcher.event(ReRankEndEvent(nodes=ranked))
    return ranked


class BGERerank(KeepsHolder, BaseNodePostprocessor):
    """Cross-encoder rerank with a BGE reranker (``bge_core.Reranker``).

    Returns new ``NodeWithScore`` objects, best first, scored by the reranker (raw logits, or
    sigmoid probabilities with ``normalize=True``); the earlier score is kept in
    ``node.metadata["bge_scores"]``.

    Args:
        model: hub id or folder of a reranker (default ``BAAI/bge-reranker-v2-m3``), loaded on
            first use.
        reranker: an already loaded ``bge_core.Reranker`` (or any object with ``score``).
        top_n: keep the best ``top_n`` nodes (``None``: all).
        normalize: sigmoid on the logits.
        metadata_mode: which node text is scored (default ``NONE``: the plain text, as the
            index-level rerank of ``bge_core`` scores it; ``EMBED`` adds embedded metadata).
        device / dtype / max_length: options for loading ``model``.
    """

    model: str = Field(description="Reranker model name or path.")
    top_n: int | None = Field(default=None, description="Number of nodes to keep (None: all).")
    normalize: bool = Field(default=False, description="Apply a sigmoid to the scores.")
    metadata_mode: MetadataMode = Field(default=MetadataMode.NONE, description="Node text to score (NONE: plain text).")
    _ref: ModelHolder = PrivateAttr()

    def __init__(
        self,
        model: str | os.PathLike[str] = "BAAI/bge-reranker-v2-m3",
        *,
        reranker: Any = None,
        top_n: int | None = None,
        normalize: bool = False,
        metadata_mode: MetadataMode = MetadataMode.NONE,
        device: str | None = None,
        dtype: str | None = None,
        max_length: int | None = None,
        **kwargs: Any,
    ) -> None:
        check_top_n(top_n)
        ref: ModelHolder
        if isinstance(reranker, ModelHolder):
            ref = reranker
        elif reranker is not None:
            if not callable(getattr(reranker, "score", None)):
                raise TypeError(f"reranker must be a bge_core.Reranker (with .score), got {type(reranker).__name__}")
            ref = ModelHolder(obj=reranker)
        else:
            ref = ModelHolder(model, role="rerank", device=device, dtype=dtype, max_length=max_length)
        # Pydantic fields of this class; mypy sees only the base class's synthesized __init__.
        super().__init__(model=ref.name, top_n=top_n, normalize=normalize, metadata_mode=metadata_mode, **kwargs)  # type: ignore[call-arg]
        self._ref = ref

    @classmethod
    def class_name(cls) -> str:
        """LlamaIndex serialisation name."""
        return "BGERerank"

    @property
    def reranker(self) -> Any:
        """The reranker (loads the model on first access when built from a name)."""
        return self._ref.get()

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        def score(query: str, texts: list[str]) -> Sequence[float]:
            scores: Sequence[float] = self.reranker.score([(query, t) for t in texts], normalize=self.normalize)
            return scores

        return _rerank(self, nodes, query_bundle, score, "rerank")

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._postprocess_nodes, nodes, query_bundle)


class BGEColBERTRerank(KeepsHolder, BaseNodePostprocessor):
    """Rerank by BGE-M3 ColBERT late interaction (``bge_core.scoring.maxsim``).

    Encodes the query and the node texts with ``colbert=True`` and orders nodes by MaxSim.

    Args:
        model: BGE-M3 hub id or folder (default ``BAAI/bge-m3``), loaded on first use.
        encoder: a loaded ``BGEM3Encoder`` or a :class:`~llama_index_bge.BGEEmbedding` (shares
            its model).
        top_n: keep the best ``top_n`` nodes (``None``: all).
        metadata_mode: which node text is scored (default ``NONE``: the plain text, as the
            index-level rerank of ``bge_core`` scores it; ``EMBED`` adds embedded metadata).
    """

    model: str = Field(description="BGE-M3 model name or path.")
    top_n: int | None = Field(default=None, description="Number of nodes to keep (None: all).")
    metadata_mode: MetadataMode = Field(default=MetadataMode.NONE, description="Node text to score (NONE: plain text).")
    _ref: ModelHolder = PrivateAttr()

    def __init__(
        self,
        model: str | os.PathLike[str] = "BAAI/bge-m3",
        *,
        encoder: Any = None,
        top_n: int | None = None,
        metadata_mode: MetadataMode = MetadataMode.NONE,
        device: str | None = None,
        dtype: str | None = None,
        max_length: int | None = None,
        **kwargs: Any,
    ) -> None:
        check_top_n(top_n)
        ref = resolve_m3_ref(
            encoder if encoder is not None else model, device=device, dtype=dtype, max_length=max_length
        )
        super().__init__(model=ref.name, top_n=top_n, metadata_mode=metadata_mode, **kwargs)  # type: ignore[call-arg]
        self._ref = ref

    @classmethod
    def class_name(cls) -> str:
        """LlamaIndex serialisation name."""
        return "BGEColBERTRerank"

    @property
    def encoder(self) -> Any:
        """The BGE-M3 encoder (loads the model on first access when built from a name)."""
        return self._ref.get()

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        return _rerank(self, nodes, query_bundle, lambda q, texts: colbert_scores(self.encoder, q, texts), "colbert")

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._postprocess_nodes, nodes, query_bundle)
