"""Document compressors: BGE cross-encoder rerank and BGE-M3 ColBERT (MaxSim) rerank."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict, Field, PrivateAttr

from bge_core.holder import ModelHolder
from bge_core.ranking import colbert_scores, top_n_order
from langchain_bge.embeddings import embedding_holder

__all__ = ["SCORE_KEY", "BGEColBERTRerank", "BGERerank"]

#: Metadata key of the final relevance score (the LangChain convention, as in CohereRerank).
SCORE_KEY = "relevance_score"


def _check_inputs(documents: Sequence[Document], query: str) -> list[Document]:
    if not isinstance(query, str):
        raise TypeError(f"query must be a str, got {type(query).__name__}")
    docs = list(documents)
    for i, doc in enumerate(docs):
        if not isinstance(doc, Document):
            raise TypeError(f"documents[{i}] is {type(doc).__name__}, not a langchain_core Document")
    return docs


def _ranked(docs: list[Document], scores: Sequence[float], top_n: int | None, keys: tuple[str, ...]) -> list[Document]:
    """Documents best first (ties keep input order), with their score under ``keys``."""
    out = []
    for i in top_n_order(scores, top_n):
        doc, score = docs[i], float(scores[i])
        out.append(
            Document(page_content=doc.page_content, metadata={**doc.metadata, **dict.fromkeys(keys, score)}, id=doc.id)
        )
    return out


def _without(state: dict[Any, Any], field: str) -> dict[Any, Any]:
    """A pydantic pickle state with the model-object ``field`` cleared."""
    return {**state, "__dict__": {**state["__dict__"], field: None}}


class BGERerank(BaseDocumentCompressor):
    """Rerank documents with a BGE cross-encoder (``bge_core.Reranker``).

    Keeps the ``top_n`` best documents, best first, and writes each score (the raw logit,
    or its sigmoid with ``normalize=True``) to ``metadata["relevance_score"]`` and
    ``metadata["rerank_score"]``. Works as the ``base_compressor`` of LangChain's
    ``ContextualCompressionRetriever``, or in a chain via :meth:`compress_documents`.

    Args:
        model: hub id or local folder, loaded on first use (default ``"BAAI/bge-reranker-v2-m3"``).
        reranker: a loaded ``bge_core.Reranker`` (or any object with ``score(pairs)``) to share.
        top_n: documents to keep (``None``: all, reordered).
        normalize: sigmoid scores in ``[0, 1]``.
        device, dtype, batch_size, max_length: reranker options when loading ``model``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())

    model: str | None = None
    reranker: Any = Field(default=None, exclude=True)
    top_n: int | None = Field(default=3, ge=1)
    normalize: bool = False
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = Field(default=32, ge=1)
    max_length: int = Field(default=512, ge=2)

    _holder: ModelHolder = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        """Set up the lazy reranker (nothing is loaded here)."""
        if self.model is not None and self.reranker is not None:
            raise ValueError("pass either model or reranker, not both")
        if isinstance(self.reranker, BGERerank):
            self._holder = self.reranker._holder
            return
        if isinstance(self.reranker, ModelHolder):
            self._holder = self.reranker
            return
        if self.reranker is not None:
            if not callable(getattr(self.reranker, "score", None)):
                raise TypeError(
                    f"reranker must have a score(pairs) method (bge_core.Reranker), got {type(self.reranker).__name__}"
                )
            self._holder = ModelHolder(obj=self.reranker)
            return
        self._holder = ModelHolder(
            os.fspath(self.model or "BAAI/bge-reranker-v2-m3"),
            role="rerank",
            device=self.device,
            dtype=self.dtype,
            batch_size=self.batch_size,
            max_length=self.max_length,
        )

    @property
    def model_holder(self) -> ModelHolder:
        """The shared lazy reranker holder."""
        return self._holder

    def __getstate__(self) -> dict[Any, Any]:
        # The holder carries the model (as its spec); the object field would drag torch along.
        return _without(super().__getstate__(), "reranker")

    @property
    def cross_encoder(self) -> Any:
        """The loaded cross-encoder (loads it on first access)."""
        return self._holder.get()

    def score(self, query: str, documents: Sequence[Document]) -> list[float]:
        """Cross-encoder score of each document for ``query``, in input order."""
        docs = _check_inputs(documents, query)
        if not docs:
            return []
        scores = self._holder.get().score([(query, d.page_content) for d in docs], normalize=self.normalize)
        return [float(s) for s in scores]

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """The ``top_n`` documents by cross-encoder score, best first, scores in metadata."""
        docs = _check_inputs(documents, query)
        return _ranked(docs, self.score(query, docs), self.top_n, (SCORE_KEY, "rerank_score"))

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """:meth:`compress_documents` on a worker thread (does not block the event loop)."""
        return await asyncio.to_thread(self.compress_documents, documents, query, callbacks)


class BGEColBERTRerank(BaseDocumentCompressor):
    """Rerank any retriever's documents by BGE-M3 ColBERT late interaction (MaxSim).

    Encodes the query and the documents with M3's ColBERT head and scores them with
    ``bge_core.scoring.maxsim``; keeps the ``top_n`` best, writing the score to
    ``metadata["relevance_score"]`` and ``metadata["colbert_score"]``.

    Args:
        model: hub id or folder of a BGE-M3 checkpoint, loaded on first use (default ``"BAAI/bge-m3"``).
        encoder: a loaded ``BGEM3Encoder``, or a langchain_bge wrapper whose model to share
            (for example the ``BGEEmbeddings`` used for retrieval).
        top_n: documents to keep (``None``: all, reordered).
        device, dtype, batch_size: encoder options when loading ``model``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())

    model: str | None = None
    encoder: Any = Field(default=None, exclude=True)
    top_n: int | None = Field(default=3, ge=1)
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = Field(default=32, ge=1)

    _holder: ModelHolder = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        """Set up the lazy encoder (nothing is loaded here)."""
        self._holder = embedding_holder(
            self.model, self.encoder, kind="m3", device=self.device, dtype=self.dtype, batch_size=self.batch_size
        )

    @property
    def encoder_holder(self) -> ModelHolder:
        """The shared lazy encoder (pass this wrapper as ``encoder=`` to share the model)."""
        return self._holder

    def __getstate__(self) -> dict[Any, Any]:
        # The holder carries the model (as its spec); the object field would drag torch along.
        return _without(super().__getstate__(), "encoder")

    def score(self, query: str, documents: Sequence[Document]) -> list[float]:
        """ColBERT MaxSim score of each document for ``query``, in input order."""
        docs = _check_inputs(documents, query)
        if not docs:
            return []
        return colbert_scores(self._holder.get(), query, [x.page_content for x in docs])

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """The ``top_n`` documents by MaxSim, best first, scores in metadata."""
        docs = _check_inputs(documents, query)
        return _ranked(docs, self.score(query, docs), self.top_n, (SCORE_KEY, "colbert_score"))

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """:meth:`compress_documents` on a worker thread (does not block the event loop)."""
        return await asyncio.to_thread(self.compress_documents, documents, query, callbacks)
