"""The BGE model family: what each known model outputs, its size, pooling and instruction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["EN_INSTRUCTION", "KNOWN_MODELS", "ZH_INSTRUCTION", "ModelInfo", "model_info"]

EN_INSTRUCTION = "Represent this sentence for searching relevant passages: "
ZH_INSTRUCTION = "为这个句子生成表示以用于检索相关文章："

Kind = Literal["m3", "dense", "reranker"]
Pooling = Literal["cls", "mean"]


@dataclass(frozen=True)
class ModelInfo:
    """Static facts about a known model."""

    name: str
    kind: Kind
    dim: int | None
    max_length: int
    pooling: Pooling
    query_instruction: str | None
    outputs: tuple[str, ...]


def _dense(name: str, dim: int, instruction: str) -> ModelInfo:
    return ModelInfo(name, "dense", dim, 512, "cls", instruction, ("dense",))


def _reranker(name: str, max_length: int) -> ModelInfo:
    return ModelInfo(name, "reranker", None, max_length, "cls", None, ("score",))


KNOWN_MODELS: dict[str, ModelInfo] = {
    info.name: info
    for info in [
        ModelInfo("BAAI/bge-m3", "m3", 1024, 8192, "cls", None, ("dense", "sparse", "colbert")),
        _dense("BAAI/bge-small-en-v1.5", 384, EN_INSTRUCTION),
        _dense("BAAI/bge-base-en-v1.5", 768, EN_INSTRUCTION),
        _dense("BAAI/bge-large-en-v1.5", 1024, EN_INSTRUCTION),
        _dense("BAAI/bge-small-zh-v1.5", 512, ZH_INSTRUCTION),
        _dense("BAAI/bge-base-zh-v1.5", 768, ZH_INSTRUCTION),
        _dense("BAAI/bge-large-zh-v1.5", 1024, ZH_INSTRUCTION),
        _reranker("BAAI/bge-reranker-base", 512),
        _reranker("BAAI/bge-reranker-large", 512),
        _reranker("BAAI/bge-reranker-v2-m3", 8192),
        ModelInfo("sentence-transformers/all-MiniLM-L6-v2", "dense", 384, 256, "mean", None, ("dense",)),
    ]
}


def model_info(name: str) -> ModelInfo | None:
    """Facts about ``name`` (a hub id, case-insensitive) or ``None`` if it is not a known model."""
    lowered = name.rstrip("/").lower()
    for key, info in KNOWN_MODELS.items():
        if key.lower() == lowered:
            return info
    return None
