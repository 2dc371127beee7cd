"""Search as data: one SearchOptions value, one fusion module, retries on every idempotent
store call, LlamaIndex nodes in add_documents, batch search, settings resolution."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from bge_core import BGEM3Encoder, Hit
from bge_core.errors import BGEError, IndexSettingsMismatchError, StoreError
from bge_core.index import Record, RetryPolicy, SearchRequest, VectorIndex, make_id
from bge_core.reference import InMemoryStore
from bge_core.search_options import DEFAULT_RERANK_CANDIDATES, SearchOptions
from bge_core.types import M3Output

QUERIES = ["the cat sat", "dogs bark at night", "protein folding in cells", "a quiet morning"]
MODES = ("dense", "sparse", "hybrid", "colbert")


class CountingEncoder:
    """Counts encoder passes (calls of encode_outputs with query=True)."""

    def __init__(self, inner: BGEM3Encoder) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.query_calls: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def encode_outputs(self, texts: Sequence[str], *, query: bool, **kw: Any) -> M3Output:
        if query:
            self.query_calls.append(len(texts))
        out: M3Output = self.inner.encode_outputs(texts, query=query, **kw)
        return out


@pytest.fixture
def filled(m3: BGEM3Encoder, corpus: list[str]) -> VectorIndex:
    idx = VectorIndex(InMemoryStore(), m3, show_progress=False)
    idx.add_texts(corpus, [{"n": i, "even": i % 2 == 0} for i in range(len(corpus))])
    return idx


def _ids(hits: Sequence[Hit]) -> list[str]:
    return [h.id for h in hits]


# -- 1. one options type -------------------------------------------------------------------------
def test_options_defaults_frozen_and_validated() -> None:
    opts = SearchOptions()
    assert (opts.k, opts.mode, opts.fusion, opts.rrf_k, opts.weights) == (10, "hybrid", "rrf", 60, (1.0, 1.0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.k = 3  # type: ignore[misc]
    for bad, match in [
        ({"k": 0}, "k must be a positive int"),
        ({"k": True}, "k must be a positive int"),
        ({"mode": "bm25"}, "unknown mode 'bm25'; use one of dense, sparse, hybrid, colbert"),
        ({"fusion": "max"}, "unknown fusion 'max'; use one of rrf, dbsf, weighted"),
        ({"rrf_k": -1}, r"rrf_k must be an int >= 0 \(default 60\)"),
        ({"weights": (1.0,)}, r"two finite numbers \(dense, sparse\)"),
        ({"weights": (1.0, float("nan"))}, "two finite numbers"),
        ({"prefetch_limit": 0}, "prefetch_limit must be a positive int or None"),
        ({"rerank_candidates": -3}, "rerank_candidates must be a positive int or None"),
        ({"filter": {"a": {"nested": 1}}}, "must be str, int, float or bool"),
    ]:
        with pytest.raises(ValueError, match=match):
            SearchOptions(**bad)
    with pytest.raises(TypeError, match="score"):
        SearchOptions(rerank=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unknown search option.*top_k.*use k, mode"):
        SearchOptions.from_kwargs(top_k=3)
    assert SearchOptions(weights=[1, 2]).weights == (1.0, 2.0)  # type: ignore[arg-type]
    assert SearchOptions(filter={}).filter is None
    assert opts.replace(k=3).k == 3 and opts.k == 10


def test_options_candidates_and_prefetch(reranker: Any) -> None:
    assert SearchOptions(k=5).candidates == 5 and SearchOptions(k=5).prefetch == 100
    assert SearchOptions(k=50).prefetch == 200 and SearchOptions(k=5, prefetch_limit=7).prefetch == 7
    assert SearchOptions(k=5, rerank=reranker).candidates == DEFAULT_RERANK_CANDIDATES
    assert SearchOptions(k=5, rerank=reranker, rerank_candidates=8).candidates == 8
    assert SearchOptions(k=30, rerank=reranker, rerank_candidates=8).candidates == 30


def test_options_object_equals_keywords_and_reaches_the_store(filled: VectorIndex) -> None:
    seen: list[SearchRequest] = []
    original = filled.store.query
    filled.store.query = lambda r: seen.append(r) or original(r)  # type: ignore[method-assign]
    opts = SearchOptions(k=3, mode="hybrid", fusion="weighted", weights=(1.0, 0.5), filter={"even": True})
    by_object = filled.search("the cat", options=opts)
    by_keywords = filled.search(
        "the cat", 3, mode="hybrid", fusion="weighted", weights=(1.0, 0.5), filter={"even": True}
    )
    assert _ids(by_object) == _ids(by_keywords) and len(by_object) == 3
    assert seen[0].options == opts and seen[0].fusion == "weighted" and seen[0].rrf_k == 60
    # keywords given with an options object override it
    assert len(filled.search("the cat", 2, options=opts)) == 2
    assert filled.search("the cat", options=opts, mode="dense")[0].scores.keys() == {"dense"}
    with pytest.raises(TypeError, match="SearchOptions"):
        filled.search("the cat", options={"k": 3})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unknown search option"):
        filled.search("the cat", top_k=3)  # type: ignore[call-arg]


def test_llama_index_retriever_passes_one_options_value() -> None:
    pytest.importorskip("llama_index.core")
    from llama_index_bge.retriever import BGEHybridRetriever

    class Spy:
        options: SearchOptions | None = None

        def search(self, query: str, k: int | None = None, *, options: SearchOptions | None = None) -> list[Hit]:
            self.options = options
            return []

    spy = Spy()
    BGEHybridRetriever(spy, k=3, mode="dense", rrf_k=7, prefetch_limit=9).retrieve("q")  # type: ignore[arg-type]
    assert spy.options == SearchOptions(k=3, mode="dense", rrf_k=7, prefetch_limit=9)


def test_langchain_retriever_default_rrf_k_is_the_core_one() -> None:
    pytest.importorskip("langchain_core")
    import langchain_bge.retriever as lc
    from bge_core import search_options

    assert lc.Mode is search_options.Mode and lc.Fusion is search_options.Fusion
    assert lc.BGEHybridRetriever.model_fields["rrf_k"].default == search_options.DEFAULT_RRF_K


# -- 2. one fusion module -----------------------------------------------------------------------
def test_fusion_lives_in_one_module() -> None:
    from bge_core import fusion, reference, scoring

    assert reference.dbsf_fusion is fusion.dbsf_fusion  # re-export kept for old imports
    assert scoring.rrf_fusion is fusion.rrf_fusion and scoring.weighted_sum_fusion is fusion.weighted_sum_fusion
    lists = {"dense": [("a", 0.9), ("b", 0.5), ("c", 0.1)], "sparse": [("c", 3.0), ("a", 1.0)]}
    rrf = dict(fusion.fuse("rrf", lists, rrf_k=60))
    assert rrf["a"] == pytest.approx(1 / 61 + 1 / 62) and rrf["b"] == pytest.approx(1 / 62)
    weighted = dict(fusion.fuse("weighted", lists, weights={"dense": 2.0, "sparse": 0.5}))
    assert weighted == pytest.approx({"a": 2.3, "b": 1.0, "c": 1.7})
    dbsf = dict(fusion.fuse("dbsf", lists))
    std = np.std([0.9, 0.5, 0.1], ddof=1)
    assert dbsf["b"] == pytest.approx((0.5 - (0.5 - 3 * std)) / (6 * std))  # the mean scales to 0.5
    with pytest.raises(ValueError, match="unknown fusion"):
        fusion.fuse("max", lists)  # type: ignore[arg-type]


def test_reference_store_fuses_through_the_fusion_module(filled: VectorIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    from bge_core import reference

    calls: list[str] = []
    real = reference.fuse

    def spy(fusion: Any, lists: Any, **kw: Any) -> Any:
        calls.append(fusion)
        return real(fusion, lists, **kw)

    monkeypatch.setattr(reference, "fuse", spy)
    for fusion in ("rrf", "dbsf", "weighted"):
        filled.search("the cat", 3, fusion=fusion)  # type: ignore[arg-type]
    assert calls == ["rrf", "dbsf", "weighted"]


# -- 5. retries on every idempotent call --------------------------------------------------------
class FlakyStore(InMemoryStore):
    """Fails the first ``failures`` calls of method ``method`` (TimeoutError is transient)."""

    def __init__(self, method: str, failures: int, exc: BaseException) -> None:
        super().__init__()
        self.method, self.failures, self.exc, self.calls = method, failures, exc, 0
        real = getattr(super(), method)

        def flaky(*args: Any) -> Any:
            self.calls += 1
            if self.calls <= self.failures:
                raise self.exc
            return real(*args)

        setattr(self, method, flaky)

    def is_transient(self, exc: BaseException) -> bool:
        return isinstance(exc, TimeoutError)


CALLS: dict[str, Any] = {
    "fetch_hashes": lambda idx: idx.add_texts(["one more text"]),
    "query": lambda idx: idx.search("the cat", 2),
    "query_batch": lambda idx: idx.search_batch(["the cat", "dogs"], 2),
    "get": lambda idx: idx.get([make_id(None, "the cat sat on the mat")]),
    "count": lambda idx: idx.count(),
    "delete": lambda idx: idx.delete([make_id(None, "nothing")]),
    "read_settings": lambda idx: idx.read_settings(),
    "ensure": lambda idx: idx.ensure_collection(),
}


@pytest.mark.parametrize("method", sorted(CALLS))
def test_transient_errors_are_retried_on_every_idempotent_call(m3: BGEM3Encoder, method: str) -> None:
    slept: list[float] = []
    policy = RetryPolicy(attempts=3, initial_delay=1.0, sleep=slept.append, jitter=lambda: 1.0)
    store = FlakyStore(method, failures=2, exc=TimeoutError("read timed out"))
    idx = VectorIndex(store, m3, retry=policy, show_progress=False)
    store.upsert([Record(make_id(None, "the cat sat on the mat"), "the cat sat on the mat", {}, "h", None, None, None)])
    CALLS[method](idx)
    assert store.calls == 3 and slept == [1.0, 2.0]  # backoff doubled, never really slept


@pytest.mark.parametrize("method", sorted(CALLS))
def test_permanent_and_exhausted_errors_raise_store_error(m3: BGEM3Encoder, method: str) -> None:
    slept: list[float] = []
    permanent = FlakyStore(method, failures=1, exc=RuntimeError("400 bad request"))
    idx = VectorIndex(permanent, m3, retry=RetryPolicy(attempts=3, sleep=slept.append), show_progress=False)
    with pytest.raises(StoreError, match="failed permanently: RuntimeError: 400 bad request"):
        CALLS[method](idx)
    assert permanent.calls == 1 and slept == []
    stuck = FlakyStore(method, failures=99, exc=TimeoutError("read timed out"))
    idx = VectorIndex(stuck, m3, retry=RetryPolicy(attempts=2, sleep=slept.append), show_progress=False)
    with pytest.raises(StoreError, match="still failing after 2 attempts.*try again"):
        CALLS[method](idx)
    assert stuck.calls == 2


def test_read_errors_that_explain_themselves_pass_unchanged(m3: BGEM3Encoder) -> None:
    store = FlakyStore("query", failures=1, exc=ValueError("filter value has a double quote; use ..."))
    idx = VectorIndex(store, m3, retry=RetryPolicy(sleep=lambda s: None), show_progress=False)
    with pytest.raises(ValueError, match="double quote"):
        idx.search("the cat")


def test_retry_policy_is_checked() -> None:
    with pytest.raises(ValueError, match="attempts must be an int >= 1"):
        RetryPolicy(attempts=0)


# -- 4. LlamaIndex nodes ------------------------------------------------------------------------
def test_add_documents_accepts_llama_index_nodes(m3: BGEM3Encoder) -> None:
    schema = pytest.importorskip("llama_index.core.schema")
    idx = VectorIndex(InMemoryStore(), m3, show_progress=False)
    nodes = [
        schema.TextNode(text="the cat sat", metadata={"topic": "pets"}, id_="node-1"),
        schema.Document(text="dogs bark", metadata={"topic": "pets", "n": 2}, id_="doc-2"),
    ]
    ids = idx.add_documents(nodes)
    assert ids == [make_id("node-1", "the cat sat"), make_id("doc-2", "dogs bark")]
    got = idx.get(ids)
    assert [(h.text, h.metadata) for h in got] == [
        ("the cat sat", {"topic": "pets"}),
        ("dogs bark", {"topic": "pets", "n": 2}),
    ]
    with pytest.raises(TypeError, match="LlamaIndex TextNodes"):
        idx.add_documents([42])


def test_index_module_does_not_import_frameworks() -> None:
    code = "import sys, bge_core.index; print([m for m in ('llama_index', 'langchain_core') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- 6. batch search ----------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fusion", ["rrf", "dbsf", "weighted"])
def test_search_batch_equals_single_searches_in_one_encoder_pass(
    m3: BGEM3Encoder, corpus: list[str], mode: str, fusion: str
) -> None:
    enc = CountingEncoder(m3)
    store = InMemoryStore()
    batches: list[int] = []
    real_batch = store.query_batch
    store.query_batch = lambda reqs: batches.append(len(reqs)) or real_batch(reqs)  # type: ignore[method-assign]
    idx = VectorIndex(store, enc, show_progress=False)  # type: ignore[arg-type]
    idx.add_texts(corpus, [{"n": i} for i in range(len(corpus))])
    got = idx.search_batch(QUERIES, 3, mode=mode, fusion=fusion)  # type: ignore[arg-type]
    assert enc.query_calls == [len(QUERIES)] and batches == [len(QUERIES)]
    want = [idx.search(q, 3, mode=mode, fusion=fusion) for q in QUERIES]  # type: ignore[arg-type]
    assert [_ids(h) for h in got] == [_ids(h) for h in want]
    assert [h.score for hits in got for h in hits] == pytest.approx([h.score for hits in want for h in hits], rel=1e-4)


def test_search_batch_without_store_batch_loops_and_reranks_in_one_call(filled: VectorIndex, reranker: Any) -> None:
    class PlainStore:  # the Store protocol without query_batch
        def __init__(self, inner: InMemoryStore) -> None:
            self.inner = inner
            self.queries = 0

        def __getattr__(self, name: str) -> Any:
            if name == "query_batch":
                raise AttributeError(name)
            return getattr(self.inner, name)

        def query(self, request: SearchRequest) -> list[Hit]:
            self.queries += 1
            return self.inner.query(request)

    plain = PlainStore(filled.store)  # type: ignore[arg-type]
    idx = VectorIndex(plain, filled.encoder, show_progress=False)  # type: ignore[arg-type]
    pairs: list[int] = []
    real = reranker.score
    spy = type("Spy", (), {"score": lambda self, p, **kw: pairs.append(len(p)) or real(p, **kw)})()
    got = idx.search_batch(QUERIES, 2, rerank=spy, rerank_candidates=5)
    assert plain.queries == len(QUERIES) and pairs == [5 * len(QUERIES)]
    want = [filled.search(q, 2, rerank=reranker, rerank_candidates=5) for q in QUERIES]
    assert [_ids(h) for h in got] == [_ids(h) for h in want]
    assert idx.search_batch([], 2) == []
    with pytest.raises(TypeError, match="single str"):
        idx.search_batch("the cat")
    with pytest.raises(ValueError, match=r"queries\[1\] is empty"):
        idx.search_batch(["ok", " "])


def test_encode_queries_once_for_several_modes(m3: BGEM3Encoder, corpus: list[str]) -> None:
    enc = CountingEncoder(m3)
    idx = VectorIndex(InMemoryStore(), enc, show_progress=False)  # type: ignore[arg-type]
    idx.add_texts(corpus)
    encoded = idx.encode_queries(QUERIES, modes=MODES)
    runs = {mode: idx.search_batch(encoded, 3, mode=mode) for mode in MODES}  # type: ignore[arg-type]
    assert enc.query_calls == [len(QUERIES)]
    for mode in MODES:
        assert [_ids(h) for h in runs[mode]] == [_ids(idx.search(q, 3, mode=mode)) for q in QUERIES]  # type: ignore[arg-type]
    dense_only = idx.encode_queries(QUERIES, modes=["dense"])
    with pytest.raises(ValueError, match="pass modes="):
        idx.search_batch(dense_only, mode="colbert")


# -- 3. settings: one pure function ---------------------------------------------------------------
def test_resolve_settings_is_pure_and_says_how_to_fix() -> None:
    from bge_core.settings import (
        ModelFacts,
        SettingsRequest,
        model_to_load,
        resolve_settings,
    )

    m3 = ModelFacts(kind="m3", dim=1024, supports_colbert=True, max_length=8192, special_tokens=2)
    where = "the index X"
    fresh = resolve_settings(SettingsRequest(model="BAAI/bge-m3", max_tokens=512), None, m3, where)
    assert fresh.settings == {
        "model": "BAAI/bge-m3",
        "kind": "m3",
        "outputs": ["dense", "sparse", "colbert"],
        "max_tokens": 512,
        "dim": 1024,
        "layout": "chunks",
    }
    # a later run reuses what is recorded, incl. --no-colbert
    recorded = {**fresh.settings, "outputs": ["dense", "sparse"]}
    again = resolve_settings(SettingsRequest(), recorded, m3, where)
    assert again.model == "BAAI/bge-m3" and not again.colbert and again.settings == recorded
    assert model_to_load(SettingsRequest(), None, where) == "BAAI/bge-m3"
    with pytest.raises(IndexSettingsMismatchError, match="built with model 'BAAI/bge-m3'.*drop --model"):
        model_to_load(SettingsRequest(model="BAAI/bge-small-en-v1.5"), recorded, where)
    with pytest.raises(IndexSettingsMismatchError, match="--max-tokens 512 \\(you asked for 256\\)"):
        resolve_settings(SettingsRequest(max_tokens=256), recorded, m3, where)
    with pytest.raises(IndexSettingsMismatchError, match="drop --no-colbert"):
        resolve_settings(SettingsRequest(colbert=False), fresh.settings, m3, where)
    with pytest.raises(BGEError, match="more than BAAI/bge-m3 takes \\(8192\\)"):
        resolve_settings(SettingsRequest(max_tokens=9000), None, m3, where)
    dense = ModelFacts(kind="dense", dim=384, supports_colbert=False, max_length=512, special_tokens=2)
    with pytest.raises(IndexSettingsMismatchError, match="kind 'm3' \\(you asked for 'dense'\\)"):
        resolve_settings(SettingsRequest(), recorded, dense, where)
    fixed = resolve_settings(
        SettingsRequest(layout="documents", fixed_max_tokens=True, max_tokens=9), None, dense, where
    )
    assert fixed.max_tokens == 512 and fixed.settings["outputs"] == ["dense"]


def test_cli_opens_a_store_not_an_index(monkeypatch: pytest.MonkeyPatch, m3: BGEM3Encoder) -> None:
    from bge_core.cli import stores

    assert not hasattr(stores, "SettingsProbe")
    opened = InMemoryStore()

    def open_store(uri: str, *, collection: str) -> InMemoryStore:
        return opened

    def open_index(uri: str, *, encoder: Any, collection: str, **kw: Any) -> VectorIndex:
        assert encoder is None  # old entry points get no fake encoder
        return VectorIndex(opened, encoder)

    class EP:
        def __init__(self, name: str, fn: Any) -> None:
            self.name, self.fn = name, fn

        def load(self) -> Any:
            return self.fn

    monkeypatch.setattr(stores, "_entry_points", lambda: [EP("mem", open_store), EP("old", open_index)])
    assert stores.open_store("mem:x", collection="c") is opened
    with pytest.warns(DeprecationWarning, match="open_store"):
        assert stores.open_store("old:x", collection="c") is opened


def test_cli_run_queries_goes_through_the_index(m3: BGEM3Encoder, corpus: list[str]) -> None:
    from bge_core.cli.commands import run_queries

    enc = CountingEncoder(m3)
    store = InMemoryStore()
    idx = VectorIndex(store, enc, show_progress=False)  # type: ignore[arg-type]
    idx.add_documents([{"text": t, "metadata": {"doc_id": f"d{i}"}} for i, t in enumerate(corpus)])
    batches: list[SearchRequest] = []
    real = store.query_batch
    store.query_batch = lambda reqs: batches.extend(reqs) or real(reqs)  # type: ignore[method-assign]
    queries = {f"q{i}": q for i, q in enumerate(QUERIES)}
    runs = run_queries(idx, queries, MODES, k=3)
    assert enc.query_calls == [len(QUERIES)]  # one encoder pass for all modes
    assert len(batches) == len(QUERIES) * len(MODES) and all(r.options is not None for r in batches)
    for mode in MODES:
        want = {qid: [h.metadata["doc_id"] for h in idx.search(q, 3, mode=mode)] for qid, q in queries.items()}  # type: ignore[arg-type]
        assert runs[mode] == want
