"""BGEM3MilvusSparseEmbeddings with the real ``langchain_milvus.Milvus`` store on Milvus Lite.

langchain-milvus is in the ``test`` extra (``bge-integrations[langchain-milvus]``); CI must not
skip these tests, so a missing package fails there (the ``CI`` variable, as for SciFact).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import LC_CORPUS

from bge_core.errors import MissingDependencyError

TEXTS = [t for t, _ in LC_CORPUS]
MILVUS_MODULES = ("langchain_milvus", "langchain_milvus.utils", "langchain_milvus.utils.sparse")


def _need(module: str) -> Any:
    """Import ``module``; skip without it, except in CI (where the ``test`` extra installs it)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        why = f"{module} is not importable ({exc}): pip install 'bge-integrations[langchain-milvus]'"
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(why + " (CI must not skip the langchain-milvus tests)")
        pytest.skip(why)


@pytest.fixture
def lc_milvus() -> Any:
    _need("milvus_lite")
    return _need("langchain_milvus")


def _connection(path: Path) -> dict[str, Any]:
    return {"uri": str(path)}


def test_missing_langchain_milvus_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without langchain-milvus, both import routes name the ``langchain-milvus`` extra (runs
    whether or not the package is installed: ``None`` in sys.modules makes its import fail)."""
    for name in MILVUS_MODULES:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "langchain_bge.milvus_sparse", raising=False)
    extra = r"langchain-milvus.*pip install 'bge-integrations\[langchain-milvus\]'"
    with pytest.raises(MissingDependencyError, match=extra) as info:
        importlib.import_module("langchain_bge.milvus_sparse")
    assert info.value.extra == "langchain-milvus"
    import langchain_bge

    with pytest.raises(ImportError, match=extra):
        langchain_bge.BGEM3MilvusSparseEmbeddings  # noqa: B018
    # The Qdrant flavour does not depend on langchain-milvus.
    assert langchain_bge.BGEM3SparseEmbeddings.__name__ == "BGEM3SparseEmbeddings"


def test_is_a_langchain_milvus_sparse_embedding(lc_milvus: Any, m3: Any) -> None:
    from langchain_milvus.utils.sparse import BaseSparseEmbedding

    from langchain_bge import BGEM3MilvusSparseEmbeddings

    sp = BGEM3MilvusSparseEmbeddings(encoder=m3)
    assert isinstance(sp, BaseSparseEmbedding)
    q = sp.embed_query("cancer cells")
    assert isinstance(q, dict) and q == m3.encode(["cancer cells"], dense=False).sparse[0].to_dict()
    assert q and all(isinstance(k, int) and isinstance(v, float) and v > 0 for k, v in q.items())
    docs = sp.embed_documents(["the cat", ""])
    assert docs[1] == {} and docs[0] == m3.encode(["the cat"], dense=False).sparse[0].to_dict()


def test_import_and_constructor_load_no_model(lc_milvus: Any) -> None:
    """With the real langchain-milvus, importing and constructing loads neither torch nor a model."""
    code = (
        "import sys\n"
        "from langchain_bge import BGEM3MilvusSparseEmbeddings\n"
        "sp = BGEM3MilvusSparseEmbeddings('BAAI/bge-m3')\n"
        "assert not sp.encoder_holder.loaded\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'torch imported'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


async def test_async_matches_sync(lc_milvus: Any, m3: Any) -> None:
    from langchain_bge import BGEM3MilvusSparseEmbeddings

    sp = BGEM3MilvusSparseEmbeddings(encoder=m3)
    assert await sp.aembed_query("gene protein") == sp.embed_query("gene protein")
    assert await sp.aembed_documents(["the cat", "the dog"]) == sp.embed_documents(["the cat", "the dog"])


def test_hybrid_add_texts_and_search(lc_milvus: Any, fresh_m3: Any, count_forward: Any, tmp_path: Path) -> None:
    """The usual LangChain flow: an empty hybrid ``Milvus`` (dense + our sparse), ``add_texts``
    with metadata and ids, then ``similarity_search`` finds each document by its own text, with
    one model pass per text for both vectors."""
    from langchain_bge import BGEEmbeddings, BGEM3MilvusSparseEmbeddings

    dense, sparse = BGEEmbeddings(encoder=fresh_m3), BGEM3MilvusSparseEmbeddings(encoder=fresh_m3)
    store = lc_milvus.Milvus(
        embedding_function=[dense, sparse],
        vector_field=["dense", "sparse"],
        index_params=[
            {"index_type": "FLAT", "metric_type": "IP"},
            {"index_type": "SPARSE_INVERTED_INDEX", "metric_type": "IP", "params": {"drop_ratio_build": 0.0}},
        ],
        # langchain-milvus's default sparse search params carry drop_ratio_build=0.2, which
        # Milvus Lite refuses at search time ("only drop_ratio_build=0 is supported").
        search_params=[
            {"metric_type": "IP", "params": {}},
            {"metric_type": "IP", "params": {"drop_ratio_search": 0.0}},
        ],
        connection_args=_connection(tmp_path / "lc.db"),
        collection_name="docs",
        consistency_level="Strong",
        auto_id=False,
    )
    counter = count_forward(fresh_m3.model)
    ids = [f"doc-{m['n']}" for _, m in LC_CORPUS]
    assert store.add_texts(TEXTS, metadatas=[m for _, m in LC_CORPUS], ids=ids) == ids
    assert counter.texts == len(TEXTS), f"{counter.texts} texts went through the model for {len(TEXTS)} inputs"

    for i, text in enumerate(TEXTS):
        hits = store.similarity_search(text, k=2, ranker_type="rrf", ranker_params={"k": 60})
        assert hits[0].page_content == text, (text, [h.page_content for h in hits])
        assert hits[0].metadata["n"] == i and hits[0].metadata["pk"] == ids[i]
    counter.reset()
    hits = store.similarity_search("cancer cells in the liver", k=3, expr='topic == "bio"')
    assert counter.texts == 1  # the query: one pass serves its dense and sparse vectors
    assert hits[0].metadata["n"] == 2 and {h.metadata["topic"] for h in hits} == {"bio"}

    # The stored vectors are exactly ours.
    row = store.client.get("docs", ids=[ids[2]], output_fields=["dense", "sparse"])[0]
    want = fresh_m3.encode([TEXTS[2]])
    assert row["dense"] == pytest.approx(want.dense[0].tolist(), rel=1e-5, abs=1e-6)
    assert {int(k): v for k, v in row["sparse"].items()} == pytest.approx(want.sparse[0].to_dict(), rel=1e-6)


def test_milvus_hybrid_store_matches_reference(lc_milvus: Any, m3: Any, tmp_path: Path) -> None:
    """Sparse search in ``langchain_milvus.Milvus`` equals the exact lexical score; its hybrid
    (dense + sparse, RRF) equals the reference store's hybrid search on the same texts."""
    from langchain_core.documents import Document
    from store_checks import assert_same_hits

    from bge_core.index import VectorIndex
    from bge_core.reference import InMemoryStore
    from bge_core.testing import TINY_CORPUS
    from bge_core.types import Hit
    from langchain_bge import BGEEmbeddings, BGEM3MilvusSparseEmbeddings

    texts = list(TINY_CORPUS[:10])
    dense, sparse = BGEEmbeddings(encoder=m3), BGEM3MilvusSparseEmbeddings(encoder=m3)
    exact = {"index_type": "FLAT", "metric_type": "IP"}
    lexical = {"index_type": "SPARSE_INVERTED_INDEX", "metric_type": "IP", "params": {"drop_ratio_build": 0.0}}
    docs = [Document(page_content=t, metadata={"i": i}) for i, t in enumerate(texts)]
    where = _connection(tmp_path / "lc.db")
    sparse_params = {"metric_type": "IP", "params": {"drop_ratio_search": 0.0}}
    lexical_only = lc_milvus.Milvus.from_documents(
        docs,
        embedding=sparse,
        vector_field="sparse",
        index_params=lexical,
        search_params=sparse_params,
        connection_args=where,
        collection_name="lc_sparse",
        consistency_level="Strong",
        drop_old=True,
    )
    hybrid = lc_milvus.Milvus.from_documents(
        docs,
        embedding=[dense, sparse],
        vector_field=["dense", "sparse"],
        index_params=[exact, lexical],
        search_params=[{"metric_type": "IP", "params": {}}, sparse_params],
        connection_args=where,
        collection_name="lc",
        consistency_level="Strong",
        drop_old=True,
    )
    ref = VectorIndex(InMemoryStore(), m3, show_progress=False)
    ref.add_texts(texts)
    for query in ("cancer cells in the liver", "the cat on the mat", "heart disease drug"):
        want_sparse = ref.search(query, 4, mode="sparse")
        got_sparse = lexical_only.similarity_search_with_score(query, k=len(want_sparse))
        assert want_sparse and [d.page_content for d, _ in got_sparse] == [h.text for h in want_sparse]
        assert [score for _, score in got_sparse] == pytest.approx([h.score for h in want_sparse], rel=1e-5)
        got = hybrid.similarity_search_with_score(query, k=4, fetch_k=4, ranker_type="rrf", ranker_params={"k": 60})
        want = ref.search(query, 4, mode="hybrid", rrf_k=60, prefetch_limit=4)
        # RRF ties (rank 2 in one list vs rank 2 in the other) may come in either order
        as_hits = [Hit(d.page_content, score, d.page_content, {}) for d, score in got]
        assert_same_hits([Hit(h.text, h.score, h.text, {}) for h in want], as_hits)


def test_test_extra_installs_langchain_milvus() -> None:
    """The ``test`` extra (what CI installs) reaches ``langchain-milvus``, whose pymilvus range
    leaves out the versions langchain-milvus 0.3 fails with (>= 2.6.10)."""
    tomllib = pytest.importorskip("tomllib")
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]

    def reach(extra: str) -> set[str]:
        out = {extra}
        for req in extras[extra]:
            if req.startswith("bge-integrations["):
                for sub in req[len("bge-integrations[") : req.index("]")].split(","):
                    out |= reach(sub.strip())
        return out

    assert "langchain-milvus" in reach("test")
    lc = extras["langchain-milvus"]
    assert any(r.startswith("langchain-milvus") and "<0.4" in r for r in lc)
    assert any(r.startswith("pymilvus") and "<2.6.8" in r for r in lc)
