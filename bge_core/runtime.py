"""Choosing device, dtype and CPU threads. Imports torch lazily (callers already loaded it)."""

from __future__ import annotations

import functools
import logging
import os
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

__all__ = ["DTypeName", "cpu_has_native_bf16", "resolve_device", "resolve_dtype"]

logger = logging.getLogger(__name__)

DTypeName = Literal["auto", "float32", "bfloat16", "float16"]
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
        raise ValueError(
            f"Unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from exc


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
