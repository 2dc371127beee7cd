"""Errors of the Ray ingest, and how a worker's error crosses back to the driver."""

from __future__ import annotations

import re

from bge_core.errors import BGEError

__all__ = ["MARKER", "RayIngestError", "RowError", "from_ray_exception"]

#: Prefix of messages raised on purpose in a worker; the driver finds them in Ray's traceback
#: text (Ray Data re-raises a worker's exception as a ``UserCodeException`` whose only link to
#: the original is its formatted traceback).
MARKER = "[bge_ray] "
_FOUND = re.compile(r"\[bge_ray\] (?P<kind>row|store|worker): (?P<message>.*)")
_ROW_ID = re.compile(r"^row (?P<label>\S+=.*?) failed")


class RayIngestError(BGEError):
    """A Ray ingest could not start (bad options, unreachable cluster) or a worker failed."""


class RowError(RayIngestError):
    """One input row could not be encoded (``on_error="fail"``); ``label`` names the row."""

    def __init__(self, message: str, label: str | None = None) -> None:
        super().__init__(message)
        self.label = label

    def __reduce__(self) -> tuple[type[RowError], tuple[str, str | None]]:
        return (type(self), (str(self), self.label))


def from_ray_exception(exc: BaseException) -> BGEError | None:
    """The :class:`RowError` / :class:`RayIngestError` a worker raised, rebuilt from Ray's
    exception text; ``None`` when the failure is not one of ours."""
    text = str(exc)
    matches = list(_FOUND.finditer(text))
    if not matches:
        return None
    found = matches[-1]
    kind, message = found.group("kind"), found.group("message").strip()
    if kind == "row":
        label = _ROW_ID.match(message)
        return RowError(
            message + " (pass on_error='skip', or --on-error skip, to index the other rows)",
            label.group("label") if label else None,
        )
    if kind == "store":
        from bge_core.errors import StoreError

        return StoreError(message)
    return RayIngestError(message)
