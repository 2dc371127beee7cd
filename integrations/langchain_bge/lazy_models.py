"""Deprecated: the LangChain wrappers now hold a :class:`bge_core.holder.ModelHolder`.

``LazyEncoder``, ``LazyReranker``, ``encoder_holder`` and ``resolve_kind`` stay as thin
aliases over the one model layer of :mod:`bge_core` (``bge_core.load``, ``ModelHolder``).
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Literal

from bge_core.holder import ModelHolder, as_holder
from bge_core.kinds import detect_kind

__all__ = ["EncoderKind", "LazyEncoder", "LazyReranker", "encoder_holder", "resolve_kind"]

EncoderKind = Literal["auto", "m3", "dense"]


def _deprecated(old: str) -> None:
    warnings.warn(
        f"langchain_bge.lazy_models.{old} is deprecated; use bge_core.holder.ModelHolder",
        DeprecationWarning,
        stacklevel=3,
    )


def resolve_kind(model: str, kind: EncoderKind) -> Literal["m3", "dense"]:
    """``"m3"`` or ``"dense"`` for an embedding model (see :func:`bge_core.kinds.detect_kind`)."""
    name = detect_kind(model, kind, role="embed").name
    return "m3" if name == "m3" else "dense"


class LazyEncoder(ModelHolder):
    """Deprecated alias of :class:`~bge_core.holder.ModelHolder` for embedding models."""

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        encoder: Any = None,
        kind: EncoderKind = "auto",
        query_instruction: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        _deprecated("LazyEncoder")
        if encoder is not None:
            super().__init__(obj=encoder)
        else:
            super().__init__(model, kind=kind, role="embed", query_instruction=query_instruction, **(options or {}))


class LazyReranker(ModelHolder):
    """Deprecated alias of :class:`~bge_core.holder.ModelHolder` for cross-encoders."""

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        reranker: Any = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        _deprecated("LazyReranker")
        if reranker is not None:
            super().__init__(obj=reranker)
        else:
            super().__init__(model, kind="auto", role="rerank", **(options or {}))


def encoder_holder(
    model: str | os.PathLike[str] | None,
    encoder: Any,
    *,
    default: str,
    kind: EncoderKind = "auto",
    query_instruction: str | None = None,
    options: dict[str, Any] | None = None,
) -> ModelHolder:
    """Deprecated: :func:`bge_core.holder.as_holder`."""
    _deprecated("encoder_holder")
    if encoder is not None and model is not None:
        raise ValueError("pass either model or encoder, not both")
    return as_holder(
        encoder if encoder is not None else model,
        default=default,
        kind=kind,
        role="embed",
        check="encode_outputs",
        query_instruction=query_instruction,
        **(options or {}),
    )
