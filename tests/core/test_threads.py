"""The one-thread rule for small CPU forwards (query latency next to busy processes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bge_core.runtime import DEFAULT_SMALL_BATCH_TOKENS, cpu_threads_for, small_batch_tokens


class _Spy:
    """Wraps the transformers module and records torch's thread count inside each forward."""

    def __init__(self, net: Any) -> None:
        self.net = net
        self.threads: list[int] = []

    def __call__(self, **kwargs: Any) -> Any:
        import torch

        self.threads.append(torch.get_num_threads())
        return self.net(**kwargs)


@pytest.fixture
def two_threads() -> Any:
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_small_batches_run_on_one_thread_large_ones_on_all(
    m3: Any, two_threads: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    spy = _Spy(m3._runner.model)
    monkeypatch.setattr(m3._runner, "model", spy)
    m3.encode(["one short query"])
    long_texts = ["heart " * 200] * 8  # 8 x ~200 tokens: far above the cut-off
    m3.encode(long_texts)
    assert spy.threads[0] == 1
    assert spy.threads[-1] == 2
    assert torch.get_num_threads() == 2  # restored after the small forward


def test_rule_can_be_switched_off_and_tuned(monkeypatch: pytest.MonkeyPatch, two_threads: None) -> None:
    import torch

    assert small_batch_tokens() == DEFAULT_SMALL_BATCH_TOKENS
    with cpu_threads_for(10):
        assert torch.get_num_threads() == 1
    monkeypatch.setenv("BGE_SMALL_BATCH_TOKENS", "0")
    with cpu_threads_for(10):
        assert torch.get_num_threads() == 2
    monkeypatch.setenv("BGE_SMALL_BATCH_TOKENS", "4096")
    with cpu_threads_for(4000):
        assert torch.get_num_threads() == 1
    monkeypatch.setenv("BGE_SMALL_BATCH_TOKENS", "lots")
    with pytest.raises(ValueError, match="BGE_SMALL_BATCH_TOKENS must be an integer"):
        small_batch_tokens()


def test_thread_count_is_restored_when_the_forward_fails(two_threads: None) -> None:
    import torch

    with pytest.raises(RuntimeError), cpu_threads_for(1):
        raise RuntimeError("forward failed")
    assert torch.get_num_threads() == 2


def test_same_vectors_either_way(tiny_m3_path: Path, monkeypatch: pytest.MonkeyPatch, two_threads: None) -> None:
    import numpy as np

    from bge_core import BGEM3Encoder

    enc = BGEM3Encoder(tiny_m3_path, device="cpu", dtype="float32")
    texts = ["the cat", "heart attack risk"]
    on = enc.encode(texts)
    monkeypatch.setenv("BGE_SMALL_BATCH_TOKENS", "0")
    off = enc.encode(texts)
    np.testing.assert_allclose(on.dense, off.dense, atol=1e-6)
