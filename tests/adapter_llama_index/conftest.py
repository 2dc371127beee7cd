"""Fixtures of the LlamaIndex adapter tests: explicit Settings (never OpenAI), fresh encoders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bge_core.testing import TINY_CORPUS

pytest.importorskip("llama_index.core")

DOCS = list(TINY_CORPUS[:10])


@pytest.fixture
def docs() -> list[str]:
    """Ten texts from the tiny vocabulary."""
    return list(DOCS)


@pytest.fixture(autouse=True)
def li_settings(m3: Any) -> Iterator[None]:
    """Set LlamaIndex's global LLM and embed model so nothing falls back to OpenAI."""
    from llama_index.core import Settings
    from llama_index.core.llms import MockLLM
    from llama_index_bge import BGEEmbedding

    # The private slots, so that reading them does not resolve a default (OpenAI) model.
    saved = (Settings._llm, Settings._embed_model)
    Settings.llm = MockLLM(max_tokens=8)
    Settings.embed_model = BGEEmbedding(encoder=m3)
    yield
    Settings._llm, Settings._embed_model = saved


class ForwardCounter:
    """Counts texts (batch rows) and calls going through a module's forward."""

    def __init__(self, module: Any) -> None:
        self.texts = 0
        self.batches: list[int] = []
        self._handle = module.register_forward_hook(self._hook, with_kwargs=True)

    def _hook(self, module: Any, args: Any, kwargs: dict[str, Any], output: Any) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        n = int(ids.shape[0]) if ids is not None and hasattr(ids, "shape") else 0
        self.texts += n
        self.batches.append(n)

    def close(self) -> None:
        self._handle.remove()


@pytest.fixture
def fresh_m3(tiny_m3_path: Path) -> Any:
    """A new encoder (its own output cache), for tests that count forward passes."""
    from bge_core import BGEM3Encoder

    return BGEM3Encoder(tiny_m3_path, device="cpu", dtype="float32", batch_size=4)


@pytest.fixture
def count_forward() -> Iterator[Any]:
    """``count_forward(module) -> ForwardCounter``; hooks are removed after the test."""
    counters: list[ForwardCounter] = []

    def make(module: Any) -> ForwardCounter:
        c = ForwardCounter(module)
        counters.append(c)
        return c

    yield make
    for c in counters:
        c.close()
