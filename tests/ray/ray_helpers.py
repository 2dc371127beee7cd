"""Helpers the Ray workers import by name (``tests/ray`` is put on the workers' PYTHONPATH)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from llama_index_bge import BGEEmbedding


def rows(n: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` dataset rows: text, a str id and two metadata columns."""
    import random

    from bge_core.testing import TINY_WORDS

    rng = random.Random(seed)
    out = []
    for i in range(n):
        text = " ".join(rng.choice(TINY_WORDS) for _ in range(rng.randint(3, 40)))
        out.append({"text": text, "id": f"doc-{i}", "topic": "even" if i % 2 == 0 else "odd", "n": i})
    return out


class _CountingEncoder:
    """Wraps an encoder; appends the number of texts of each document encode call to a file
    per process, so a test can count forward passes made in the Ray workers."""

    def __init__(self, inner: Any, count_dir: str) -> None:
        self._inner = inner
        self._file = Path(count_dir) / f"{os.getpid()}.txt"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def encode_outputs(self, texts, *, query, dense=True, sparse=True, colbert=False):  # type: ignore[no-untyped-def]
        out = self._inner.encode_outputs(texts, query=query, dense=dense, sparse=sparse, colbert=colbert)
        if not query:
            with self._file.open("a") as fh:
                fh.write(f"{len(texts)}\n")
        return out


class CountingModel:
    """A picklable encoder factory for ``bge_ray.ingest(model=...)``: loads like ``bge index``."""

    def __init__(self, model: str, count_dir: str, dtype: str = "float32") -> None:
        self.model = model
        self.count_dir = count_dir
        self.dtype = dtype

    def __call__(self) -> Any:
        from bge_core.cli.encoders import load_encoder

        return _CountingEncoder(load_encoder(self.model, device="cpu", dtype=self.dtype, batch_size=8), self.count_dir)


def encoded_count(count_dir: str | Path) -> int:
    """Texts encoded (as documents) by all processes that wrote to ``count_dir``."""
    return sum(int(line) for f in Path(count_dir).glob("*.txt") for line in f.read_text().split())


class CountingBGEEmbedding(BGEEmbedding):
    """``BGEEmbedding`` that records how many texts each embedding call got (per process)."""

    def __init__(self, *args: Any, count_dir: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._count_file = Path(count_dir) / f"{os.getpid()}.txt"

    def _embed(self, texts: list[str], query: bool) -> Any:
        out = super()._embed(texts, query)
        with self._count_file.open("a") as fh:
            fh.write(f"{len(texts)}\n")
        return out
