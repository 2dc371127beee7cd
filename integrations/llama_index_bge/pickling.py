"""Pickling of the LlamaIndex wrappers: the model holder travels as its spec.

LlamaIndex's ``BaseComponent.__setstate__`` rebuilds a component by calling ``__init__`` with
its fields, which would make a new holder (losing options that are not fields, and the sharing
between wrappers pickled together). :class:`KeepsHolder` puts the pickled holder back, so the
copy loads the same model lazily and wrappers pickled together still share one holder.
"""

from __future__ import annotations

from typing import Any

from bge_core.holder import ModelHolder

__all__ = ["KeepsHolder"]


class KeepsHolder:
    """Mixin for pydantic LlamaIndex components that hold their model in ``_ref``."""

    _ref: ModelHolder

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # type: ignore[misc]
        private = state.get("__pydantic_private__") or {}
        ref = private.get("_ref")
        if isinstance(ref, ModelHolder):
            self._ref = ref
            self._bind()

    def _bind(self) -> None:
        """Rebuild what depends on ``_ref`` (override when there is something)."""
