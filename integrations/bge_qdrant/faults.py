"""Which Qdrant client errors may pass when retried."""

from __future__ import annotations

from bge_core.errors import StoreError, TransientStoreError

__all__ = ["is_transient_error"]

_TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}
_TRANSIENT_GRPC = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "INTERNAL"}
_TRANSIENT_HTTPX = {
    "TimeoutException",
    "ConnectTimeout",
    "ReadTimeout",
    "WriteTimeout",
    "PoolTimeout",
    "ConnectError",
    "ReadError",
    "WriteError",
    "RemoteProtocolError",
    "NetworkError",
}


def is_transient_error(exc: BaseException) -> bool:
    """Timeouts, connection resets / refusals, HTTP 429/5xx and gRPC UNAVAILABLE-like codes
    are transient; validation errors (HTTP 4xx, ``ValueError``...) are permanent."""
    if isinstance(exc, TransientStoreError):
        return True
    if isinstance(exc, StoreError):
        return False
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):  # qdrant_client UnexpectedResponse
        return status in _TRANSIENT_HTTP
    source = getattr(exc, "source", None)  # qdrant_client ResponseHandlingException wraps httpx
    if isinstance(source, BaseException) and source is not exc:
        return is_transient_error(source)
    code = getattr(exc, "code", None)
    if callable(code):  # grpc.RpcError
        try:
            name = getattr(code(), "name", "")
        except Exception:  # noqa: BLE001 - a non-grpc object with a code() method
            name = ""
        if name:
            return str(name) in _TRANSIENT_GRPC
    for cls in type(exc).__mro__:
        if cls.__name__ in _TRANSIENT_HTTPX and cls.__module__.startswith("httpx"):
            return True
    return False
