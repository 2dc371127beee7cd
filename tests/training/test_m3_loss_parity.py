"""BGE-M3 training loss: equal to FlagEmbedding's ``EncoderOnlyEmbedderM3Model`` (value and
gradients) on a tiny random checkpoint, same weights, same batch, same temperature (fp32)."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from bge_core.finetune_m3 import M3Options, M3TrainingModel, load_m3_training_model  # noqa: E402
from bge_core.testing import TINY_WORDS  # noqa: E402

TEMPERATURE = 0.02
GROUP = 3
#: Parameters whose gradients are compared: embeddings, an attention and an FFN matrix, both heads.
GRAD_PARAMS = (
    "embeddings.word_embeddings.weight",
    "encoder.layer.0.attention.self.query.weight",
    "encoder.layer.1.output.dense.weight",
    "colbert_linear.weight",
    "colbert_linear.bias",
    "sparse_linear.weight",
    "sparse_linear.bias",
)


def _batch(tokenizer: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """4 queries, 3 passages each (positive first); lengths differ so padding is exercised,
    and words repeat inside texts (the sparse max over repeated ids)."""
    w = TINY_WORDS
    queries = [" ".join(w[(i * 7 + k) % 120] for k in range(3 + i)) for i in range(4)]
    passages = []
    for i in range(4):
        for j in range(GROUP):
            n = 5 + (i * GROUP + j) % 6
            words = [w[(i * 7 + k * (j + 1)) % 150] for k in range(n)]
            passages.append(" ".join(words + words[:2]))

    def tok(texts: list[str]) -> dict[str, Any]:
        return dict(tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt"))

    return tok(queries), tok(passages)


def _flag_model(path: Path, *, self_distill: bool = True, unified: bool = True) -> tuple[Any, Any]:
    """FlagEmbedding's M3 training model on the checkpoint's weights (its own loader)."""
    modeling = pytest.importorskip("FlagEmbedding.finetune.embedder.encoder_only.m3.modeling")
    from FlagEmbedding.finetune.embedder.encoder_only.m3.runner import EncoderOnlyEmbedderM3Runner
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    base = EncoderOnlyEmbedderM3Runner.get_model(str(path), colbert_dim=-1)
    model = modeling.EncoderOnlyEmbedderM3Model(
        base,
        tokenizer=tokenizer,
        temperature=TEMPERATURE,
        normalize_embeddings=True,
        sentence_pooling_method="cls",
        unified_finetuning=unified,
        use_self_distill=self_distill,
        self_distill_start_step=0,
    )
    return model.float().train(), tokenizer


def _ours(path: Path, options: M3Options) -> M3TrainingModel:
    model, _ = load_m3_training_model(path, temperature=TEMPERATURE, options=options)
    return model.train()


def _grads(model: Any) -> dict[str, Any]:
    named = {}
    for name, p in model.named_parameters():
        key = name[len("model.") :] if name.startswith("model.") else name
        named[key] = p.grad
    return {k: named[k].detach().clone() for k in GRAD_PARAMS if named.get(k) is not None}


def _run_flag(flag: Any, q: dict[str, Any], p: dict[str, Any], step: int) -> tuple[float, dict[str, Any]]:
    flag.zero_grad()
    flag.step = step
    loss = flag(queries=q, passages=p).loss
    loss.backward()
    return float(loss.detach()), _grads(flag)


def _run_ours(ours: M3TrainingModel, q: dict[str, Any], p: dict[str, Any], step: int) -> tuple[float, dict[str, Any]]:
    ours.zero_grad()
    ours.step = step
    loss = ours.compute_loss(q, p).loss
    loss.backward()  # type: ignore[no-untyped-call]
    return float(loss.detach()), _grads(ours)


@pytest.fixture(scope="module")
def m3_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bge_core.testing import build_tiny_m3

    return build_tiny_m3(tmp_path_factory.mktemp("m3parity") / "tiny-m3", max_positions=130, seed=11)


@pytest.mark.parametrize(
    ("options", "flag_kwargs", "step"),
    [
        (M3Options(), {}, 1),  # unified + self-distillation (FlagEmbedding's BGE-M3 recipe)
        (M3Options(), {}, 0),  # step 0: distillation not started yet (start step 0, strict >)
        (M3Options(self_distill=False), {"self_distill": False}, 1),
        (M3Options(unified=False, self_distill=False), {"unified": False, "self_distill": False}, 1),
    ],
    ids=["unified+distill", "before-distill-start", "unified", "dense-only"],
)
def test_loss_and_gradients_equal_flagembedding(
    m3_ckpt: Path, options: M3Options, flag_kwargs: dict[str, bool], step: int
) -> None:
    torch.manual_seed(0)
    flag, tokenizer = _flag_model(m3_ckpt, **flag_kwargs)
    ours = _ours(m3_ckpt, options)
    q, p = _batch(tokenizer)
    assert int(p["attention_mask"].sum(1).min()) < p["attention_mask"].shape[1]  # padding is exercised
    flag_loss, flag_grads = _run_flag(flag, q, p, step)
    our_loss, our_grads = _run_ours(ours, q, p, step)
    assert our_loss == pytest.approx(flag_loss, rel=1e-5, abs=1e-6)
    expected = GRAD_PARAMS if options.unified else GRAD_PARAMS[:3]
    assert set(our_grads) == set(expected) == set(flag_grads)
    for name in expected:
        torch.testing.assert_close(our_grads[name], flag_grads[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize(
    "changed",
    [
        M3Options(self_distill=False),  # the self-distillation term dropped
        M3Options(loss_weights=(1.0, 0.2, 1.0)),  # a loss weight changed
        M3Options(ensemble_weights=(1.0, 0.3, 0.5)),  # an ensemble weight changed
        M3Options(self_distill_start_step=5),  # distillation started late
    ],
    ids=["no-distill", "sparse-loss-weight", "colbert-ensemble-weight", "late-distill"],
)
def test_a_changed_loss_is_caught(m3_ckpt: Path, changed: M3Options) -> None:
    """The parity check has teeth: each deviation from FlagEmbedding's loss changes the value."""
    flag, tokenizer = _flag_model(m3_ckpt)
    q, p = _batch(tokenizer)
    flag_loss, _ = _run_flag(flag, q, p, 1)
    ours = _ours(m3_ckpt, changed)
    our_loss, _ = _run_ours(ours, q, p, 1)
    assert abs(our_loss - flag_loss) > 1e-4 * abs(flag_loss)


def test_sparse_scores_equal_a_full_vocabulary_scatter(m3_ckpt: Path) -> None:
    """The compact max over the batch's ids equals the full-vocabulary one, also with an id
    repeated in a text (the max, not the sum, counts)."""
    ours = _ours(m3_ckpt, M3Options())
    ids_q = torch.tensor([[0, 5, 7, 5, 2, 1], [0, 9, 2, 1, 1, 1]])
    ids_p = torch.tensor([[0, 7, 5, 9, 2], [0, 11, 11, 2, 1]])
    gen = torch.Generator().manual_seed(3)
    wq, wp = torch.rand(ids_q.shape, generator=gen), torch.rand(ids_p.shape, generator=gen)

    def full(w: Any, ids: Any) -> Any:
        out = torch.zeros(ids.shape[0], 64)
        for r in range(ids.shape[0]):
            for c in range(ids.shape[1]):
                out[r, ids[r, c]] = max(out[r, ids[r, c]], w[r, c])
        return out

    expected = full(wq, ids_q) @ full(wp, ids_p).T
    torch.testing.assert_close(ours.sparse_scores(wq, ids_q, wp, ids_p), expected)


def test_options_that_cannot_train_are_named() -> None:
    assert any("self-distillation needs" in m for m in M3Options(unified=False).problems())
    assert any(
        "nothing would train" in m for m in M3Options(unified=False, self_distill=False, fix_encoder=True).problems()
    )
    assert any("loss_weights" in m for m in M3Options(loss_weights=(1.0, -0.1, 1.0)).problems())
    assert any("ensemble_weights" in m for m in replace(M3Options(), ensemble_weights=(1.0, 0.3)).problems())  # type: ignore[arg-type]
    assert M3Options().problems() == []
    assert copy.deepcopy(M3Options()) == M3Options()
