"""The light encoder (bge_core.light_model) and the tokenizer-facts cache: same outputs as the
transformers path, bit for bit, and a `bge search` that imports neither transformers nor qdrant-client."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from bge_core.light_model import light_config, load_light_model  # noqa: E402
from bge_core.tokenizer_cache import TokenizerFacts, read_tokenizer_facts  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_bert_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT (the v1.5 / MiniLM architecture) saved by transformers (no tokenizer)."""
    torch.manual_seed(3)
    config = transformers.BertConfig(
        vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
    )
    out = tmp_path_factory.mktemp("ckpt") / "tiny-bert"
    transformers.BertModel(config, add_pooling_layer=True).save_pretrained(str(out))
    return out


def _reference(path: Path) -> Any:
    return transformers.AutoModel.from_pretrained(str(path), attn_implementation="sdpa", dtype=torch.float32).eval()


def _inputs(vocab: int, pad: int, *, padded: bool) -> tuple[Any, Any]:
    gen = torch.Generator().manual_seed(7)
    ids = torch.randint(5, vocab, (3, 19), generator=gen)
    mask = torch.ones_like(ids)
    if padded:
        mask[1, 11:] = 0
        mask[2, 4:] = 0
        ids[mask == 0] = pad
    return ids, mask


@pytest.mark.parametrize("which", ["bert", "xlm-roberta", "minilm"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_light_encoder_is_bit_identical_to_transformers(
    which: str, dtype: str, tiny_bert_path: Path, tiny_m3_path: Path, request: pytest.FixtureRequest
) -> None:
    path = {"bert": tiny_bert_path, "xlm-roberta": tiny_m3_path}.get(which) or request.getfixturevalue("minilm_path")
    config = light_config(path)
    assert config is not None and config.model_type == ("xlm-roberta" if which == "xlm-roberta" else "bert")
    dt = getattr(torch, dtype)
    light = load_light_model(path, config)
    assert light is not None
    light = light.to(dtype=dt)
    ref = _reference(path).to(dtype=dt)
    for padded in (False, True):
        ids, mask = _inputs(config.vocab_size, config.pad_token_id, padded=padded)
        with torch.inference_mode():
            got = light(input_ids=ids, attention_mask=mask, return_dict=True).last_hidden_state
            want = ref(input_ids=ids, attention_mask=mask, return_dict=True).last_hidden_state
        assert got.dtype == want.dtype and torch.equal(got, want), (which, dtype, padded)


def test_unsupported_checkpoints_go_to_transformers(
    tiny_bert_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def variant(name: str, **changes: Any) -> Path:
        out = tmp_path / name
        shutil.copytree(tiny_bert_path, out)
        cfg = json.loads((out / "config.json").read_text())
        cfg.update(changes)
        (out / "config.json").write_text(json.dumps(cfg))
        return out

    assert light_config(tiny_bert_path) is not None
    assert light_config(variant("decoder", is_decoder=True)) is None
    assert light_config(variant("relative", position_embedding_type="relative_key")) is None
    assert light_config(variant("act", hidden_act="gelu_new")) is None
    assert light_config(variant("arch", model_type="deberta-v2")) is None
    no_weights = variant("bin")
    (no_weights / "model.safetensors").unlink()
    assert light_config(no_weights) is None
    # A weight missing from the file: the loader declines (transformers then loads and reports it).
    from safetensors.torch import load_file, save_file

    partial = variant("partial")
    state = load_file(str(partial / "model.safetensors"))
    del state["encoder.layer.1.output.dense.weight"]
    save_file(state, str(partial / "model.safetensors"))
    cfg = light_config(partial)
    assert cfg is not None and load_light_model(partial, cfg) is None
    monkeypatch.setenv("BGE_LIGHT_MODEL", "0")
    assert light_config(tiny_bert_path) is None


def test_encoders_give_the_same_vectors_on_both_paths(tiny_m3_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bge_core import BGEM3Encoder

    texts = ["the cat sat", "a much longer sentence about the heart and sleep and coffee", "tea"]
    light = BGEM3Encoder(tiny_m3_path, device="cpu", dtype="float32")
    assert type(light.model).__name__ == "LightEncoderModel"
    monkeypatch.setenv("BGE_LIGHT_MODEL", "0")
    heavy = BGEM3Encoder(tiny_m3_path, device="cpu", dtype="float32")
    assert type(heavy.model).__name__ == "XLMRobertaModel"
    a = light.encode(texts, dense=True, sparse=True, colbert=True)
    b = heavy.encode(texts, dense=True, sparse=True, colbert=True)
    assert a.dense is not None and b.dense is not None and np.array_equal(a.dense, b.dense)
    assert a.sparse == b.sparse
    assert all(np.array_equal(x, y) for x, y in zip(a.colbert, b.colbert))


def test_tokenizer_facts_cache_round_trip_and_invalidation(
    tiny_m3_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bge_core.encoder_base import TransformerRunner

    monkeypatch.setenv("BGE_CACHE_DIR", str(tmp_path / "cache"))
    ckpt = tmp_path / "m3"
    shutil.copytree(tiny_m3_path, ckpt)
    assert read_tokenizer_facts(ckpt) is None

    def runner() -> TransformerRunner:
        return TransformerRunner(
            ckpt,
            auto_class="AutoModel",
            device="cpu",
            dtype="float32",
            max_length=None,
            batch_size=None,
            max_batch_tokens=None,
        )

    first = runner()  # a miss: loads AutoTokenizer and stores the facts
    facts = read_tokenizer_facts(ckpt)
    assert facts == TokenizerFacts.of(first.hf_tokenizer)
    second = runner()  # a hit: the same tokenisation without a transformers tokenizer
    assert second._hf_tokenizer is None
    texts = ["The cat sat on the mat", "tea"]
    assert second.tokenize(texts) == first.tokenize(texts)
    assert second.special_token_ids() == first.special_token_ids()
    assert second.num_special_tokens(pair=True) == first.hf_tokenizer.num_special_tokens_to_add(pair=True)
    # An edited tokenizer file is a different key: the cache misses.
    cfg = ckpt / "tokenizer_config.json"
    cfg.write_text(cfg.read_text() + "\n")
    assert read_tokenizer_facts(ckpt) is None
    monkeypatch.setenv("BGE_CACHE_DIR", "off")
    assert read_tokenizer_facts(ckpt) is None


_SEARCH_MODULES = r"""
import sys
from bge_core.cli.main import main
code = main(["search", "the heart", "--store", sys.argv[1], "-k", "2", "--json"])
heavy = ("transformers", "qdrant_client", "scipy", "torch._dynamo", "sentence_transformers", "FlagEmbedding")
print(sorted(m for m in heavy if m in sys.modules), code)
"""


def test_edge_search_imports_neither_transformers_nor_qdrant_client(tiny_m3_path: Path, tmp_path: Path) -> None:
    """The cold-start path stays light: checked by what gets imported (not by a wall-clock limit)."""
    pytest.importorskip("qdrant_edge")
    import os

    env = {**os.environ, "BGE_CACHE_DIR": str(tmp_path / "cache")}
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.txt").write_text("the heart and sleep", encoding="utf-8")
    (notes / "b.txt").write_text("coffee and tea", encoding="utf-8")
    store = f"edge:{tmp_path / 'idx'}"
    subprocess.run(
        [sys.executable, "-m", "bge_core.cli", "index", str(notes), "--store", store, "--model", str(tiny_m3_path)],
        env=env,
        check=True,
        capture_output=True,
        cwd=REPO,
    )
    out = subprocess.run(
        [sys.executable, "-c", _SEARCH_MODULES, store], env=env, check=True, capture_output=True, text=True, cwd=REPO
    )
    assert out.stdout.strip().splitlines()[-1] == "[] 0", out.stdout + out.stderr
    assert '"rank": 1' in out.stdout


def test_importing_the_edge_store_does_not_import_qdrant_client() -> None:
    code = (
        "import sys; import bge_qdrant.edge_uri, bge_qdrant.filters, bge_qdrant.layout, bge_qdrant.points; "
        "print('qdrant_client' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stdout + out.stderr
