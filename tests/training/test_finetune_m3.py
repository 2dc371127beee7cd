"""BGE-M3 fine-tuning end to end: the M3 loss is picked for an M3 checkpoint, the output is a
BGE-M3 folder (BGEM3Encoder and FlagEmbedding load it), checkpoints and resume, bad input."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("datasets")
pytest.importorskip("accelerate")

from bge_core.finetune import (  # noqa: E402
    COMPLETE_MARKER,
    FinetuneConfig,
    M3Options,
    TrainingDataError,
    finetune,
    last_complete_checkpoint,
)
from bge_core.testing import TINY_WORDS  # noqa: E402

TEXTS = ["cancer cells grow in the liver", "the cat is on the mat", "gene protein cell therapy"]
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


@pytest.fixture(scope="module")
def m3_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bge_core.testing import build_tiny_m3

    return build_tiny_m3(tmp_path_factory.mktemp("m3ft") / "tiny-m3", max_positions=130, seed=2)


def _batch_loss(folder: Path, rows: list[dict[str, Any]]) -> float:
    """The M3 loss of all rows in one batch (positive + first negative), no dropout."""
    from bge_core.finetune_m3 import load_m3_training_model

    model, tok = load_m3_training_model(folder, temperature=0.02)
    model.eval()
    q = dict(tok([r["query"] for r in rows], padding=True, return_tensors="pt"))
    p = dict(tok([t for r in rows for t in (r["pos"][0], r["neg"][0])], padding=True, return_tensors="pt"))
    model.step = 1
    with torch.no_grad():
        return float(model.compute_loss(q, p).loss)


def _heads(folder: Path) -> dict[str, Any]:
    return {
        name: torch.load(folder / f"{name}.pt", map_location="cpu", weights_only=True)
        for name in ("colbert_linear", "sparse_linear")
    }


def test_m3_checkpoint_trains_with_the_m3_loss_and_saves_an_m3_folder(m3_path: Path, tmp_path: Path) -> None:
    from bge_core import BGEM3Encoder

    rows = _rows(16)
    f = _write(tmp_path / "t.jsonl", rows)
    out = tmp_path / "out"
    res = finetune(f, m3_path, out, CFG)
    assert res.steps == 8 and res.examples == 16 and len(res.log) == 8
    assert all(np.isfinite(e["loss"]) for e in res.log)
    # Each logged step carries the terms of the loss (distillation from the second step on).
    assert {"loss_dense", "loss_sparse", "loss_colbert", "loss_ensemble"} <= set(res.log[0])
    assert "loss_distill" in res.log[1] and "loss_distill" not in res.log[0]
    assert json.loads((out / "bge_finetune.json").read_text())["kind"] == "m3"
    # It learned: the loss of the training batch went down.
    assert _batch_loss(out, rows) < 0.8 * _batch_loss(m3_path, rows)
    # Heads saved as FlagEmbedding writes them (plain state dicts), and trained.
    before, after = _heads(m3_path), _heads(out)
    for name in before:
        assert set(after[name]) == {"weight", "bias"}
        assert not torch.allclose(before[name]["weight"], after[name]["weight"]), name
    cks = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert cks == ["checkpoint-4", "checkpoint-8"]
    assert all((out / "checkpoints" / c / COMPLETE_MARKER).is_file() for c in cks)
    # The output and each checkpoint load with BGEM3Encoder; the vectors moved.
    old = BGEM3Encoder(m3_path, device="cpu", dtype="float32").encode(TEXTS, colbert=True)
    new = BGEM3Encoder(out, device="cpu", dtype="float32").encode(TEXTS, colbert=True)
    assert old.dense is not None and new.dense is not None
    assert np.abs(old.dense - new.dense).max() > 1e-3
    assert any(a.to_dict() != b.to_dict() for a, b in zip(old.sparse, new.sparse))
    assert max(float(np.abs(a - b).max()) for a, b in zip(old.colbert, new.colbert)) > 1e-3
    BGEM3Encoder(out / "checkpoints" / "checkpoint-4", device="cpu", dtype="float32").encode(TEXTS)


def test_output_loads_with_flagembedding(m3_path: Path, tmp_path: Path) -> None:
    FlagEmbedding = pytest.importorskip("FlagEmbedding")
    from bge_core import BGEM3Encoder

    f = _write(tmp_path / "t.jsonl", _rows(8))
    out = tmp_path / "out"
    finetune(f, m3_path, out, replace(CFG, epochs=1))
    ours = BGEM3Encoder(out, device="cpu", dtype="float32").encode(TEXTS, colbert=True)
    ref = FlagEmbedding.BGEM3FlagModel(str(out), use_fp16=False, devices="cpu").encode(
        TEXTS, return_dense=True, return_sparse=True, return_colbert_vecs=True
    )
    assert ours.dense is not None
    assert np.abs(ours.dense - ref["dense_vecs"]).max() <= 1e-5
    for mine, theirs in zip(ours.sparse, ref["lexical_weights"]):
        assert mine.to_dict().keys() == {int(k) for k in theirs}
    for mine_c, theirs_c in zip(ours.colbert, ref["colbert_vecs"]):
        assert np.abs(mine_c - theirs_c).max() <= 1e-5


def test_dense_only_trains_the_transformer_and_keeps_the_heads(m3_path: Path, tmp_path: Path) -> None:
    f = _write(tmp_path / "t.jsonl", _rows(8))
    out = tmp_path / "out"
    opts = M3Options(unified=False, self_distill=False)
    finetune(f, m3_path, out, replace(CFG, epochs=1, m3=opts))
    before, after = _heads(m3_path), _heads(out)
    for name in before:
        for key in before[name]:
            assert torch.equal(before[name][key], after[name][key])
    from safetensors.numpy import load_file

    a, b = load_file(str(m3_path / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert any(not np.allclose(a[k], b[k]) for k in a if k in b)


def test_fix_encoder_trains_only_the_heads(m3_path: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    f = _write(tmp_path / "t.jsonl", _rows(8))
    out = tmp_path / "out"
    finetune(f, m3_path, out, replace(CFG, epochs=1, m3=M3Options(fix_encoder=True)))
    a, b = load_file(str(m3_path / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert all(np.array_equal(a[k], b[k]) for k in a if k in b)
    assert not torch.equal(_heads(m3_path)["colbert_linear"]["weight"], _heads(out)["colbert_linear"]["weight"])


def test_resume_after_interruption_matches_an_uninterrupted_run(m3_path: Path, tmp_path: Path) -> None:
    from transformers import TrainerCallback

    f = _write(tmp_path / "t.jsonl", _rows(16))
    finetune(f, m3_path, tmp_path / "full", CFG)

    class Interrupt(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step == 6:  # mid epoch 2, after epoch 1's checkpoint
                raise KeyboardInterrupt

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        finetune(f, m3_path, out, CFG, callbacks=[Interrupt()])
    assert last_complete_checkpoint(out / "checkpoints") == out / "checkpoints" / "checkpoint-4"
    assert not (out / "config.json").exists() and not (out / "colbert_linear.pt").exists()
    with pytest.raises(TrainingDataError, match="other inputs.*m3"):
        finetune(f, m3_path, out, replace(CFG, m3=M3Options(self_distill=False)), resume=True)
    res = finetune(f, m3_path, out, CFG, resume=True)
    assert res.resumed_from == out / "checkpoints" / "checkpoint-4" and res.steps == 8
    from safetensors.numpy import load_file

    a, b = load_file(str(tmp_path / "full" / "model.safetensors")), load_file(str(out / "model.safetensors"))
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-6, err_msg=k)
    ha, hb = _heads(tmp_path / "full"), _heads(out)
    for name in ha:
        torch.testing.assert_close(ha[name]["weight"], hb[name]["weight"], atol=1e-6, rtol=0)
    with pytest.raises(TrainingDataError, match="already holds the finished model"):
        finetune(f, m3_path, out, CFG, resume=True)


# -- bad input the M3 path adds: refused before anything is written -------------------------------
@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"m3": M3Options(unified=False)}, "self-distillation needs the unified loss"),
        ({"m3": M3Options(unified=False, self_distill=False, fix_encoder=True)}, "nothing would train"),
        ({"m3": M3Options(loss_weights=(1.0, -0.1, 1.0))}, "loss_weights must be 3 finite numbers"),
        ({"query_instruction": "Represent: "}, "uses no query instruction; drop --query-instruction"),
    ],
)
def test_bad_m3_options_are_refused(m3_path: Path, tmp_path: Path, change: dict[str, Any], match: str) -> None:
    f = _write(tmp_path / "t.jsonl", _rows(8))
    with pytest.raises(TrainingDataError, match=match):
        finetune(f, m3_path, tmp_path / "out", replace(CFG, **change))
    assert not (tmp_path / "out").exists()


def test_prompt_rows_are_refused_for_m3(m3_path: Path, tmp_path: Path) -> None:
    rows = _rows(8)
    rows[3]["prompt"] = "Represent this sentence: "
    f = _write(tmp_path / "t.jsonl", rows)
    with pytest.raises(TrainingDataError, match='line 4: a "prompt".*without --prompt'):
        finetune(f, m3_path, tmp_path / "out", CFG)
    assert not (tmp_path / "out").exists()


def test_m3_options_on_a_dense_model_and_a_reranker_are_refused(tmp_path: Path, tiny_dense_path: Path) -> None:
    from bge_core.testing import build_tiny_reranker

    f = _write(tmp_path / "t.jsonl", _rows(8))
    with pytest.raises(TrainingDataError, match="dense model: the BGE-M3 loss options"):
        finetune(f, tiny_dense_path, tmp_path / "out", replace(CFG, m3=M3Options(self_distill=False)))
    reranker = build_tiny_reranker(tmp_path / "rr")
    with pytest.raises(TrainingDataError, match="reranker model.*trains embedding models"):
        finetune(f, reranker, tmp_path / "out", CFG)
    assert not (tmp_path / "out").exists()


def test_incomplete_m3_checkpoint_is_refused(m3_path: Path, tmp_path: Path) -> None:
    from bge_core.kinds import ModelKindError

    broken = shutil.copytree(m3_path, tmp_path / "broken")
    (broken / "sparse_linear.pt").unlink()
    f = _write(tmp_path / "t.jsonl", _rows(8))
    with pytest.raises(ModelKindError, match="no sparse_linear"):
        finetune(f, broken, tmp_path / "out", CFG)
    assert not (tmp_path / "out").exists()


def test_cli_picks_the_m3_loss_and_takes_its_options(
    bge: Any, m3_path: Path, tiny_dense_path: Path, tmp_path: Path
) -> None:
    f = _write(tmp_path / "t.jsonl", _rows(8))
    base = ["finetune", f, "--batch-size", "4", "--dtype", "float32", "--device", "cpu", "--no-progress"]
    out = tmp_path / "ft"
    code, stdout, err = bge(
        *base, "--model", m3_path, "--out", out, "--gradient-checkpointing", "--loss-weights", "1,0.2,1"
    )
    assert code == 0, err
    assert json.loads(stdout)["steps"] == 2
    recorded = json.loads((out / "bge_finetune.json").read_text())
    assert recorded["kind"] == "m3" and recorded["config"]["m3"]["loss_weights"] == [1.0, 0.2, 1.0]
    assert recorded["config"]["m3"]["unified"] and recorded["config"]["m3"]["self_distill"]
    assert (out / "colbert_linear.pt").is_file() and (out / "sparse_linear.pt").is_file()
    code, _, err = bge(*base, "--model", m3_path, "--out", tmp_path / "d", "--dense-only")
    assert code == 0, err
    assert not json.loads((tmp_path / "d" / "bge_finetune.json").read_text())["config"]["m3"]["unified"]
    code, _, err = bge(*base, "--model", tiny_dense_path, "--out", tmp_path / "x", "--dense-only")
    assert code == 1 and "apply to BGE-M3 checkpoints only" in err
    code, _, err = bge(*base, "--model", m3_path, "--out", tmp_path / "y", "--loss-weights", "1,0.1")
    assert code == 2 and "DENSE,SPARSE,COLBERT" in err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
