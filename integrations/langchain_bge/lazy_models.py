"""Lazily loaded, shareable BGE models for the LangChain wrappers.

A wrapper built from a model name holds a :class:`LazyEncoder` (or :class:`LazyReranker`)
that loads the model on first use, once, under a lock. Wrappers built from another wrapper
share its holder, so several wrappers load one model even before any of them ran.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from bge_core.index import IndexEncoder, RerankerLike

__all__ = ["EncoderKind", "LazyEncoder", "LazyReranker", "encoder_holder", "resolve_kind"]

logger = logging.getLogger(__name__)

EncoderKind = Literal["auto", "m3", "dense"]
_KINDS: tuple[str, ...] = ("auto", "m3", "dense")
_HEADS = ("sparse_linear.pt", "sparse_linear.safetensors", "colbert_linear.pt", "colbert_linear.safetensors")


def resolve_kind(model: str, kind: EncoderKind) -> Literal["m3", "dense"]:
    """Which encoder class serves ``model``: ``"m3"`` for BGE-M3 checkpoints, else ``"dense"``.

    ``"auto"`` uses the registry of known models, then looks for M3 head files
    (``sparse_linear`` / ``colbert_linear``) in the model folder.
    """
    if kind not in _KINDS:
        raise ValueError(f"unknown encoder kind {kind!r}; use one of {', '.join(_KINDS)}")
    if kind != "auto":
        return kind
    from bge_core.models import model_info

    info = model_info(model)
    if info is not None:
        if info.kind == "reranker":
            raise ValueError(f"{model} is a cross-encoder reranker, not an embedding model; use BGERerank")
        return "m3" if info.kind == "m3" else "dense"
    from bge_core.loading import resolve_model_dir

    folder = resolve_model_dir(model)
    return "m3" if any((folder / name).is_file() for name in _HEADS) else "dense"


class LazyEncoder:
    """Holds an encoder, or the recipe to load one on first use (thread-safe, loads once).

    Args:
        model: hub id or local folder (ignored when ``encoder`` is given).
        encoder: an already loaded ``BGEM3Encoder`` / ``DenseEncoder``.
        kind: ``"auto"``, ``"m3"`` (``BGEM3Encoder``) or ``"dense"`` (``DenseEncoder``).
        query_instruction: for dense (v1.5) models only; ``None`` keeps the model's known
            instruction.
        options: keyword arguments of the encoder class (``device``, ``dtype``, ...).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        encoder: IndexEncoder | None = None,
        kind: EncoderKind = "auto",
        query_instruction: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        if encoder is None and model is None:
            raise ValueError("pass a model name (model='BAAI/bge-m3') or a loaded encoder (encoder=...)")
        if encoder is not None and not callable(getattr(encoder, "encode_outputs", None)):
            raise TypeError(
                f"encoder must be a BGEM3Encoder or DenseEncoder (or one of our LangChain wrappers), "
                f"got {type(encoder).__name__}"
            )
        if kind not in _KINDS:
            raise ValueError(f"unknown encoder kind {kind!r}; use one of {', '.join(_KINDS)}")
        self.model_name: str = os.fspath(model) if model is not None else str(getattr(encoder, "model_name", "?"))
        self._encoder: IndexEncoder | None = encoder
        self._kind = kind
        self._query_instruction = query_instruction
        self._options = dict(options or {})
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._encoder is not None

    def get(self) -> IndexEncoder:
        """The encoder, loading it on the first call."""
        enc = self._encoder
        if enc is not None:
            return enc
        with self._lock:
            if self._encoder is None:
                self._encoder = self._load()
            return self._encoder

    def _load(self) -> IndexEncoder:
        kind = resolve_kind(self.model_name, self._kind)
        logger.info("loading %s encoder %s", kind, self.model_name)
        options = {k: v for k, v in self._options.items() if v is not None}
        if kind == "m3":
            if self._query_instruction:
                raise ValueError(
                    f"{self.model_name} is a BGE-M3 model, which uses no query instruction; "
                    "drop query_instruction"
                )
            from bge_core.m3 import BGEM3Encoder

            return BGEM3Encoder(self.model_name, **options)
        from bge_core.dense import DenseEncoder

        if self._query_instruction is not None:
            options["query_instruction"] = self._query_instruction
        return DenseEncoder(self.model_name, **options)

    def __repr__(self) -> str:
        return f"LazyEncoder(model={self.model_name!r}, loaded={self.loaded})"


def encoder_holder(
    model: str | os.PathLike[str] | None,
    encoder: Any,
    *,
    default: str,
    kind: EncoderKind = "auto",
    query_instruction: str | None = None,
    options: dict[str, Any] | None = None,
) -> LazyEncoder:
    """The holder for a wrapper: shared with ``encoder`` when it is one of our wrappers (or a
    holder), wrapping ``encoder`` when it is a loaded encoder, else loading ``model`` (or
    ``default`` when neither is given) lazily."""
    if encoder is not None and model is not None:
        raise ValueError("pass either model or encoder, not both")
    if isinstance(encoder, LazyEncoder):
        return encoder
    shared = getattr(encoder, "encoder_holder", None)
    if isinstance(shared, LazyEncoder):
        return shared
    if encoder is None and model is None:
        model = default
    return LazyEncoder(model, encoder=encoder, kind=kind, query_instruction=query_instruction, options=options)


class LazyReranker:
    """Holds a cross-encoder, or the recipe to load ``bge_core.Reranker`` on first use."""

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        reranker: RerankerLike | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        if reranker is None and model is None:
            raise ValueError("pass a model name or a loaded reranker (reranker=...)")
        if reranker is not None and not callable(getattr(reranker, "score", None)):
            raise TypeError(f"reranker must have a score(pairs) method (bge_core.Reranker), got {type(reranker).__name__}")
        self.model_name: str = os.fspath(model) if model is not None else str(getattr(reranker, "model_name", "?"))
        self._reranker: RerankerLike | None = reranker
        self._options = dict(options or {})
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._reranker is not None

    def get(self) -> RerankerLike:
        """The reranker, loading it on the first call."""
        rr = self._reranker
        if rr is not None:
            return rr
        with self._lock:
            if self._reranker is None:
                from bge_core.reranker import Reranker

                logger.info("loading reranker %s", self.model_name)
                options = {k: v for k, v in self._options.items() if v is not None}
                self._reranker = Reranker(self.model_name, **options)
            return self._reranker

    def __repr__(self) -> str:
        return f"LazyReranker(model={self.model_name!r}, loaded={self.loaded})"
