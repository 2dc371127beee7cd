"""Tiny random checkpoints for tests, examples and benchmarks (no network needed).

``build_tiny_m3(path)`` writes an XLM-RoBERTa BGE-M3 look-alike with ``colbert_linear.pt`` and
``sparse_linear.pt``; ``build_tiny_reranker(path)`` a sequence-classification model;
``add_m3_heads(src, dst)`` turns any encoder checkpoint (for example all-MiniLM-L6-v2) into an
M3-shaped one. Weights are random: outputs are well-formed, not meaningful.
"""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["TINY_CORPUS", "TINY_WORDS", "add_m3_heads", "build_tiny_m3", "build_tiny_reranker"]

TINY_WORDS = [
    "the",
    "a",
    "an",
    "of",
    "to",
    "in",
    "and",
    "or",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "it",
    "this",
    "that",
    "these",
    "those",
    "with",
    "for",
    "on",
    "at",
    "by",
    "from",
    "as",
    "not",
    "no",
    "yes",
    "all",
    "any",
    "some",
    "many",
    "few",
    "more",
    "most",
    "less",
    "much",
    "one",
    "two",
    "three",
    "four",
    "five",
    "first",
    "last",
    "new",
    "old",
    "good",
    "bad",
    "high",
    "low",
    "big",
    "small",
    "long",
    "short",
    "cell",
    "cells",
    "gene",
    "genes",
    "protein",
    "proteins",
    "cancer",
    "tumor",
    "tumors",
    "blood",
    "heart",
    "brain",
    "liver",
    "lung",
    "kidney",
    "bone",
    "skin",
    "muscle",
    "virus",
    "viruses",
    "bacteria",
    "infection",
    "immune",
    "response",
    "drug",
    "drugs",
    "dose",
    "treatment",
    "therapy",
    "patients",
    "patient",
    "study",
    "studies",
    "trial",
    "trials",
    "result",
    "results",
    "effect",
    "effects",
    "risk",
    "risks",
    "increase",
    "decrease",
    "level",
    "levels",
    "rate",
    "rates",
    "growth",
    "death",
    "disease",
    "diseases",
    "mouse",
    "mice",
    "human",
    "humans",
    "model",
    "models",
    "data",
    "analysis",
    "method",
    "methods",
    "test",
    "tests",
    "sample",
    "samples",
    "group",
    "groups",
    "control",
    "controls",
    "vector",
    "search",
    "index",
    "query",
    "document",
    "documents",
    "retrieval",
    "dense",
    "sparse",
    "hybrid",
    "colbert",
    "rerank",
    "score",
    "scores",
    "fusion",
    "qdrant",
    "milvus",
    "langchain",
    "llama",
    "python",
    "fast",
    "slow",
    "cat",
    "dog",
    "fish",
    "bird",
    "tree",
    "water",
    "fire",
    "earth",
    "air",
    "sun",
    "moon",
    "star",
    "city",
    "river",
    "mountain",
    "music",
    "art",
    "book",
    "paper",
    "red",
    "green",
    "blue",
    "black",
    "white",
    "cold",
    "hot",
    "warm",
    "day",
    "night",
    "year",
    "time",
    "people",
    "world",
    "life",
    "work",
]

#: Texts made of TINY_WORDS (the last two: an empty text and one with no known token).
TINY_CORPUS = (
    "the cat is on the mat",
    "the dog is in the water",
    "cancer cells grow in the liver",
    "blood cells and the immune response",
    "a new drug treatment for heart disease",
    "dense sparse hybrid retrieval with colbert rerank",
    "the sun and the moon and the star",
    "music art and book paper",
    "mice study of gene protein levels",
    "patients in the trial had lower risk",
    "",
    "zzz qqq",
)

_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
_CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'-()")


def _tokenizer_files(path: Path) -> None:
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )
    from transformers import XLMRobertaTokenizerFast  # type: ignore[attr-defined]

    vocab: list[tuple[str, float]] = [(t, 0.0) for t in _SPECIALS]
    vocab += [("▁" + w, -5.0 - 0.01 * i) for i, w in enumerate(TINY_WORDS)]
    vocab += [("▁", -8.0)] + [(c, -10.0) for c in _CHARS]
    tok = Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    fast = XLMRobertaTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<unk>",
        model_max_length=8192,
    )
    fast.save_pretrained(str(path))


def _config(vocab_size: int, *, hidden: int, layers: int, max_positions: int, num_labels: int = 1):  # type: ignore[no-untyped-def]
    from transformers import XLMRobertaConfig

    return XLMRobertaConfig(  # type: ignore[call-arg]
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=hidden * 2,
        max_position_embeddings=max_positions + 2,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        initializer_range=0.2,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=num_labels,
    )


def _vocab_size() -> int:
    return len(_SPECIALS) + len(TINY_WORDS) + 1 + len(_CHARS)


def build_tiny_m3(
    path: str | Path,
    *,
    hidden: int = 32,
    layers: int = 2,
    max_positions: int = 8192,
    seed: int = 0,
    heads: bool = True,
) -> Path:
    """Write a tiny random BGE-M3-shaped checkpoint into ``path`` and return it."""
    import torch
    from transformers import XLMRobertaModel

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    _tokenizer_files(out)
    model = XLMRobertaModel(
        _config(_vocab_size(), hidden=hidden, layers=layers, max_positions=max_positions), add_pooling_layer=False
    )
    model.save_pretrained(str(out))
    if heads:
        _write_heads(out, hidden, seed)
    return out


def _write_heads(out: Path, hidden: int, seed: int) -> None:
    import torch

    gen = torch.Generator().manual_seed(seed + 1)
    colbert = torch.nn.Linear(hidden, hidden)
    sparse = torch.nn.Linear(hidden, 1)
    with torch.no_grad():
        colbert.weight.copy_(torch.randn(hidden, hidden, generator=gen) * 0.2)
        colbert.bias.copy_(torch.randn(hidden, generator=gen) * 0.02)
        sparse.weight.copy_(torch.randn(1, hidden, generator=gen) * 0.1)
        # A positive bias keeps most lexical weights above zero (else sparse is degenerate).
        sparse.bias.fill_(0.6)
    torch.save(colbert.state_dict(), out / "colbert_linear.pt")
    torch.save(sparse.state_dict(), out / "sparse_linear.pt")


def build_tiny_reranker(path: str | Path, *, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """Write a tiny random cross-encoder (XLM-RoBERTa, one logit) into ``path``."""
    import torch
    from transformers import XLMRobertaForSequenceClassification

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed + 7)
    _tokenizer_files(out)
    model = XLMRobertaForSequenceClassification(
        _config(_vocab_size(), hidden=hidden, layers=layers, max_positions=512, num_labels=1)
    )
    model.save_pretrained(str(out))
    return out


def add_m3_heads(src: str | Path, dst: str | Path, *, seed: int = 0) -> Path:
    """Copy an encoder checkpoint and add random ``colbert_linear.pt`` / ``sparse_linear.pt``.

    Used for realistic-size speed benchmarks (for example on all-MiniLM-L6-v2 weights).
    """
    import json

    src_p, dst_p = Path(src), Path(dst)
    if dst_p.exists():
        shutil.rmtree(dst_p)
    shutil.copytree(src_p, dst_p)
    hidden = int(json.loads((dst_p / "config.json").read_text())["hidden_size"])
    _write_heads(dst_p, hidden, seed)
    return dst_p
