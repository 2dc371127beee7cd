"""``SearchOptions``: one frozen, validated value that says how to search an index.

Every caller builds (or receives) one and passes it on unchanged: ``VectorIndex.search`` and
``search_batch``, the Qdrant / Milvus indexes, the LangChain and LlamaIndex retrievers and the
``bge`` CLI. The keyword form ``index.search(q, k=5, mode="dense")`` builds one from its
keywords; ``index.search(q, options=opts)`` takes it as is (keywords given too override it).
Invalid values fail when the options are built, with a message that says how to fix them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypedDict, runtime_checkable

from bge_core.fusion import DEFAULT_RRF_K
from bge_core.types import FloatArray

__all__ = [
    "DEFAULT_RERANK_CANDIDATES",
    "FUSIONS",
    "MODES",
    "OPTION_NAMES",
    "Fusion",
    "Mode",
    "RerankerLike",
    "SearchKwargs",
    "SearchOptions",
    "validate_filter_dict",
]

Mode = Literal["dense", "sparse", "hybrid", "colbert"]
Fusion = Literal["rrf", "dbsf", "weighted"]
MODES: tuple[str, ...] = ("dense", "sparse", "hybrid", "colbert")
FUSIONS: tuple[str, ...] = ("rrf", "dbsf", "weighted")

#: Hits a cross-encoder reranks unless ``rerank_candidates`` says otherwise (at least ``k``).
DEFAULT_RERANK_CANDIDATES = 20


@runtime_checkable
class RerankerLike(Protocol):
    """A cross-encoder (``bge_core.Reranker`` fits)."""

    def score(self, pairs: Sequence[tuple[str, str]], *, normalize: bool = False) -> FloatArray: ...


class SearchKwargs(TypedDict, total=False):
    """The keyword form of :class:`SearchOptions` (``index.search(q, k, mode="dense", ...)``;
    ``k`` is a parameter of its own)."""

    mode: Mode
    fusion: Fusion
    rrf_k: int
    weights: tuple[float, float]
    filter: Any
    prefetch_limit: int | None
    rerank: RerankerLike | None
    rerank_candidates: int | None


_SCALAR = (str, int, float, bool)


def validate_filter_dict(flt: Mapping[str, Any]) -> dict[str, Any]:
    """Check a ``{metadata_key: value}`` filter: str keys, scalar (or list-of-scalar) values."""
    out: dict[str, Any] = {}
    for key, value in flt.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"filter keys must be non-empty strings, got {key!r}")
        if isinstance(value, list):
            if not value or not all(isinstance(v, _SCALAR) for v in value):
                raise ValueError(f"filter value for {key!r} must be a scalar or a non-empty list of scalars")
        elif not isinstance(value, _SCALAR):
            raise ValueError(  # noqa: TRY004 - callers (and tests) catch ValueError for bad filters
                f"filter value for {key!r} must be str, int, float or bool, got {type(value).__name__}"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"filter value for {key!r} must be finite")
        out[key] = value
    return out


def _positive_int(name: str, value: object, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        hint = " or None" if optional else ""
        raise ValueError(f"{name} must be a positive int{hint}, got {value!r}")


@dataclass(frozen=True)
class SearchOptions:
    """How to search: built once, validated, passed on unchanged to the store.

    Args:
        k: hits to return.
        mode: ``"dense"``, ``"sparse"``, ``"hybrid"`` (dense + sparse fused) or ``"colbert"``
            (hybrid candidates reranked by ColBERT MaxSim).
        fusion: how hybrid fuses: ``"rrf"`` (``1 / (rrf_k + rank)``), ``"dbsf"`` or
            ``"weighted"`` (``weights[0] * dense + weights[1] * sparse``).
        rrf_k: the RRF constant, pinned to 60 (``bge_core.fusion.DEFAULT_RRF_K``) unless given.
        weights: ``(dense, sparse)`` weights of ``"weighted"`` fusion.
        filter: a ``{metadata_key: value}`` dict (a list value matches any of its items) or a
            store-native filter (``qdrant_client.models.Filter``, a Milvus expression).
        prefetch_limit: candidates per list before fusion / ColBERT (default
            ``max(4 * candidates, 100)``).
        rerank: a cross-encoder applied to the top ``rerank_candidates`` hits.
        rerank_candidates: hits the cross-encoder reranks (default ``max(k, 20)``).
    """

    k: int = 10
    mode: Mode = "hybrid"
    fusion: Fusion = "rrf"
    rrf_k: int = DEFAULT_RRF_K
    weights: tuple[float, float] = (1.0, 1.0)
    filter: Any = None
    prefetch_limit: int | None = None
    rerank: RerankerLike | None = dataclasses.field(default=None, compare=False)
    rerank_candidates: int | None = None

    def __post_init__(self) -> None:
        _positive_int("k", self.k)
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; use one of {', '.join(MODES)}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {self.fusion!r}; use one of {', '.join(FUSIONS)}")
        if not isinstance(self.rrf_k, int) or isinstance(self.rrf_k, bool) or self.rrf_k < 0:
            raise ValueError(f"rrf_k must be an int >= 0 (default {DEFAULT_RRF_K}), got {self.rrf_k!r}")
        weights = self.weights
        if (
            not isinstance(weights, (tuple, list))
            or len(weights) != 2
            or not all(isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) for w in weights)
        ):
            raise ValueError(
                f"weights must be two finite numbers (dense, sparse), for example (1.0, 0.3); got {weights!r}"
            )
        object.__setattr__(self, "weights", (float(weights[0]), float(weights[1])))
        _positive_int("prefetch_limit", self.prefetch_limit, optional=True)
        _positive_int("rerank_candidates", self.rerank_candidates, optional=True)
        if self.rerank is not None and not callable(getattr(self.rerank, "score", None)):
            raise TypeError(
                f"rerank must be a cross-encoder with a score(pairs) method (bge_core.Reranker), "
                f"got {type(self.rerank).__name__}"
            )
        if isinstance(self.filter, Mapping):
            object.__setattr__(self, "filter", validate_filter_dict(self.filter) or None)

    @classmethod
    def from_kwargs(cls, base: SearchOptions | None = None, /, **kwargs: Any) -> SearchOptions:
        """``base`` (default: the defaults) with ``kwargs`` applied; unknown names are refused."""
        unknown = sorted(set(kwargs) - set(OPTION_NAMES))
        if unknown:
            raise TypeError(f"unknown search option(s) {', '.join(unknown)}; use {', '.join(OPTION_NAMES)}")
        if base is None:
            return cls(**kwargs)
        if not isinstance(base, SearchOptions):
            raise TypeError(f"options must be a SearchOptions, got {type(base).__name__}")
        return dataclasses.replace(base, **kwargs) if kwargs else base

    def replace(self, **changes: Any) -> SearchOptions:
        """A validated copy with ``changes`` applied."""
        return SearchOptions.from_kwargs(self, **changes)

    @property
    def candidates(self) -> int:
        """Hits to fetch from the store: ``k``, or the rerank candidates (at least ``k``)."""
        if self.rerank is None:
            return self.k
        return max(self.k, self.rerank_candidates or DEFAULT_RERANK_CANDIDATES)

    @property
    def prefetch(self) -> int:
        """Candidates per list before fusion or ColBERT (at least :attr:`candidates`)."""
        limit = self.candidates
        return max(self.prefetch_limit or max(4 * limit, 100), limit)

    def as_kwargs(self) -> dict[str, Any]:
        """The options as keywords of ``VectorIndex.search``."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


#: The names :class:`SearchOptions` (and the keyword form of ``search``) accept.
OPTION_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(SearchOptions))
