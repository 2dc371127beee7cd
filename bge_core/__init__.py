"""bge_core: BGE-M3 (dense + sparse + ColBERT in one pass), BGE v1.5 dense encoders,
cross-encoder rerankers, scoring functions and the store-independent index logic.

Importing this package does not import torch or transformers; they load with a model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bge_core import scoring
from bge_core.errors import (
    BGEError,
    CollectionMismatchError,
    DamagedIndexError,
    IndexSettingsMismatchError,
    MissingDependencyError,
    ModelFilesError,
    ModelNotAvailableError,
    StoreError,
    TransientStoreError,
)
from bge_core.models import KNOWN_MODELS, ModelInfo, model_info
from bge_core.types import Hit, M3Output, RerankResult, SparseVector

if TYPE_CHECKING:
    from bge_core.dense import DenseEncoder
    from bge_core.holder import ModelHolder
    from bge_core.index import Document, DroppableStore, IndexOptions, VectorIndex
    from bge_core.kinds import ModelKindError, load
    from bge_core.llm_reranker import (
        LayerwiseLLMReranker,
        LightweightLLMReranker,
        LLMReranker,
    )
    from bge_core.m3 import BGEM3Encoder
    from bge_core.reranker import Reranker
    from bge_core.search_options import SearchOptions

__all__ = [
    "KNOWN_MODELS",
    "BGEError",
    "BGEM3Encoder",
    "CollectionMismatchError",
    "DamagedIndexError",
    "DenseEncoder",
    "Document",
    "DroppableStore",
    "Hit",
    "IndexOptions",
    "IndexSettingsMismatchError",
    "LLMReranker",
    "LayerwiseLLMReranker",
    "LightweightLLMReranker",
    "M3Output",
    "MissingDependencyError",
    "ModelFilesError",
    "ModelHolder",
    "ModelInfo",
    "ModelKindError",
    "ModelNotAvailableError",
    "RerankResult",
    "Reranker",
    "SearchOptions",
    "SparseVector",
    "StoreError",
    "TransientStoreError",
    "VectorIndex",
    "load",
    "model_info",
    "scoring",
]

__version__ = "0.1.0"

_LAZY = {
    "BGEM3Encoder": "bge_core.m3",
    "DenseEncoder": "bge_core.dense",
    "Reranker": "bge_core.reranker",
    "LLMReranker": "bge_core.llm_reranker",
    "LayerwiseLLMReranker": "bge_core.llm_reranker",
    "LightweightLLMReranker": "bge_core.llm_reranker",
    "Document": "bge_core.index",
    "DroppableStore": "bge_core.index",
    "IndexOptions": "bge_core.index",
    "VectorIndex": "bge_core.index",
    "SearchOptions": "bge_core.search_options",
    "ModelHolder": "bge_core.holder",
    "ModelKindError": "bge_core.kinds",
    "load": "bge_core.kinds",
}


def __getattr__(name: str) -> Any:
    # The model classes' modules are light too, but keeping them lazy keeps import time low.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bge_core' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
