"""Exception hierarchy of bge-integrations.

Every error the library raises on purpose derives from :class:`BGEError`; messages say what
went wrong *and* how to fix it.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = [
    "BGEError",
    "CollectionMismatchError",
    "DamagedIndexError",
    "IndexSettingsMismatchError",
    "MissingDependencyError",
    "ModelFilesError",
    "ModelNotAvailableError",
    "StoreError",
    "TransientStoreError",
]


class BGEError(Exception):
    """Base class of all errors raised by bge-integrations."""


class MissingDependencyError(BGEError, ImportError):
    """An optional package is not installed; the message names the extra to install."""

    def __init__(self, package: str, extra: str, feature: str | None = None) -> None:
        what = f" for {feature}" if feature else ""
        super().__init__(
            f"The package {package!r} is required{what} but is not installed. "
            f"Install it with: pip install 'bge-integrations[{extra}]'"
        )
        self.package = package
        self.extra = extra


class ModelFilesError(BGEError):
    """A model folder lacks a required file (for example an M3 head) or holds an unsafe one."""


class ModelNotAvailableError(BGEError):
    """A model is neither a local folder nor available from the Hugging Face cache or hub."""


class CollectionMismatchError(BGEError):
    """An existing collection's layout does not fit the encoder or the index settings."""


class IndexSettingsMismatchError(BGEError):
    """A stored index was built with other model settings than the ones requested."""


class StoreError(BGEError):
    """A vector store rejected an operation permanently."""


class DamagedIndexError(StoreError):
    """A local store's files are damaged (truncated, emptied or missing); the message names the
    file. ``collections`` are the damaged collections; ``drop(collection)``, where the adapter
    can do it without opening the damaged store, deletes one of them (``bge drop`` uses it)."""

    def __init__(
        self, message: str, *, collections: tuple[str, ...] = (), drop: Callable[[str], None] | None = None
    ) -> None:
        super().__init__(message)
        self.collections = collections
        self.drop = drop


class TransientStoreError(StoreError):
    """A vector store operation failed in a way that may pass on retry (timeouts, resets)."""
