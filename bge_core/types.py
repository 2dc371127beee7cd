"""Typed values shared by encoders, scoring functions and indexes (numpy only)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["FloatArray", "Hit", "M3Output", "RerankResult", "SparseVector"]

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int32]


@dataclass(frozen=True, eq=False)
class SparseVector:
    """A sparse vector: token ids (``int32``, sorted, unique) and their weights (``float32``)."""

    indices: IntArray
    values: FloatArray

    def __post_init__(self) -> None:
        idx = np.ascontiguousarray(self.indices, dtype=np.int32)
        val = np.ascontiguousarray(self.values, dtype=np.float32)
        if idx.ndim != 1 or val.ndim != 1 or idx.shape != val.shape:
            raise ValueError(
                f"SparseVector needs 1-d indices and values of equal length, got shapes {idx.shape} and {val.shape}"
            )
        if idx.size > 1 and not bool(np.all(idx[1:] > idx[:-1])):
            raise ValueError(
                "SparseVector indices must be sorted and unique; build it with "
                "SparseVector.from_dict() to merge and sort them"
            )
        object.__setattr__(self, "indices", idx)
        object.__setattr__(self, "values", val)

    @classmethod
    def from_dict(cls, weights: Mapping[int | str, float]) -> SparseVector:
        """Build from ``{token_id: weight}`` (keys may be ``str`` as in FlagEmbedding)."""
        if not weights:
            return cls.empty()
        items = sorted((int(k), float(v)) for k, v in weights.items())
        return cls(
            np.fromiter((k for k, _ in items), dtype=np.int32, count=len(items)),
            np.fromiter((v for _, v in items), dtype=np.float32, count=len(items)),
        )

    @classmethod
    def empty(cls) -> SparseVector:
        """The vector with no entries (for example the lexical weights of ``""``)."""
        return cls(np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32))

    def to_dict(self) -> dict[int, float]:
        """Return ``{token_id: weight}`` with Python ints and floats."""
        return dict(zip(self.indices.tolist(), self.values.tolist()))

    def __len__(self) -> int:
        return int(self.indices.size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SparseVector):
            return NotImplemented
        return bool(np.array_equal(self.indices, other.indices) and np.array_equal(self.values, other.values))

    def __repr__(self) -> str:
        return f"SparseVector(nnz={len(self)})"


@dataclass(frozen=True, eq=False)
class M3Output:
    """Outputs of one encoder pass, in input order.

    ``dense`` is an ``n x d`` float32 array (``None`` when not requested); ``sparse`` and
    ``colbert`` are lists with one entry per input (empty lists when not requested). Each
    ColBERT entry is a ``t_i x d`` float32 array with L2-normalised rows.
    """

    dense: FloatArray | None = None
    sparse: list[SparseVector] = field(default_factory=list)
    colbert: list[FloatArray] = field(default_factory=list)

    def __len__(self) -> int:
        if self.dense is not None:
            return int(self.dense.shape[0])
        return max(len(self.sparse), len(self.colbert))

    def __getitem__(self, item: slice) -> M3Output:
        """Slice rows: ``out[a:b]`` is the output of inputs ``a`` to ``b``."""
        if not isinstance(item, slice):
            raise TypeError("M3Output supports slices only, e.g. out[0:1]")
        return M3Output(
            dense=None if self.dense is None else self.dense[item],
            sparse=self.sparse[item],
            colbert=self.colbert[item],
        )

    @staticmethod
    def concat(parts: list[M3Output]) -> M3Output:
        """Join outputs of consecutive batches."""
        if not parts:
            return M3Output()
        denses = [p.dense for p in parts if p.dense is not None]
        return M3Output(
            dense=np.concatenate(denses, axis=0) if denses else None,
            sparse=[s for p in parts for s in p.sparse],
            colbert=[c for p in parts for c in p.colbert],
        )


@dataclass(frozen=True)
class Hit:
    """One search result.

    ``scores`` holds the per-stage scores that are known, by name: ``dense``, ``sparse``,
    ``fusion``, ``colbert``, ``rerank``. ``score`` is the score of the final stage.
    """

    id: str
    score: float
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RerankResult:
    """A cross-encoder result: position of the document in the input, its score and text."""

    index: int
    score: float
    text: str
