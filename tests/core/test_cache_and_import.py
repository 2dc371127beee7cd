"""The shared one-pass cache and import hygiene."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np

from bge_core import BGEM3Encoder
from bge_core.cache import shared_cache


def test_shared_cache_serves_second_call(tiny_m3_path: Any) -> None:
    enc = BGEM3Encoder(tiny_m3_path, device="cpu", dtype="float32")
    seen: list[int] = []
    enc.model.register_forward_hook(lambda mod, args, out: seen.append(int(args[0].shape[0]) if args else 1))
    cache = shared_cache(enc)
    assert shared_cache(enc) is cache
    first = cache.encode(["the cat", "the dog", "the cat"], query=False)
    second = cache.encode(["the dog", "the cat"], query=False)
    assert len(seen) == 1
    assert first.dense is not None and second.dense is not None
    assert np.array_equal(first.dense[1], second.dense[0]) and first.sparse[0] == second.sparse[1]
    cache.encode(["the cat"], query=True)  # queries are cached separately
    assert len(seen) == 2


def test_import_does_not_load_torch() -> None:
    """``import bge_core`` stays light: checked by what gets imported, not by a wall-clock
    limit (which fails at random on a shared machine)."""
    heavy = [
        "torch",
        "transformers",
        "tokenizers",
        "safetensors",
        "huggingface_hub",
        "sentence_transformers",
        "FlagEmbedding",
    ]
    code = (
        "import sys; import bge_core, bge_core.index, bge_core.scoring, bge_core.types; "
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
