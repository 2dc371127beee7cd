"""BGEEmbeddings: LangChain's standard suites, query instructions, laziness, async, errors."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_bge import BGEEmbeddings
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

EN = "Represent this sentence for searching relevant passages: "


class _TinyM3Params:
    path: str = ""

    @pytest.fixture(autouse=True)
    def _tiny_checkpoint(self, tiny_m3_path: Path) -> None:
        type(self).path = str(tiny_m3_path)

    @property
    def embeddings_class(self) -> type[BGEEmbeddings]:
        return BGEEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": self.path, "device": "cpu", "dtype": "float32"}


class TestBGEEmbeddingsUnit(_TinyM3Params, EmbeddingsUnitTests):
    """langchain-tests unit suite on a tiny M3 checkpoint."""


class TestBGEEmbeddingsIntegration(_TinyM3Params, EmbeddingsIntegrationTests):
    """langchain-tests integration suite on a tiny M3 checkpoint."""


class TestBGEEmbeddingsDenseIntegration(EmbeddingsIntegrationTests):
    """The same suite on a dense-only (v1.5-style) checkpoint."""

    path: str = ""

    @pytest.fixture(autouse=True)
    def _tiny_checkpoint(self, tiny_dense_path: Path) -> None:
        type(self).path = str(tiny_dense_path)

    @property
    def embeddings_class(self) -> type[BGEEmbeddings]:
        return BGEEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": self.path, "device": "cpu", "dtype": "float32", "query_instruction": EN}


def test_m3_query_has_no_instruction(m3: Any) -> None:
    emb = BGEEmbeddings(encoder=m3)
    q = "cancer cells in the liver"
    expected = m3.encode([q], sparse=False).dense[0]
    np.testing.assert_allclose(emb.embed_query(q), expected, rtol=1e-5, atol=1e-6)
    with_instruction = m3.encode([EN + q], sparse=False).dense[0]
    assert not np.allclose(emb.embed_query(q), with_instruction, atol=1e-3)
    np.testing.assert_allclose(emb.embed_documents([q])[0], expected, rtol=1e-5, atol=1e-6)


def test_m3_folder_loads_as_m3(tiny_m3_path: Path) -> None:
    emb = BGEEmbeddings(tiny_m3_path, device="cpu", dtype="float32")
    assert type(emb.encoder).__name__ == "BGEM3Encoder"


def test_v15_instruction_on_queries_only(tiny_dense_path: Path) -> None:
    from bge_core import DenseEncoder

    enc = DenseEncoder(tiny_dense_path, device="cpu", dtype="float32", query_instruction=EN)
    emb = BGEEmbeddings(encoder=enc)
    q = "heart disease risk"
    np.testing.assert_allclose(emb.embed_query(q), enc.encode([EN + q])[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(emb.embed_query(q), enc.encode([q])[0], atol=1e-3)
    np.testing.assert_allclose(emb.embed_documents([q])[0], enc.encode([q])[0], rtol=1e-5, atol=1e-6)


def test_dense_folder_by_name_uses_given_instruction(tiny_dense_path: Path) -> None:
    emb = BGEEmbeddings(tiny_dense_path, device="cpu", dtype="float32", query_instruction=EN)
    assert type(emb.encoder).__name__ == "DenseEncoder"
    assert emb.encoder.query_instruction == EN  # type: ignore[attr-defined]


def test_known_v15_name_gets_english_instruction() -> None:
    from langchain_bge.lazy_models import resolve_kind

    from bge_core.models import model_info

    assert resolve_kind("BAAI/bge-small-en-v1.5", "auto") == "dense"
    assert resolve_kind("BAAI/bge-m3", "auto") == "m3"
    info = model_info("BAAI/bge-small-en-v1.5")
    assert info is not None and info.query_instruction == EN


def test_instruction_with_m3_is_refused(tiny_m3_path: Path) -> None:
    emb = BGEEmbeddings(tiny_m3_path, query_instruction=EN, device="cpu", dtype="float32")
    with pytest.raises(ValueError, match="no query instruction"):
        emb.embed_query("cat")


def test_constructor_loads_nothing() -> None:
    emb = BGEEmbeddings("no/such-model-anywhere")
    assert not emb.encoder_holder.loaded
    assert emb.model_name == "no/such-model-anywhere"


def test_import_does_not_import_torch() -> None:
    code = (
        "import sys, langchain_bge\n"
        "from langchain_bge import BGEEmbeddings, BGERerank, BGEColBERTRerank, BGEHybridRetriever, BGEM3SparseEmbeddings\n"
        "BGEEmbeddings('BAAI/bge-m3'); BGERerank(); BGEColBERTRerank()\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'torch imported'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_bad_input_errors(m3: Any) -> None:
    emb = BGEEmbeddings(encoder=m3)
    with pytest.raises(TypeError, match="single str"):
        emb.embed_documents("cat")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        emb.embed_documents(["cat", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="query must be a str"):
        emb.embed_query(["cat"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="either model or encoder"):
        BGEEmbeddings("BAAI/bge-m3", encoder=m3)
    with pytest.raises(TypeError, match="encoder must be"):
        BGEEmbeddings(encoder=object())
    assert emb.embed_documents([]) == []


def test_empty_text_embeds(m3: Any) -> None:
    emb = BGEEmbeddings(encoder=m3)
    vecs = emb.embed_documents(["", "zzz qqq", "the cat"])
    assert len(vecs) == 3 and all(len(v) == m3.dim for v in vecs)


def test_wrappers_share_one_lazy_model(tiny_m3_path: Path) -> None:
    from langchain_bge import BGEColBERTRerank, BGEM3SparseEmbeddings

    dense = BGEEmbeddings(tiny_m3_path, device="cpu", dtype="float32")
    sparse = BGEM3SparseEmbeddings(encoder=dense)
    colbert = BGEColBERTRerank(encoder=dense)
    assert not dense.encoder_holder.loaded
    sparse.embed_query("cat")
    assert dense.encoder is sparse.encoder is colbert.encoder_holder.get()


async def test_async_matches_sync_and_runs_off_loop(m3: Any) -> None:
    emb = BGEEmbeddings(encoder=m3)
    texts = ["the cat", "blood cells"]
    assert await emb.aembed_documents(texts) == emb.embed_documents(texts)
    assert await emb.aembed_query("gene protein") == emb.embed_query("gene protein")

    class Blocking:
        """An encoder that waits until the event loop has run a coroutine while it encodes:
        it times out (and the test fails) if the call blocked the loop."""

        model_name = "blocking"
        dim = 4
        supports_sparse = False

        def __init__(self) -> None:
            self.thread: int | None = None
            self.started = threading.Event()
            self.release = threading.Event()

        def encode_outputs(self, texts: Any, **kw: Any) -> Any:
            from bge_core.types import M3Output

            self.thread = threading.get_ident()
            self.started.set()
            if not self.release.wait(timeout=10):
                raise TimeoutError("the event loop did not run while the encoder worked")
            return M3Output(dense=np.ones((len(texts), 4), np.float32))

    blocking = Blocking()
    emb2 = BGEEmbeddings(encoder=blocking)

    async def release_when_started() -> None:
        while not blocking.started.is_set():
            await asyncio.sleep(0.005)
        blocking.release.set()

    result, _ = await asyncio.gather(emb2.aembed_documents(["a", "b"]), release_when_started())
    assert result == [[1.0] * 4, [1.0] * 4]
    assert blocking.thread != threading.get_ident()
