"""What a checkpoint is, decided once: the registry of model kinds and :func:`load`.

A *kind* names a model class and says how to recognise a checkpoint of it:

- ``"m3"``: BGE-M3 (``BGEM3Encoder``): a transformer plus ``colbert_linear`` and
  ``sparse_linear`` head files.
- ``"dense"``: a dense sentence encoder (``DenseEncoder``): BGE v1.5, sentence-transformers.
- ``"reranker"``: a cross-encoder (``Reranker``): a sequence-classification checkpoint.

``kind="auto"`` uses the registry of known models (:mod:`bge_core.models`, no file access),
else the files of the local folder, or of the hub id resolved through the Hugging Face cache
(and the hub unless ``HF_HUB_OFFLINE`` is set). Every caller (the CLI, the LangChain and
LlamaIndex wrappers) goes through :func:`detect_kind`, so an unknown hub id gets the same
answer everywhere.

Adding a kind is one :func:`register_kind` call with a :class:`ModelKind` entry.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bge_core.errors import BGEError

__all__ = [
    "HEAD_FILES",
    "KINDS",
    "ModelKind",
    "ModelKindError",
    "ModelSpec",
    "Role",
    "detect_kind",
    "load",
    "register_kind",
]

#: What a wrapper does with a model: embed texts or score (query, passage) pairs.
Role = Literal["embed", "rerank"]

#: The two M3 heads, each as ``.pt`` or ``.safetensors``.
_M3_HEADS = ("colbert_linear", "sparse_linear")
#: Files whose presence marks a BGE-M3 checkpoint.
HEAD_FILES: tuple[str, ...] = tuple(f"{h}.{ext}" for h in _M3_HEADS for ext in ("pt", "safetensors"))


class ModelKindError(BGEError, ValueError):
    """A checkpoint's kind is unknown, ambiguous or does not fit the wrapper that asked for it."""


Detector = Callable[[Path, Mapping[str, Any]], bool]


@dataclass(frozen=True)
class ModelKind:
    """One entry of the kind registry.

    Args:
        name: the ``kind=`` value (``"m3"``, ``"dense"``, ...).
        role: ``"embed"`` or ``"rerank"``; a wrapper asking for one role refuses the other.
        target: ``"module:Class"`` of the model class; called as ``Class(name_or_path, **options)``.
        detect: ``(folder, config.json) -> bool`` for ``kind="auto"``; ``None``: never detected,
            only chosen explicitly or through the registry of known models.
        description: a few words for error messages.
        fallback: a catch-all kind (any other encoder is dense, any other causal LM an LLM
            reranker): a specific kind that also matches wins over it.
    """

    name: str
    role: Role
    target: str
    detect: Detector | None = field(default=None, compare=False)
    description: str = ""
    fallback: bool = False

    def model_class(self) -> Any:
        """The model class (imports its module)."""
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)


KINDS: dict[str, ModelKind] = {}


def register_kind(kind: ModelKind, *, replace: bool = False) -> None:
    """Add ``kind`` to the registry (``replace=True`` to override an existing name)."""
    if kind.name == "auto":
        raise ValueError("'auto' is reserved for detection")
    if kind.name in KINDS and not replace:
        raise ValueError(f"model kind {kind.name!r} is already registered; pass replace=True to override it")
    KINDS[kind.name] = kind


def _heads(folder: Path) -> set[str]:
    return {h for h in _M3_HEADS if any((folder / f"{h}.{ext}").is_file() for ext in ("pt", "safetensors"))}


def _architectures(config: Mapping[str, Any]) -> list[str]:
    return [str(a) for a in config.get("architectures") or []]


def _is_sequence_classifier(config: Mapping[str, Any]) -> bool:
    return any(a.endswith("ForSequenceClassification") for a in _architectures(config))


def _is_decoder(config: Mapping[str, Any]) -> bool:
    return any(a.endswith("ForCausalLM") for a in _architectures(config))


def _detect_m3(folder: Path, config: Mapping[str, Any]) -> bool:
    return bool(_heads(folder))


def _detect_reranker(folder: Path, config: Mapping[str, Any]) -> bool:
    return _is_sequence_classifier(config) and not _heads(folder)


def _detect_dense(folder: Path, config: Mapping[str, Any]) -> bool:
    return not (_heads(folder) or _is_sequence_classifier(config) or _is_decoder(config))


def _llm_detector(name: str) -> Detector:
    def detect(folder: Path, config: Mapping[str, Any]) -> bool:
        from bge_core import llm_reranker

        return bool(getattr(llm_reranker, name)(folder, config))

    return detect


for _kind in (
    ModelKind("m3", "embed", "bge_core.m3:BGEM3Encoder", _detect_m3, "a BGE-M3 model (dense + sparse + ColBERT)"),
    ModelKind("dense", "embed", "bge_core.dense:DenseEncoder", _detect_dense, "a dense embedding model", fallback=True),
    ModelKind("reranker", "rerank", "bge_core.reranker:Reranker", _detect_reranker, "a cross-encoder reranker"),
    # The LLM members of the reranker family; their detectors live with their code (imported on use).
    ModelKind(
        "llm-reranker",
        "rerank",
        "bge_core.llm_reranker:LLMReranker",
        _llm_detector("detect_llm_reranker"),
        "an LLM reranker (Yes logit)",
        fallback=True,
    ),
    ModelKind(
        "layerwise-reranker",
        "rerank",
        "bge_core.llm_reranker:LayerwiseLLMReranker",
        _llm_detector("detect_layerwise"),
        "a layer-wise MiniCPM reranker",
    ),
    ModelKind(
        "lightweight-reranker",
        "rerank",
        "bge_core.llm_reranker:LightweightLLMReranker",
        _llm_detector("detect_lightweight"),
        "a lightweight Gemma-2 reranker",
    ),
):
    register_kind(_kind)


def _kinds_list() -> str:
    return ", ".join(repr(k) for k in ("auto", *KINDS))


def _check_role(name: str, kind: ModelKind, role: Role | None) -> None:
    if role is None or kind.role == role:
        return
    if role == "embed":
        fix = "use it as a reranker (BGERerank, `bge search --rerank`) and pass an embedding model here"
    else:
        fix = "pass a reranker model here (for example 'BAAI/bge-reranker-v2-m3')"
    what = f" ({kind.description})" if kind.description else ""
    raise ModelKindError(f"{name} is a {kind.name} model{what}, not a model that can {role}: {fix}")


def _read_config(folder: Path) -> dict[str, Any]:
    cfg = folder / "config.json"
    if not cfg.is_file():
        return {}
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _detect_folder(name: str, folder: Path) -> ModelKind:
    heads = _heads(folder)
    if len(heads) == 1:
        have = next(iter(heads))
        lacks = next(h for h in _M3_HEADS if h != have)
        off = "sparse=False" if lacks == "sparse_linear" else "colbert=False"
        raise ModelKindError(
            f"{name} has {have} but no {lacks}: an incomplete BGE-M3 checkpoint. Pass kind='m3' "
            f"with {off} to use it without that head, or kind='dense' to use only its dense output"
        )
    config = _read_config(folder)
    matches = [k for k in KINDS.values() if k.detect is not None and k.detect(folder, config)]
    specific = [k for k in matches if not k.fallback]
    if specific:
        matches = specific
    if len(matches) == 1:
        return matches[0]
    arch = "+".join(_architectures(config)) or "no architectures in config.json"
    if not matches:
        raise ModelKindError(f"Cannot tell what kind of model {name} is ({arch}); pass kind= one of {_kinds_list()}")
    raise ModelKindError(
        f"{name} looks like several kinds of model ({', '.join(k.name for k in matches)}; {arch}); "
        "pass kind= to choose one"
    )


def detect_kind(name_or_path: str | os.PathLike[str], kind: str = "auto", *, role: Role | None = None) -> ModelKind:
    """The registry entry that serves ``name_or_path``.

    An explicit ``kind`` is looked up; ``"auto"`` uses the registry of known models, then the
    checkpoint's files (a hub id is resolved through the cache or the hub, see
    :func:`bge_core.loading.resolve_model_dir`). With ``role``, a model of the other role is
    refused with a message that says what to do instead.

    Raises:
        ModelKindError: unknown ``kind``, a checkpoint of no or several kinds, or the wrong role.
        ModelNotAvailableError / ModelFilesError: the checkpoint cannot be found or read.
    """
    name = os.fspath(name_or_path)
    if kind != "auto":
        entry = KINDS.get(kind)
        if entry is None:
            raise ModelKindError(f"unknown model kind {kind!r}; use one of {_kinds_list()}")
        _check_role(name, entry, role)
        return entry
    folder = Path(name).expanduser()
    if not folder.is_dir():
        from bge_core.models import model_info

        info = model_info(name)
        if info is not None and info.kind in KINDS:
            entry = KINDS[info.kind]
            _check_role(name, entry, role)
            return entry
        from bge_core.loading import resolve_model_dir

        folder = resolve_model_dir(name)
    entry = _detect_folder(name, folder)
    _check_role(name, entry, role)
    return entry


def _freeze(options: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, v) for k, v in options.items() if v is not None))


@dataclass(frozen=True)
class ModelSpec:
    """What to load: a model name or folder, a kind (or ``"auto"``) and the class's options.

    Options set to ``None`` are dropped (the class default applies). Two equal specs load
    one shared model in a process (see :class:`bge_core.holder.ModelHolder`); a spec is what
    a holder pickles.
    """

    name: str
    kind: str = "auto"
    options: tuple[tuple[str, Any], ...] = ()
    role: Role | None = None

    @classmethod
    def create(
        cls, name_or_path: str | os.PathLike[str], kind: str = "auto", *, role: Role | None = None, **options: Any
    ) -> ModelSpec:
        """A spec from keyword options (``None`` values dropped)."""
        if not isinstance(name_or_path, (str, os.PathLike)):
            raise TypeError(
                f"model must be a hub id or a folder path, got {type(name_or_path).__name__}; "
                "pass a loaded model object with encoder=... (or reranker=...)"
            )
        if kind != "auto" and kind not in KINDS:
            raise ModelKindError(f"unknown model kind {kind!r}; use one of {_kinds_list()}")
        return cls(os.fspath(name_or_path), kind, _freeze(options), role)

    @property
    def kwargs(self) -> dict[str, Any]:
        """The options as keyword arguments."""
        return dict(self.options)

    def resolve(self) -> ModelKind:
        """The registry entry (detects ``"auto"``)."""
        return detect_kind(self.name, self.kind, role=self.role)

    def key(self) -> tuple[Any, ...]:
        """Identity of the loaded model: name, resolved kind and options (hashable)."""
        return (self.name, self.resolve().name, tuple((k, repr(v)) for k, v in self.options))

    def load(self) -> Any:
        """Load the model now (not shared; see :class:`~bge_core.holder.ModelHolder`)."""
        entry = self.resolve()
        obj = entry.model_class()(self.name, **self.kwargs)
        return obj


def load(name_or_path: str | os.PathLike[str], kind: str = "auto", *, role: Role | None = None, **options: Any) -> Any:
    """Load a BGE model, deciding once what the checkpoint is.

    ``kind="auto"`` picks ``BGEM3Encoder`` for BGE-M3 checkpoints (head files present),
    ``Reranker`` for cross-encoders and ``DenseEncoder`` for other embedding models; pass
    ``kind="m3"`` / ``"dense"`` / ``"reranker"`` (or a kind added with :func:`register_kind`)
    to choose. ``options`` go to the class (``device``, ``dtype``, ``batch_size``, ...);
    ``None`` values are dropped.

    Example::

        enc = bge_core.load("BAAI/bge-m3", device="cpu")
    """
    return ModelSpec.create(name_or_path, kind, role=role, **options).load()
