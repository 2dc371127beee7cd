"""A small dynamic batcher for async callers: concurrent requests share one model call.

Requests that arrive while a model call runs wait and then go together into the next call, so
four concurrent 32-text calls cost about two forwards' worth of batches instead of four
serialised ones. The model call runs on a worker thread; the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["DynamicBatcher"]

R = TypeVar("R")


@dataclass
class _Request:
    texts: list[str]
    query: bool
    future: asyncio.Future[Any]


class DynamicBatcher(Generic[R]):
    """Joins concurrent ``submit`` calls into calls of ``fn(texts, query) -> one result per text``.

    Requests with the same ``query`` flag are joined, in arrival order, up to ``max_texts``
    texts per call (a larger single request goes alone). Results equal those of calling
    ``fn`` on each request separately whenever ``fn`` treats texts independently (true of
    every BGE encoder: padding is masked).

    Picklable (only ``fn`` and ``max_texts`` travel); usable from any event loop.
    """

    def __init__(self, fn: Callable[[list[str], bool], Sequence[R]], *, max_texts: int = 1024) -> None:
        if max_texts < 1:
            raise ValueError(f"max_texts must be >= 1, got {max_texts}")
        self._fn = fn
        self._max_texts = max_texts
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[_Request] = []
        self._worker: asyncio.Task[None] | None = None
        #: Number of model calls made (for tests and benchmarks).
        self.calls = 0

    async def submit(self, texts: Sequence[str], *, query: bool) -> list[R]:
        """Results for ``texts``, computed together with requests that arrive meanwhile."""
        items = list(texts)
        if not items:
            return []
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[R]] = loop.create_future()
        with self._lock:
            if self._loop is not loop:
                # A new event loop (asyncio.run per call, a test per loop): start afresh.
                self._loop, self._pending, self._worker = loop, [], None
            self._pending.append(_Request(items, query, future))
            if self._worker is None or self._worker.done():
                # A task (not an inline call): requests started in the same loop turn join it.
                self._worker = loop.create_task(self._drain())
        return await future

    def _take(self) -> list[_Request]:
        with self._lock:
            if not self._pending:
                return []
            first = self._pending[0]
            batch: list[_Request] = []
            rest: list[_Request] = []
            total = 0
            for req in self._pending:
                if req.query == first.query and (not batch or total + len(req.texts) <= self._max_texts):
                    batch.append(req)
                    total += len(req.texts)
                else:
                    rest.append(req)
            self._pending = rest
            return batch

    async def _drain(self) -> None:
        while batch := self._take():
            live = [r for r in batch if not r.future.done()]  # skip cancelled callers
            if not live:
                continue
            texts = [t for r in live for t in r.texts]
            try:
                self.calls += 1
                rows = await asyncio.to_thread(self._fn, texts, live[0].query)
            except Exception as exc:  # noqa: BLE001 - handed to every caller of the batch, not swallowed
                for r in live:
                    if not r.future.done():
                        r.future.set_exception(exc)
                continue
            start = 0
            for r in live:
                end = start + len(r.texts)
                if not r.future.done():
                    r.future.set_result(list(rows[start:end]))
                start = end

    def __getstate__(self) -> dict[str, Any]:
        return {"fn": self._fn, "max_texts": self._max_texts}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._fn = state["fn"]
        self._max_texts = state["max_texts"]
        self._reset()
