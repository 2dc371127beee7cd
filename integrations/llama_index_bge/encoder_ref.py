"""Deprecated: the LlamaIndex wrappers now hold a :class:`bge_core.holder.ModelHolder`.

:class:`EncoderRef` stays as a thin alias of the one model holder of :mod:`bge_core`: a model
name loaded on first use (shared by equal specs, picklable) or a model object given as is.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from bge_core.holder import ModelHolder
from bge_core.kinds import detect_kind

__all__ = ["EncoderKind", "EncoderRef", "looks_like_m3"]

EncoderKind = Literal["embed", "m3", "rerank"]

# What each wrapper role asks of the model layer: (kind, role).
_LEGACY_KINDS: dict[str, tuple[str, Literal["embed", "rerank"]]] = {
    "embed": ("auto", "embed"),
    "m3": ("m3", "embed"),
    "rerank": ("auto", "rerank"),
}


def looks_like_m3(name: str) -> bool:
    """Whether ``name`` is a BGE-M3 checkpoint (deprecated: :func:`bge_core.kinds.detect_kind`)."""
    return detect_kind(name).name == "m3"


class EncoderRef(ModelHolder):
    """A :class:`~bge_core.holder.ModelHolder` with the former ``EncoderRef`` signature.

    Args:
        model: hub id or local folder; ignored when ``encoder`` is given.
        encoder: an already loaded ``BGEM3Encoder`` / ``DenseEncoder`` / ``Reranker``.
        kind: ``"embed"`` (M3 or dense, decided by :func:`bge_core.kinds.detect_kind`),
            ``"m3"`` or ``"rerank"``.
        options: keyword arguments of the model class (``device``, ``dtype``, ...).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None,
        encoder: Any = None,
        *,
        kind: EncoderKind,
        **options: Any,
    ) -> None:
        if kind not in _LEGACY_KINDS:
            raise ValueError(f"unknown kind {kind!r}; use 'embed', 'm3' or 'rerank'")
        if encoder is not None:
            super().__init__(obj=encoder)
        else:
            model_kind, role = _LEGACY_KINDS[kind]
            super().__init__(model, kind=model_kind, role=role, **options)
        self.kind: EncoderKind = kind
