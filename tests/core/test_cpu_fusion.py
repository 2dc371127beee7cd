"""The light encoder's CPU bf16 paths (``BGE_CPU_FUSION``): ``exact`` (default) is bit-identical to
plain ``nn.Linear`` layers and transformers, and really runs oneDNN's products; ``fused`` stays
within bf16 rounding; float32, autograd and bad settings behave."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from bge_core import light_model  # noqa: E402
from bge_core.light_model import cpu_fusion_setting, light_config, load_light_model  # noqa: E402

pytestmark = pytest.mark.skipif(not light_model._onednn_bf16(), reason="oneDNN bf16 products unavailable here")


@pytest.fixture(scope="module")
def bert384(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random BERT of MiniLM's width (hidden 384, 12 heads of 32, FFN 1536), two layers."""
    torch.manual_seed(5)
    config = transformers.BertConfig(
        vocab_size=300, hidden_size=384, num_hidden_layers=2, num_attention_heads=12, intermediate_size=1536
    )
    out = tmp_path_factory.mktemp("ckpt") / "bert384"
    transformers.BertModel(config, add_pooling_layer=False).save_pretrained(str(out))
    return out


def _inputs(padded: bool) -> tuple[Any, Any]:
    gen = torch.Generator().manual_seed(11)
    ids = torch.randint(5, 300, (4, 37), generator=gen)
    mask = torch.ones_like(ids)
    if padded:
        mask[1, 20:] = 0
        mask[3, 3:] = 0
        ids[mask == 0] = 0
    return ids, mask


def _run(net: Any, fusion: str, padded: bool) -> tuple[Any, set[str]]:
    net.cpu_fusion = fusion
    ids, mask = _inputs(padded)
    with torch.inference_mode(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        out = net(input_ids=ids, attention_mask=mask).last_hidden_state
    return out, {e.key for e in prof.key_averages()}


@pytest.fixture(scope="module")
def net(bert384: Path) -> Any:
    config = light_config(bert384)
    assert config is not None
    model = load_light_model(bert384, config)
    assert model is not None
    return model.to(torch.bfloat16)


@pytest.mark.parametrize("padded", [False, True])
def test_exact_is_bit_identical_and_runs_onednn(net: Any, bert384: Path, padded: bool) -> None:
    plain, plain_ops = _run(net, "off", padded)
    exact, exact_ops = _run(net, "exact", padded)
    assert "mkldnn::_linear_pointwise" in exact_ops and "mkldnn::_linear_pointwise" not in plain_ops
    assert "aten::addmm" in plain_ops and "aten::addmm" not in exact_ops
    assert torch.equal(exact, plain)
    ref = transformers.AutoModel.from_pretrained(str(bert384), attn_implementation="sdpa", dtype=torch.float32)
    ref = ref.eval().to(torch.bfloat16)
    ids, mask = _inputs(padded)
    with torch.inference_mode():
        want = ref(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.equal(exact, want)


def test_fused_folds_gelu_and_adds_within_bf16_rounding(net: Any) -> None:
    plain, _ = _run(net, "off", True)
    fused, ops = _run(net, "fused", True)
    assert "aten::gelu" not in ops and "aten::addmm" not in ops
    assert not torch.equal(fused, plain)  # really another path
    cos = torch.nn.functional.cosine_similarity(fused.float(), plain.float(), dim=-1)
    assert float(cos.min()) > 0.999


def test_float32_and_autograd_run_plain_ops(net: Any, bert384: Path) -> None:
    config = light_config(bert384)
    assert config is not None
    fp32 = load_light_model(bert384, config)
    assert fp32 is not None and fp32.cpu_fusion == "exact"
    ids, mask = _inputs(True)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        with torch.inference_mode():
            fp32(input_ids=ids, attention_mask=mask)
        net.cpu_fusion = "fused"
        out = net(input_ids=ids, attention_mask=mask).last_hidden_state  # grad enabled: plain ops
    assert "mkldnn::_linear_pointwise" not in {e.key for e in prof.key_averages()}
    out.float().sum().backward()
    assert net.encoder.layer[0].intermediate.dense.weight.grad is not None
    net.zero_grad()


def test_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch, bert384: Path) -> None:
    assert cpu_fusion_setting() == "exact"
    monkeypatch.setenv("BGE_CPU_FUSION", " Fused ")
    assert cpu_fusion_setting() == "fused"
    config = light_config(bert384)
    assert config is not None
    model = load_light_model(bert384, config)
    assert model is not None and model.cpu_fusion == "fused"
    monkeypatch.setenv("BGE_CPU_FUSION", "fast")
    with pytest.raises(ValueError, match="BGE_CPU_FUSION must be one of exact, fused, off"):
        cpu_fusion_setting()


def test_fused_relu_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(6)
    config = transformers.BertConfig(
        vocab_size=300,
        hidden_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=128,
        hidden_act="relu",
    )
    path = tmp_path / "relu"
    transformers.BertModel(config, add_pooling_layer=False).save_pretrained(str(path))
    cfg = light_config(path)
    assert cfg is not None and cfg.hidden_act == "relu"
    model = load_light_model(path, cfg)
    assert model is not None
    model = model.to(torch.bfloat16)
    plain, _ = _run(model, "off", True)
    exact, _ = _run(model, "exact", True)
    fused, ops = _run(model, "fused", True)
    assert torch.equal(exact, plain) and "aten::relu" not in ops
    cos = torch.nn.functional.cosine_similarity(fused.float(), plain.float(), dim=-1)
    assert float(cos.min()) > 0.999
