"""Building LlamaIndex nodes from search hits and attaching per-stage scores."""

from __future__ import annotations

from collections.abc import Mapping

from llama_index.core.schema import BaseNode, NodeWithScore, TextNode

from bge_core.types import Hit

__all__ = ["SCORES_KEY", "hit_to_node", "with_stage_score"]

#: Metadata key of the per-stage scores (``dense``, ``sparse``, ``fusion``, ``colbert``,
#: ``rerank``, ``retrieval``). It is excluded from the LLM and embedding text.
SCORES_KEY = "bge_scores"


def _exclude(keys: list[str]) -> list[str]:
    return keys if SCORES_KEY in keys else [*keys, SCORES_KEY]


def _with_scores(node: BaseNode, scores: Mapping[str, float]) -> BaseNode:
    """A shallow copy of ``node`` whose metadata holds ``scores`` (the input is not changed)."""
    copy = node.model_copy()
    copy.metadata = {**node.metadata, SCORES_KEY: dict(scores)}
    copy.excluded_llm_metadata_keys = _exclude(list(node.excluded_llm_metadata_keys))
    copy.excluded_embed_metadata_keys = _exclude(list(node.excluded_embed_metadata_keys))
    return copy


def hit_to_node(hit: Hit) -> NodeWithScore:
    """A ``NodeWithScore`` holding a ``TextNode`` (id, text, metadata, stage scores) of ``hit``."""
    node = TextNode(id_=hit.id, text=hit.text, metadata=dict(hit.metadata))
    return NodeWithScore(node=_with_scores(node, hit.scores), score=float(hit.score))


def with_stage_score(item: NodeWithScore, stage: str, score: float) -> NodeWithScore:
    """A new ``NodeWithScore`` scored ``score`` by ``stage``; earlier scores are kept in
    metadata (the previous score as ``retrieval`` when no stage had recorded it)."""
    previous = item.node.metadata.get(SCORES_KEY)
    scores: dict[str, float] = dict(previous) if isinstance(previous, Mapping) else {}
    if item.score is not None and not scores:
        scores["retrieval"] = float(item.score)
    scores[stage] = float(score)
    return NodeWithScore(node=_with_scores(item.node, scores), score=float(score))
