"""Index settings: what ``bge`` records with an index, and the ONE pure function that
reconciles a run's request with what is recorded (:func:`resolve_settings`).

A stored index remembers its model, kind (``m3`` / ``dense``), outputs, chunk size in tokens
(``max_tokens``), dense dimension and layout. A later run may leave options out (the recorded
values are reused) but never contradict them: :class:`IndexSettingsMismatchError` names every
difference and the fix. No store is opened and no model is loaded here: callers pass the
recorded settings and the facts of the loaded model (:class:`ModelFacts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bge_core.errors import BGEError, IndexSettingsMismatchError

__all__ = [
    "DEFAULT_MODEL",
    "Kind",
    "ModelFacts",
    "ResolvedSettings",
    "SettingsRequest",
    "check_settings",
    "make_settings",
    "model_to_load",
    "normalize_model_name",
    "resolve_settings",
    "same_model",
]

#: The model ``bge index`` uses when none is given and none is recorded.
DEFAULT_MODEL = "BAAI/bge-m3"

Kind = Literal["m3", "dense"]

_FIX = "use another --store or --collection for a new index, or drop the option to reuse the recorded value"


def normalize_model_name(name: str) -> str:
    """The name recorded with an index: an absolute path for local folders, else the hub id."""
    folder = Path(name).expanduser()
    if folder.is_dir():
        return str(folder.resolve())
    return name.rstrip("/")


def same_model(a: str, b: str) -> bool:
    """Whether two model names denote the same model (paths resolved, hub ids case-insensitive)."""
    return normalize_model_name(a).lower() == normalize_model_name(b).lower()


def make_settings(
    *, model: str, kind: Kind, outputs: Sequence[str], max_tokens: int, dim: int, layout: str
) -> dict[str, Any]:
    """The settings ``bge`` records with an index."""
    return {
        "model": normalize_model_name(model),
        "kind": kind,
        "outputs": list(outputs),
        "max_tokens": int(max_tokens),
        "dim": int(dim),
        "layout": layout,
    }


def check_settings(recorded: dict[str, Any], wanted: dict[str, Any], where: str) -> None:
    """Raise :class:`IndexSettingsMismatchError` naming every setting that differs."""
    diffs = []
    for key in ("model", "kind", "outputs", "max_tokens", "dim", "layout"):
        have, want = recorded.get(key), wanted.get(key)
        if key == "model" and isinstance(have, str) and isinstance(want, str) and same_model(have, want):
            continue
        if have != want:
            diffs.append(f"{key} {_show(have)} (you asked for {_show(want)})")
    if diffs:
        raise IndexSettingsMismatchError(f"{where} was built with " + "; ".join(diffs) + f": {_FIX}")


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "+".join(str(v) for v in value) or "none"
    return repr(value) if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class SettingsRequest:
    """What a run asks for (``None``: reuse the recorded value, else the default).

    Args:
        model: ``--model``.
        max_tokens: ``--max-tokens`` (chunk size in tokens, special tokens included).
        colbert: ``False`` for ``--no-colbert``; ``None`` keeps what is recorded (ColBERT on
            for a new M3 index).
        layout: ``"chunks"`` (``bge index``) or ``"documents"`` (``bge eval``).
        fixed_max_tokens: the cap is always the model's (``bge eval`` truncates documents).
    """

    model: str | None = None
    max_tokens: int | None = None
    colbert: bool | None = None
    layout: str = "chunks"
    fixed_max_tokens: bool = False


@dataclass(frozen=True)
class ModelFacts:
    """What settings need to know of a loaded encoder."""

    kind: Kind
    dim: int
    supports_colbert: bool
    max_length: int
    #: Special tokens the tokenizer adds to one text ([CLS], [SEP], ...).
    special_tokens: int

    @classmethod
    def of(cls, encoder: Any) -> ModelFacts:
        """The facts of a ``BGEM3Encoder`` / ``DenseEncoder`` (or a wrapper of one)."""
        return cls(
            kind="m3" if encoder.supports_sparse else "dense",
            dim=int(encoder.dim),
            supports_colbert=bool(encoder.supports_colbert),
            max_length=int(encoder.max_length),
            special_tokens=special_tokens_of(encoder),
        )


def special_tokens_of(encoder: Any, *, pair: bool = False) -> int:
    """Special tokens ``encoder``'s tokenizer adds to one text (or a pair).

    Our encoders answer from cached tokenizer facts (no transformers import); others through
    their Hugging Face tokenizer."""
    count = getattr(encoder, "num_special_tokens", None)
    return int(count(pair=pair) if callable(count) else encoder.tokenizer.num_special_tokens_to_add(pair=pair))


@dataclass(frozen=True)
class ResolvedSettings:
    """The settings a run uses: the model to load, the outputs to store, what to record."""

    model: str
    kind: Kind
    colbert: bool
    max_tokens: int
    settings: dict[str, Any]


def _recorded_outputs(recorded: dict[str, Any] | None) -> list[str] | None:
    if recorded is None or not isinstance(recorded.get("outputs"), list):
        return None
    return [str(x) for x in recorded["outputs"]]


def model_to_load(request: SettingsRequest, recorded: dict[str, Any] | None, where: str) -> str:
    """The model a run uses (requested, else recorded, else :data:`DEFAULT_MODEL`), after the
    checks that need no model: a different model, ``max_tokens`` or ``--no-colbert`` than the
    recorded ones is refused before anything is loaded."""
    if recorded is not None:
        have_model = recorded.get("model")
        if request.model and isinstance(have_model, str) and not same_model(request.model, have_model):
            raise IndexSettingsMismatchError(
                f"{where} was built with model {have_model!r} (you asked for {request.model!r}): "
                "drop --model to use the recorded one, or use another --store or --collection"
            )
        have_tokens = recorded.get("max_tokens")
        if (
            request.max_tokens is not None
            and not request.fixed_max_tokens
            and have_tokens not in (None, request.max_tokens)
        ):
            raise IndexSettingsMismatchError(
                f"{where} was built with --max-tokens {have_tokens} (you asked for {request.max_tokens}): "
                "drop --max-tokens to reuse it, or use another --store or --collection"
            )
        outputs = _recorded_outputs(recorded)
        if request.colbert is False and outputs is not None and "colbert" in outputs:
            raise IndexSettingsMismatchError(
                f"{where} was built with ColBERT vectors (you asked for --no-colbert): "
                "drop --no-colbert, or use another --store or --collection"
            )
    if request.model:
        return request.model
    if recorded and recorded.get("model"):
        return str(recorded["model"])
    return DEFAULT_MODEL


def resolve_settings(
    request: SettingsRequest, recorded: dict[str, Any] | None, model: ModelFacts, where: str
) -> ResolvedSettings:
    """Reconcile ``request`` with the ``recorded`` settings (``None`` for a new index) for the
    loaded ``model``: the outputs, the token cap and the settings to record. Pure: raises
    :class:`IndexSettingsMismatchError` / :class:`BGEError` with the fix, touches nothing."""
    name = model_to_load(request, recorded, where)
    outputs_before = _recorded_outputs(recorded)
    colbert_wanted = request.colbert
    if colbert_wanted is None:
        colbert_wanted = outputs_before is None or "colbert" in outputs_before
    colbert = model.kind == "m3" and model.supports_colbert and colbert_wanted
    outputs = ["dense"] + (["sparse"] if model.kind == "m3" else []) + (["colbert"] if colbert else [])
    if request.fixed_max_tokens:
        cap = model.max_length
    else:
        cap = request.max_tokens or (
            int(recorded["max_tokens"]) if recorded and recorded.get("max_tokens") else model.max_length
        )
        if cap > model.max_length:
            raise BGEError(f"--max-tokens {cap} is more than {name} takes ({model.max_length}); use at most that")
        if cap <= model.special_tokens:
            raise BGEError(
                f"--max-tokens {cap} leaves no room for text ({model.special_tokens} special tokens); use a larger value"
            )
    settings = make_settings(
        model=name, kind=model.kind, outputs=outputs, max_tokens=cap, dim=model.dim, layout=request.layout
    )
    if recorded is not None:
        check_settings(recorded, settings, where)
    return ResolvedSettings(model=name, kind=model.kind, colbert=colbert, max_tokens=cap, settings=settings)
