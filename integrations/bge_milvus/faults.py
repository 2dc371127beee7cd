"""Which Milvus client errors may pass when retried, and which mean "no such collection"."""

from __future__ import annotations

from bge_core.errors import StoreError, TransientStoreError

__all__ = ["is_missing_collection", "is_transient_error"]

_TRANSIENT_CODES = {1, 2, 3, 4, 8, 12}  # not ready, unavailable, memory/rate limits (merr)
_TRANSIENT_WORDS = (
    "unavailable",
    "deadline exceeded",
    "timed out",
    "timeout",  # transient whatever the code
    "rate limit",
    "connection reset",
    "not ready",
    "too many requests",  # transient with a transient code
)
_TRANSIENT_GRPC = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED"}


def is_transient_error(exc: BaseException) -> bool:
    """Timeouts, resets, UNAVAILABLE / rate limits are transient; validation errors are not."""
    if isinstance(exc, TransientStoreError):
        return True
    if isinstance(exc, (ValueError, TypeError, StoreError)):
        return False
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    if _is_grpc_error(exc):
        return str(getattr(exc.code(), "name", "")) in _TRANSIENT_GRPC  # type: ignore[attr-defined]
    try:
        from pymilvus.exceptions import MilvusException, MilvusUnavailableException
    except ImportError:  # pragma: no cover - without pymilvus no Milvus error can occur
        return False
    if isinstance(exc, MilvusUnavailableException):
        return True
    if isinstance(exc, MilvusException):
        message = str(getattr(exc, "message", exc)).lower()
        if getattr(exc, "code", None) in _TRANSIENT_CODES and any(w in message for w in _TRANSIENT_WORDS):
            return True
        return any(w in message for w in _TRANSIENT_WORDS[:4])
    return False


def _is_grpc_error(exc: BaseException) -> bool:
    try:
        import grpc
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, grpc.RpcError) and callable(getattr(exc, "code", None))


def is_missing_collection(exc: BaseException) -> bool:
    """Whether a Milvus error says the collection does not exist."""
    code = getattr(exc, "code", None)
    return code == 100 or (code is not None and "does not exist" in str(getattr(exc, "message", "")))
