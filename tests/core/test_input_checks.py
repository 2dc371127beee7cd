"""Encoder and reranker arguments that used to fail late or silently (issue 16, item 9)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def test_unpaired_surrogate_is_refused_with_its_position(m3: Any) -> None:
    with pytest.raises(ValueError, match=r"texts\[1\] holds an unpaired surrogate .* at position 0"):
        m3.encode(["fine", "\ud800abc"])
    assert m3.encode(["fine \U0001f600"]).dense.shape[0] == 1  # a paired (astral) character is fine


@pytest.mark.parametrize("bad", [-1, 0, 1])
def test_max_length_too_small_is_refused(tiny_m3_path: Path, bad: int) -> None:
    from bge_core import BGEM3Encoder, DenseEncoder

    with pytest.raises(ValueError, match=f"max_length={bad} leaves no room for text"):
        BGEM3Encoder(tiny_m3_path, device="cpu", max_length=bad)
    with pytest.raises(ValueError, match=f"max_length={bad} leaves no room for text"):
        DenseEncoder(tiny_m3_path, device="cpu", max_length=bad)


@pytest.mark.parametrize("bad", [-1, 0, 1.5, True])
def test_rerank_top_k_must_be_positive(reranker: Any, bad: object) -> None:
    with pytest.raises(ValueError, match="top_n must be a positive int or None"):
        reranker.rerank("cat", ["the cat", "a dog", "the mat"], top_k=bad)
    assert len(reranker.rerank("cat", ["the cat", "a dog", "the mat"], top_k=2)) == 2


@pytest.mark.parametrize(
    ("config", "want"),
    [
        ({"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": False}, "mean"),
        ({"pooling_mode_cls_token": True}, "cls"),
        ({"pooling_mode": "mean"}, "mean"),  # sentence-transformers 6 layout
        ({"pooling_mode": "cls"}, "cls"),
    ],
)
def test_sentence_transformers_pooling_both_layouts(tmp_path: Path, config: dict[str, Any], want: str) -> None:
    import json

    from bge_core.loading import read_sentence_transformers_config

    (tmp_path / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            ]
        )
    )
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 8, **config}))
    assert read_sentence_transformers_config(tmp_path)["pooling"] == want
