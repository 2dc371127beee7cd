"""What the encoders need from a Hugging Face tokenizer, cached so a later process skips transformers.

Loading a tokenizer with ``transformers.AutoTokenizer`` costs the ``transformers`` package
import (0.5 to 2 s) even when the model itself loads without it (:mod:`bge_core.light_model`).
The encoders only need the fast tokenizer's serialised Rust tokenizer as transformers set it
up (transformers may rewrite the normaliser / pre-tokeniser of ``tokenizer.json``, so we keep
its result, not the file) and a few ids and sizes. The first load stores these
:class:`TokenizerFacts` as one JSON file; later loads of the same files with the same
transformers and tokenizers versions read it back. The key covers the folder, the size and
mtime of every file in it that can change the tokenizer, and both versions, so an edited or
replaced checkpoint or an upgrade misses the cache and loads through transformers again.

Where: ``$BGE_CACHE_DIR/tokenizers`` (``BGE_CACHE_DIR=off`` switches the cache off), else
``$XDG_CACHE_HOME/bge-integrations/tokenizers``, else ``~/.cache/bge-integrations/tokenizers``.
A cache that cannot be read or written is skipped (logged at debug level), never an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["TokenizerFacts", "cache_dir", "read_tokenizer_facts", "write_tokenizer_facts"]

logger = logging.getLogger(__name__)

_FORMAT = 1
# Files whose content can change what AutoTokenizer builds (config.json: the tokenizer class).
_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "config.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
    "tokenizer.model",
)


@dataclass(frozen=True)
class TokenizerFacts:
    """The parts of a fast Hugging Face tokenizer the encoders use."""

    backend: str
    model_max_length: int
    pad_token_id: int | None
    cls_token_id: int | None
    eos_token_id: int | None
    unk_token_id: int | None
    model_input_names: tuple[str, ...]
    special_tokens_single: int
    special_tokens_pair: int

    @classmethod
    def of(cls, tok: Any) -> TokenizerFacts:
        """Read the facts from a loaded transformers fast tokenizer."""

        def opt(value: Any) -> int | None:
            return None if value is None else int(value)

        max_len = tok.model_max_length
        return cls(
            backend=str(tok.backend_tokenizer.to_str()),
            model_max_length=int(max_len) if max_len is not None and max_len < 2**62 else 2**62,
            pad_token_id=opt(tok.pad_token_id),
            cls_token_id=opt(tok.cls_token_id),
            eos_token_id=opt(tok.eos_token_id),
            unk_token_id=opt(tok.unk_token_id),
            model_input_names=tuple(str(n) for n in tok.model_input_names),
            special_tokens_single=int(tok.num_special_tokens_to_add(pair=False)),
            special_tokens_pair=int(tok.num_special_tokens_to_add(pair=True)),
        )


def cache_dir() -> Path | None:
    """The folder of cached tokenizer facts, or ``None`` when ``BGE_CACHE_DIR`` is off/0/empty."""
    raw = os.environ.get("BGE_CACHE_DIR")
    if raw is not None:
        if raw.strip().lower() in {"", "0", "off", "false", "no"}:
            return None
        return Path(raw).expanduser() / "tokenizers"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "bge-integrations" / "tokenizers"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "none"


def _key(model_dir: Path) -> str | None:
    parts = [f"format={_FORMAT}", f"transformers={_version('transformers')}", f"tokenizers={_version('tokenizers')}"]
    folder = model_dir.resolve()
    parts.append(str(folder))
    if not (folder / "tokenizer.json").is_file():
        return None  # a tokenizer converted on load: keep it on transformers' path
    for name in _FILES:
        try:
            st = (folder / name).stat()
        except OSError:
            continue
        parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()


def read_tokenizer_facts(model_dir: Path) -> TokenizerFacts | None:
    """The cached facts of ``model_dir``'s tokenizer, or ``None`` (not cached, changed, off)."""
    folder = cache_dir()
    key = _key(model_dir) if folder is not None else None
    if folder is None or key is None:
        return None
    path = folder / f"{key}.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        raw["model_input_names"] = tuple(raw["model_input_names"])
        return TokenizerFacts(**raw)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        logger.debug("ignoring unreadable tokenizer cache %s: %s", path, exc)
        return None


def write_tokenizer_facts(model_dir: Path, facts: TokenizerFacts) -> None:
    """Cache ``facts`` for ``model_dir`` (atomically; failures are logged and ignored)."""
    folder = cache_dir()
    key = _key(model_dir) if folder is not None else None
    if folder is None or key is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(asdict(facts), fh)
            os.replace(tmp, folder / f"{key}.json")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        logger.debug("could not write the tokenizer cache in %s: %s", folder, exc)
