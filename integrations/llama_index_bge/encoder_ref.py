"""A reference to a BGE model: a name loaded on first use, or an encoder object given as is.

Wrappers hold an :class:`EncoderRef` instead of a model, so constructors never load weights.
Models loaded from a name are shared: two wrappers naming the same model with the same options
get the same encoder object (and so the same :func:`bge_core.cache.shared_cache`), as long as
one of them still holds it.
"""

from __future__ import annotations

import os
import threading
import weakref
from pathlib import Path
from typing import Any, Literal

from bge_core.models import model_info

__all__ = ["EncoderKind", "EncoderRef", "looks_like_m3"]

EncoderKind = Literal["embed", "m3", "rerank"]

_HEAD_FILES = ("sparse_linear.pt", "sparse_linear.safetensors", "colbert_linear.pt", "colbert_linear.safetensors")

_LOADED: weakref.WeakValueDictionary[tuple[Any, ...], Any] = weakref.WeakValueDictionary()
_LOADED_LOCK = threading.Lock()


def looks_like_m3(name: str) -> bool:
    """Whether ``name`` (hub id or folder) is a BGE-M3 checkpoint (known id, or M3 head files)."""
    info = model_info(name)
    if info is not None:
        return info.kind == "m3"
    path = Path(name).expanduser()
    if path.is_dir():
        return any((path / f).is_file() for f in _HEAD_FILES)
    return "bge-m3" in name.lower()


class EncoderRef:
    """A model name (loaded lazily, shared) or an encoder object.

    Args:
        model: hub id or local folder; ignored when ``encoder`` is given.
        encoder: an already loaded ``BGEM3Encoder`` / ``DenseEncoder`` / ``Reranker``.
        kind: what the wrapper needs: ``"embed"`` (M3 or dense model, chosen from the name),
            ``"m3"`` (a ``BGEM3Encoder``) or ``"rerank"`` (a ``Reranker``).
        options: keyword arguments for the encoder class (``device``, ``dtype``, ...).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None,
        encoder: Any = None,
        *,
        kind: EncoderKind,
        **options: Any,
    ) -> None:
        if encoder is None and model is None:
            raise ValueError("pass a model name or path, or an encoder object")
        if encoder is not None and isinstance(encoder, (str, os.PathLike)):
            raise TypeError("encoder= takes a loaded encoder object; pass a model name as the model argument")
        if model is not None and not isinstance(model, (str, os.PathLike)):
            raise TypeError(
                f"model must be a hub id or a folder path, got {type(model).__name__}; "
                "pass a loaded encoder with encoder=..."
            )
        self.kind: EncoderKind = kind
        self._encoder = encoder
        self._name = os.fspath(model) if encoder is None and model is not None else str(getattr(encoder, "model_name", type(encoder).__name__))
        self._options = {k: v for k, v in options.items() if v is not None}
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """The model name (or the given encoder's ``model_name``)."""
        return self._name

    @property
    def loaded(self) -> bool:
        """Whether the encoder object exists (given, or loaded by :meth:`get`)."""
        return self._encoder is not None

    def get(self) -> Any:
        """The encoder, loading (or reusing a shared) model on first call."""
        enc = self._encoder
        if enc is not None:
            return enc
        with self._lock:
            if self._encoder is None:
                self._encoder = _load_shared(self.kind, self._name, self._options)
            return self._encoder

    def __repr__(self) -> str:
        state = "loaded" if self.loaded else "not loaded"
        return f"EncoderRef({self._name!r}, kind={self.kind!r}, {state})"


def _load_shared(kind: EncoderKind, name: str, options: dict[str, Any]) -> Any:
    if kind == "rerank":
        from bge_core.reranker import Reranker

        cls: Any = Reranker
    elif kind == "m3" or looks_like_m3(name):
        from bge_core.m3 import BGEM3Encoder

        cls = BGEM3Encoder
    else:
        from bge_core.dense import DenseEncoder

        cls = DenseEncoder
    key = (cls.__qualname__, name, tuple(sorted((k, repr(v)) for k, v in options.items())))
    with _LOADED_LOCK:
        enc = _LOADED.get(key)
        if enc is None:
            enc = cls(name, **options)
            _LOADED[key] = enc
        return enc
