"""Model choice for the CLI (M3 or dense-only), an encoder wrapper that counts encoded
documents, and the settings an index records so later runs reuse (and check) them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from bge_core.errors import BGEError
from bge_core.holder import ModelHolder
from bge_core.kinds import HEAD_FILES, detect_kind

# Settings (what an index records, and their checks) live in bge_core.settings.
from bge_core.settings import (
    DEFAULT_MODEL,
    Kind,
    check_settings,
    make_settings,
    normalize_model_name,
    same_model,
    special_tokens_of,
)
from bge_core.types import M3Output

__all__ = [
    "DEFAULT_MODEL",
    "HEAD_FILES",
    "CountingEncoder",
    "Kind",
    "check_settings",
    "load_encoder",
    "make_settings",
    "model_kind",
    "normalize_model_name",
    "same_model",
]

logger = logging.getLogger(__name__)


def model_kind(name: str) -> Kind:
    """``"m3"`` or ``"dense"``: what :func:`bge_core.kinds.detect_kind` says ``name`` is.

    A reranker (or any model that does not embed) is refused with a message saying how to use it.
    """
    kind = detect_kind(name, role="embed").name
    if kind not in ("m3", "dense"):  # pragma: no cover - a registered embedding kind the CLI does not know
        raise BGEError(f"{name} is a {kind} model; bge index/search support BGE-M3 and dense models")
    return "m3" if kind == "m3" else "dense"


def load_encoder(name: str, *, device: str = "auto", dtype: str = "auto", batch_size: int = 32) -> Any:
    """Load ``name`` as a ``BGEM3Encoder`` (M3 checkpoints) or a ``DenseEncoder`` (anything else),
    through the shared model holder (so a model already loaded with these options is reused)."""
    kind = model_kind(name)
    logger.info("loading %s as a %s model", name, "BGE-M3" if kind == "m3" else "dense")
    return ModelHolder(name, kind=kind, device=device, dtype=dtype, batch_size=batch_size).get()


class CountingEncoder:
    """Wraps an encoder and counts the documents it encodes (queries are not counted)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.model_name: str = str(inner.model_name)
        self.documents_encoded = 0

    @property
    def dim(self) -> int:
        """Dense vector size."""
        return int(self.inner.dim)

    @property
    def colbert_dim(self) -> int:
        """ColBERT vector size (0 for dense-only models)."""
        return int(self.inner.colbert_dim)

    @property
    def supports_sparse(self) -> bool:
        """Whether the model has a sparse output."""
        return bool(self.inner.supports_sparse)

    @property
    def supports_colbert(self) -> bool:
        """Whether the model has a ColBERT output."""
        return bool(self.inner.supports_colbert)

    @property
    def max_length(self) -> int:
        """The model's token cap."""
        return int(self.inner.max_length)

    def num_special_tokens(self, *, pair: bool = False) -> int:
        """Special tokens the tokenizer adds to one text (or a pair)."""
        return special_tokens_of(self.inner, pair=pair)

    @property
    def tokenizer(self) -> Any:
        """The Hugging Face fast tokenizer."""
        return self.inner.tokenizer

    def encode_outputs(
        self, texts: Sequence[str], *, query: bool, dense: bool = True, sparse: bool = True, colbert: bool = False
    ) -> M3Output:
        """Encode through the wrapped encoder, counting documents."""
        out: M3Output = self.inner.encode_outputs(texts, query=query, dense=dense, sparse=sparse, colbert=colbert)
        if not query:
            self.documents_encoded += len(texts)
            logger.info("encoded %d chunks (%d in this run)", len(texts), self.documents_encoded)
        return out
