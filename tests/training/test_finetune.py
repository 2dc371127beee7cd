"""Fine-tuning: input validation before any model loads, output layout, seeding, resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("datasets")

from bge_core.finetune import (
    COMPLETE_MARKER,
    FinetuneConfig,
    TrainingDataError,
    TrainingRow,
    build_training_columns,
    finetune,
    last_complete_checkpoint,
)
from bge_core.testing import TINY_WORDS

NOT_A_MODEL = "/nonexistent/model"  # validation must fail before a model loads


def _rows(n: int = 16, negs: int = 3) -> list[dict[str, Any]]:
    w = TINY_WORDS
    return [
        {
            "query": f"{w[i % 50]} {w[(i * 7) % 60]}",
            "pos": [f"{w[i % 50]} {w[(i * 7) % 60]} {w[(i * 3) % 90]} cells"],
            "neg": [f"{w[(i + k * 11) % 150]} {w[(i * 5 + k) % 120]} other" for k in range(negs)],
        }
        for i in range(n)
    ]


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


CFG = FinetuneConfig(
    epochs=2,
    batch_size=4,
    group_size=2,
    learning_rate=1e-3,
    seed=5,
    dtype="float32",
    device="cpu",
    show_progress=False,
    logging_steps=1,
)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("", "is empty"),
        ("\n  \n", "is empty"),
        (
            '{"query": "q", "pos": ["p"], "neg": ["n"]}\n{"query": "q", "pos": ["p"], "neg": ["n"]\n',
            ":2: not valid JSON",
        ),
        ('{"query": "q", "pos": [], "neg": ["n"]}\n', ':1: "pos"'),
        ('{"query": "", "pos": ["p"], "neg": ["n"]}\n', ':1: "query"'),
        ('{"query": "q", "pos": ["p"], "neg": "n"}\n["x"]\n', ":2: expected a JSON object"),
        ('{"query": "q", "pos": ["p"], "neg": [1]}\n', ':1: "neg"'),
    ],
)
def test_bad_training_file_is_refused_with_its_line(tmp_path: Path, content: str, match: str) -> None:
    f = tmp_path / "train.jsonl"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(TrainingDataError, match=match):
        finetune(f, NOT_A_MODEL, tmp_path / "out", CFG)
    assert not (tmp_path / "out").exists()


def test_group_larger_than_negatives_names_the_row(tmp_path: Path) -> None:
    rows = _rows(8, negs=3)
    rows[5]["neg"] = rows[5]["neg"][:1]
    f = _write(tmp_path / "t.jsonl", rows)
    with pytest.raises(TrainingDataError, match="line 6: 1 negatives, but group size 3 needs 2"):
        finetune(f, NOT_A_MODEL, tmp_path / "out", FinetuneConfig(group_size=3, batch_size=2))
    assert not (tmp_path / "out").exists()


def test_missing_file_and_too_few_examples(tmp_path: Path) -> None:
    with pytest.raises(TrainingDataError, match="does not exist.*bge mine"):
        finetune(tmp_path / "nope.jsonl", NOT_A_MODEL, tmp_path / "out", CFG)
    f = _write(tmp_path / "t.jsonl", _rows(3))
    with pytest.raises(TrainingDataError, match="fewer than one batch"):
        finetune(f, NOT_A_MODEL, tmp_path / "out", FinetuneConfig(batch_size=8))


def test_columns_one_example_per_positive_seeded_with_instruction() -> None:
    rows = [TrainingRow(1, "q1", ("p1", "p2"), ("a", "b", "c", "d")), TrainingRow(2, "q2", ("p3",), ("e", "f"), "P: ")]
    cols = build_training_columns(rows, group_size=3, seed=1, query_instruction="I: ")
    assert cols["anchor"] == ["I: q1", "I: q1", "P: q2"]
    assert cols["positive"] == ["p1", "p2", "p3"]
    assert set(cols) == {"anchor", "positive", "negative_1", "negative_2"}
    assert {cols["negative_1"][2], cols["negative_2"][2]} == {"e", "f"}
    assert cols == build_training_columns(rows, group_size=3, seed=1, query_instruction="I: ")
    one = build_training_columns(rows, group_size=1, seed=1)
    assert set(one) == {"anchor", "positive"}


def _state(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(folder / "model.safetensors"))


def test_output_loads_with_dense_encoder_and_sentence_transformers(tiny_dense_path: Path, tmp_path: Path) -> None:
    f = _write(tmp_path / "t.jsonl", _rows(16))
    out = tmp_path / "out"
    res = finetune(f, tiny_dense_path, out, CFG)
    assert res.steps == 8 and res.examples == 16 and res.final_loss is not None
    assert len(res.log) == 8 and all(np.isfinite(e["loss"]) for e in res.log)
    before, after = _state(tiny_dense_path), _state(out)
    assert any(not np.allclose(before[k], after[k]) for k in before if k in after)  # it trained
    cks = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert cks == ["checkpoint-4", "checkpoint-8"]
    assert all((out / "checkpoints" / c / COMPLETE_MARKER).is_file() for c in cks)

    from sentence_transformers import SentenceTransformer

    from bge_core import DenseEncoder

    texts = ["cancer cells grow", "the cat is on the mat"]
    enc = DenseEncoder(out, device="cpu", dtype="float32")
    assert enc.pooling == "cls" and enc.normalize  # the BGE recipe, recorded in the ST layout
    st = SentenceTransformer(str(out), device="cpu")
    np.testing.assert_allclose(enc.encode(texts), st.encode(texts), atol=1e-5)


def test_same_seed_same_weights(tiny_dense_path: Path, tmp_path: Path) -> None:
    f = _write(tmp_path / "t.jsonl", _rows(8))
    cfg = FinetuneConfig(
        epochs=1,
        batch_size=4,
        group_size=2,
        learning_rate=1e-3,
        seed=3,
        dtype="float32",
        device="cpu",
        show_progress=False,
    )
    finetune(f, tiny_dense_path, tmp_path / "a", cfg)
    finetune(f, tiny_dense_path, tmp_path / "b", cfg)
    a, b = _state(tmp_path / "a"), _state(tmp_path / "b")
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_resume_after_interruption_matches_an_uninterrupted_run(tiny_dense_path: Path, tmp_path: Path) -> None:
    from transformers import TrainerCallback

    f = _write(tmp_path / "t.jsonl", _rows(16))
    finetune(f, tiny_dense_path, tmp_path / "full", CFG)

    class Interrupt(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step == 6:  # mid epoch 2, after epoch 1's checkpoint
                raise KeyboardInterrupt

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        finetune(f, tiny_dense_path, out, CFG, callbacks=[Interrupt()])
    assert last_complete_checkpoint(out / "checkpoints") == out / "checkpoints" / "checkpoint-4"
    assert not (out / "modules.json").exists()
    # A checkpoint killed while saving (no marker) is not resumed from, and is removed.
    partial = out / "checkpoints" / "checkpoint-7"
    shutil.copytree(out / "checkpoints" / "checkpoint-4", partial)
    (partial / COMPLETE_MARKER).unlink()
    (partial / "optimizer.pt").write_bytes(b"truncated")
    with pytest.raises(TrainingDataError, match="not empty; use --resume"):
        finetune(f, tiny_dense_path, out, CFG)
    with pytest.raises(TrainingDataError, match="other inputs.*learning_rate"):
        finetune(f, tiny_dense_path, out, FinetuneConfig(**{**CFG.__dict__, "learning_rate": 1e-4}), resume=True)
    res = finetune(f, tiny_dense_path, out, CFG, resume=True)
    assert res.resumed_from == out / "checkpoints" / "checkpoint-4" and res.steps == 8
    assert not partial.exists()
    a, b = _state(tmp_path / "full"), _state(out)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-6, err_msg=k)
    with pytest.raises(TrainingDataError, match="already holds the finished model"):
        finetune(f, tiny_dense_path, out, CFG, resume=True)


def test_sentence_transformers_layout_keeps_mean_pooling(tiny_dense_path: Path, tmp_path: Path) -> None:
    model = shutil.copytree(tiny_dense_path, tmp_path / "st-model")
    (model / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            ]
        )
    )
    (model / "1_Pooling").mkdir()
    (model / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": 32,
                "pooling_mode_cls_token": False,
                "pooling_mode_mean_tokens": True,
                "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False,
            }
        )
    )
    f = _write(tmp_path / "t.jsonl", _rows(8))
    out = tmp_path / "out"
    finetune(
        f,
        model,
        out,
        FinetuneConfig(
            epochs=1, batch_size=4, group_size=1, dtype="float32", device="cpu", show_progress=False, max_length=16
        ),
    )
    # --max-length caps training only; the saved model keeps its own cap.
    assert json.loads((out / "sentence_bert_config.json").read_text())["max_seq_length"] > 16
    from bge_core import DenseEncoder

    enc = DenseEncoder(out, device="cpu", dtype="float32")
    assert enc.pooling == "mean" and not enc.normalize


def test_default_temperature_follows_the_models_pooling(tiny_dense_path: Path) -> None:
    """BGE (CLS pooling) trains at FlagEmbedding's 0.02; a mean-pooling sentence-transformers
    model at its own scale 20 (0.05): MiniLM at 0.02 lost nDCG@10 on SciFact."""
    from bge_core.finetune import _load_model, default_temperature

    try:
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.models import Normalize, Pooling, Transformer  # type: ignore[no-redef]
    from sentence_transformers import SentenceTransformer

    assert default_temperature(_load_model(str(tiny_dense_path), "cpu")) == 0.02
    tr = Transformer(str(tiny_dense_path))
    dim = (getattr(tr, "get_embedding_dimension", None) or tr.get_word_embedding_dimension)()
    mean = SentenceTransformer(modules=[tr, Pooling(dim, pooling_mode="mean"), Normalize()], device="cpu")
    assert default_temperature(mean) == 0.05
    with pytest.raises(TrainingDataError, match="temperature"):
        FinetuneConfig(temperature=0.0).check()
