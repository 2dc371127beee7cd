"""BGE dense embeddings as a LlamaIndex ``BaseEmbedding``."""

from __future__ import annotations

import functools
import os
from typing import Any, Literal

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import ConfigDict, Field, PrivateAttr

from bge_core.async_batching import DynamicBatcher
from bge_core.cache import shared_cache
from bge_core.holder import ModelHolder, as_holder
from llama_index_bge.pickling import KeepsHolder

__all__ = ["BGEEmbedding"]

DEFAULT_MODEL = "BAAI/bge-m3"

# Fields that are options of the model class (sent to it when ``model_name`` is loaded).
_MODEL_OPTIONS = (
    "query_instruction",
    "text_instruction",
    "max_length",
    "normalize",
    "pooling",
    "device",
    "dtype",
    "batch_size",
)


def _dense_rows(holder: ModelHolder, texts: list[str], query: bool) -> list[Embedding]:
    """Dense vectors as lists; an M3 encoder goes through its shared one-pass cache."""
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings; wrap it: [text]")
    enc = holder.get()
    if getattr(enc, "supports_sparse", False):
        out = shared_cache(enc).encode(texts, query=query)
    else:
        out = enc.encode_outputs(texts, query=query, dense=True, sparse=False, colbert=False)
    assert out.dense is not None
    rows: list[Embedding] = out.dense.tolist()
    return rows


class BGEEmbedding(KeepsHolder, BaseEmbedding):
    """Dense BGE embeddings for LlamaIndex.

    With a BGE-M3 model (``BGEM3Encoder``) queries and documents are embedded alike, and dense
    and sparse vectors come from one forward pass: the outputs go through
    :func:`bge_core.cache.shared_cache`, so the sparse functions of
    :func:`llama_index_bge.bge_m3_sparse_functions` built on the same encoder reuse them.
    With a v1.5 model (``DenseEncoder``) queries get the model's query instruction.

    Every option is a declared field, so ``to_dict()`` / ``from_dict()`` round-trip them and
    an unknown keyword is refused (as ``HuggingFaceEmbedding``).

    Args:
        model_name: hub id or local folder (default ``BAAI/bge-m3``), loaded on first use.
        encoder: an already loaded ``BGEM3Encoder`` or ``DenseEncoder`` (shares its model; its
            settings fill the option fields). Not serialised: ``from_dict`` loads ``model_name``.
        kind: ``"auto"`` (BGE-M3 when the checkpoint has M3 heads), ``"m3"`` or ``"dense"``.
        query_instruction: prefix of queries (v1.5 models); ``None``: the model's known
            instruction, ``""``: none. BGE-M3 takes none.
        text_instruction: prefix of documents (v1.5 models; default none).
        max_length / normalize / pooling / device / dtype / batch_size: model options
            (``None``: the model's default).
        embed_batch_size: texts per call into the encoder (LlamaIndex batches by it).
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=("pydantic_model_",), arbitrary_types_allowed=True)

    model_name: str = Field(default=DEFAULT_MODEL, description="Hub id or local folder of the BGE model.")
    kind: str = Field(default="auto", description="'auto', 'm3' or 'dense'.")
    query_instruction: str | None = Field(
        default=None, description="Query prefix (None: the model's known instruction; '': none)."
    )
    text_instruction: str | None = Field(default=None, description="Document prefix (None or '': none).")
    max_length: int | None = Field(default=None, ge=2, description="Token cap per text (None: the model's).")
    normalize: bool | None = Field(default=None, description="L2-normalise the vectors (None: the model's recipe).")
    pooling: Literal["cls", "mean"] | None = Field(default=None, description="Dense pooling (None: the model's).")
    device: str | None = Field(default=None, description="'auto', 'cpu', 'cuda', 'cuda:1', 'mps' (None: auto).")
    dtype: str | None = Field(default=None, description="'auto', 'float32', 'bfloat16', 'float16' (None: auto).")
    batch_size: int | None = Field(default=None, ge=1, description="Texts per forward pass (None: the model's).")

    _ref: ModelHolder = PrivateAttr()
    _batcher: DynamicBatcher[Embedding] = PrivateAttr()

    def __init__(self, model_name: str | os.PathLike[str] | None = None, *, encoder: Any = None, **data: Any) -> None:
        if model_name is not None and not isinstance(model_name, (str, os.PathLike)):
            raise TypeError(
                f"model_name must be a hub id or a folder path, got {type(model_name).__name__}; "
                "pass a loaded encoder with encoder=..."
            )
        if encoder is not None:
            if not callable(getattr(encoder, "encode_outputs", None)):
                raise TypeError(
                    f"encoder must be a bge_core BGEM3Encoder or DenseEncoder, got {type(encoder).__name__}"
                )
            given = sorted(k for k in _MODEL_OPTIONS if data.get(k) is not None)
            if given:
                raise ValueError(
                    f"{', '.join(given)} apply when BGEEmbedding loads model_name; with encoder=..., "
                    "set them on the encoder instead"
                )
            spec = getattr(encoder, "load_spec", None)
            for key, value in getattr(spec, "options", ()):
                if key in _MODEL_OPTIONS:
                    data[key] = value
            if spec is not None and "kind" not in data:
                data["kind"] = spec.kind
            if model_name is None:
                model_name = str(getattr(encoder, "model_name", DEFAULT_MODEL))
        super().__init__(model_name=os.fspath(model_name) if model_name is not None else DEFAULT_MODEL, **data)
        if encoder is not None:
            self._ref = ModelHolder(obj=encoder)
        else:
            options = {k: getattr(self, k) for k in _MODEL_OPTIONS}
            self._ref = as_holder(self.model_name, kind=self.kind, role="embed", **options)
        self._bind()

    def _bind(self) -> None:
        # The batcher calls a module function of the holder, not a method: pickling this
        # object then never recurses through the batcher.
        self._batcher = DynamicBatcher(functools.partial(_dense_rows, self._ref))

    @classmethod
    def class_name(cls) -> str:
        """LlamaIndex serialisation name."""
        return "BGEEmbedding"

    @property
    def encoder(self) -> Any:
        """The encoder (loads the model on first access when built from a name)."""
        return self._ref.get()

    @property
    def encoder_ref(self) -> ModelHolder:
        """The lazy model holder; other wrappers may share it (no model is loaded)."""
        return self._ref

    def _embed(self, texts: list[str], query: bool) -> list[Embedding]:
        return _dense_rows(self._ref, texts, query)

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._embed([query], True)[0]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return (await self._batcher.submit([query], query=True))[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._embed([text], False)[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._batcher.submit([text], query=False))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._embed(texts, False)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await self._batcher.submit(texts, query=False)
