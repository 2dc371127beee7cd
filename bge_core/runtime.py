"""Choosing device, dtype and CPU threads. Imports torch lazily (callers already loaded it)."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = [
    "DEFAULT_SMALL_BATCH_TOKENS",
    "cpu_has_native_bf16",
    "cpu_threads_for",
    "resolve_device",
    "resolve_dtype",
    "small_batch_tokens",
]

logger = logging.getLogger(__name__)

_DTYPES = ("auto", "float32", "bfloat16", "float16")


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when the CPU runs bf16 matrix products natively (AMX or AVX512-BF16)."""
    override = os.environ.get("BGE_CPU_BF16")
    if override is not None:
        return override.strip().lower() in {"1", "true", "yes"}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool({"amx_bf16", "avx512_bf16"} & flags)
    except OSError:
        pass
    return False


def resolve_device(device: str) -> torch.device:
    """``"auto"``: cuda, then mps, then cpu. Anything else is passed to ``torch.device``."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"Unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from exc


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``"auto"``: fp16 on CUDA and MPS (as FlagEmbedding's ``use_fp16``; it measured faster
    than bf16 on an H200), and on CPU bf16 only where the CPU runs it natively (AMX /
    AVX512-BF16), fp32 elsewhere."""
    import torch

    if dtype not in _DTYPES:
        raise ValueError(f"Unknown dtype {dtype!r}; use one of {', '.join(_DTYPES)}")
    if dtype == "float32":
        return torch.float32
    if dtype == "bfloat16":
        return torch.bfloat16
    if dtype == "float16":
        return torch.float16
    if device.type in ("cuda", "mps"):
        return torch.float16
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


#: CPU forwards of at most this many padded tokens (a query or a few) run on ONE thread.
DEFAULT_SMALL_BATCH_TOKENS = 512


def small_batch_tokens() -> int:
    """The one-thread cut-off in padded tokens: ``BGE_SMALL_BATCH_TOKENS``, else 512 (0: off)."""
    raw = os.environ.get("BGE_SMALL_BATCH_TOKENS")
    if raw is None or not raw.strip():
        return DEFAULT_SMALL_BATCH_TOKENS
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"BGE_SMALL_BATCH_TOKENS must be an integer number of tokens, got {raw!r}") from None
    return max(value, 0)


@contextlib.contextmanager
def cpu_threads_for(padded_tokens: int) -> Iterator[None]:
    """Run a small CPU forward on one thread, a large one on all of torch's threads.

    torch's OpenMP threads wait for each other at every op: when another process holds a core,
    each of a small batch's ~40 ops waits a scheduler slice (one short query: ~17 ms p50 and
    ~230 ms p99 with 2 threads next to one busy process, vs ~7 / ~11 ms on one thread). Large
    batches have enough work per op to gain from every core, so they keep them. The thread count
    is process-wide: a forward running at the same time in another thread runs with it too.
    """
    import torch

    full = torch.get_num_threads()
    if full <= 1 or padded_tokens > small_batch_tokens():
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(full)
