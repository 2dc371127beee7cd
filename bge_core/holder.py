"""One lazy, shareable, picklable holder of a BGE model, used by the CLI and every framework wrapper.

A :class:`ModelHolder` holds a :class:`~bge_core.kinds.ModelSpec` (a name, a kind and options)
and loads the model on first use, once, under a lock. Holders with equal specs in one process
share one loaded model (a weak registry: the model is freed when no holder uses it). A holder
pickles as its spec: the copy on the other side of a process boundary loads lazily again.

A holder may also wrap a model object given by the caller; our model classes record the spec
they were built from (``load_spec``), so such a holder pickles as that spec too.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any

from bge_core.kinds import ModelSpec, Role

__all__ = ["ModelHolder", "as_holder"]

logger = logging.getLogger(__name__)

_LOADED: weakref.WeakValueDictionary[tuple[Any, ...], Any] = weakref.WeakValueDictionary()
_LOADED_LOCK = threading.Lock()


def _load_shared(spec: ModelSpec) -> Any:
    key = spec.key()
    with _LOADED_LOCK:
        obj = _LOADED.get(key)
        if obj is None:
            logger.info("loading %s model %s", key[1], spec.name)
            obj = spec.load()
            try:
                _LOADED[key] = obj
            except TypeError:  # pragma: no cover - a registered class without weakref support
                pass
        return obj


class ModelHolder:
    """A model, or the spec to load it on first use (thread-safe, loads once, shared, picklable).

    Args:
        model: hub id or local folder (ignored when ``obj`` is given).
        kind: ``"auto"`` or a registered kind (``"m3"``, ``"dense"``, ``"reranker"``, ...).
        role: ``"embed"`` or ``"rerank"``: refuse a model of the other role with a clear error.
        obj: an already loaded model object (shared as is).
        options: keyword arguments of the model class; ``None`` values are dropped.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        kind: str = "auto",
        role: Role | None = None,
        obj: Any = None,
        **options: Any,
    ) -> None:
        if obj is None and model is None:
            raise ValueError("pass a model name or path, or a loaded model object")
        if obj is not None and isinstance(obj, (str, os.PathLike)):
            raise TypeError("obj= takes a loaded model object; pass a model name as the model argument")
        self._obj: Any = obj
        self.spec: ModelSpec | None
        if obj is None:
            assert model is not None
            self.spec = ModelSpec.create(model, kind, role=role, **options)
        else:
            spec = getattr(obj, "load_spec", None)
            self.spec = spec if isinstance(spec, ModelSpec) else None
        self._name = self.spec.name if self.spec is not None else str(getattr(obj, "model_name", type(obj).__name__))
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """The model's hub id or folder (or the given object's ``model_name``)."""
        return self._name

    # Older name of the same property (LangChain holders).
    model_name = name

    @property
    def loaded(self) -> bool:
        """Whether the model object exists in this process (given, or loaded by :meth:`get`)."""
        return self._obj is not None

    def get(self) -> Any:
        """The model, loading (or reusing a model shared by an equal spec) on the first call."""
        obj = self._obj
        if obj is not None:
            return obj
        with self._lock:
            if self._obj is None:
                assert self.spec is not None
                self._obj = _load_shared(self.spec)
            return self._obj

    def __getstate__(self) -> dict[str, Any]:
        # The spec travels, not the model: the copy loads lazily on the other side. A model
        # object given without a spec travels as itself (it must be picklable).
        state = {k: v for k, v in self.__dict__.items() if k != "_lock"}
        if self.spec is not None:
            state["_obj"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        kind = self.spec.kind if self.spec is not None else type(self._obj).__name__
        state = "loaded" if self.loaded else "not loaded"
        return f"ModelHolder({self._name!r}, kind={kind!r}, {state})"


def as_holder(
    source: Any,
    *,
    default: str | None = None,
    kind: str = "auto",
    role: Role | None = None,
    check: str | None = None,
    **options: Any,
) -> ModelHolder:
    """The holder for a wrapper built from ``source``:

    - a :class:`ModelHolder`, or a wrapper exposing one (``encoder_holder``, ``holder``,
      ``encoder_ref``): shared as is (wrappers then share one model even before loading);
    - a model name or path: a new holder (``None`` uses ``default``);
    - a loaded model object: wrapped (``check`` names a method it must have).
    """
    if isinstance(source, ModelHolder):
        return source
    for attr in ("model_holder", "encoder_holder", "encoder_ref"):
        shared = (
            getattr(source, attr, None) if source is not None and not isinstance(source, (str, os.PathLike)) else None
        )
        if isinstance(shared, ModelHolder):
            return shared
    if source is None:
        if default is None:
            raise ValueError("pass a model name or path, or a loaded model object")
        source = default
    if isinstance(source, (str, os.PathLike)):
        return ModelHolder(source, kind=kind, role=role, **options)
    if check is not None and not callable(getattr(source, check, None)):
        raise TypeError(
            f"expected a model name, a bge_core model with .{check}() or a bge wrapper; got {type(source).__name__}"
        )
    return ModelHolder(obj=source)
