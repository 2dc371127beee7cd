"""BGEEmbedding declares its options as fields (issue 19.1), rerankers emit LlamaIndex's
reranking events (19.2), wrappers pickle and load lazily on the other side (19.8), and
concurrent async embedding calls are batched together (19.9)."""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llama_index.core.callbacks import (
    CallbackManager,
    CBEventType,
    EventPayload,
    LlamaDebugHandler,
)
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from llama_index_bge import (
    BGEColBERTRerank,
    BGEEmbedding,
    BGERerank,
    bge_m3_sparse_functions,
)

QUERY = "cancer cells in the liver"
OPTS: dict[str, Any] = {"device": "cpu", "dtype": "float32"}


@pytest.fixture(scope="module")
def dense_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bge_core.testing import build_tiny_m3

    return build_tiny_m3(tmp_path_factory.mktemp("ckpt") / "tiny-dense", heads=False, seed=3)


def nodes_of(texts: list[str]) -> list[NodeWithScore]:
    return [NodeWithScore(node=TextNode(text=t, id_=f"n{i}"), score=1.0 - i / 100) for i, t in enumerate(texts)]


# -- 19.1 fields --------------------------------------------------------------------------------
def test_query_instruction_reaches_the_encoder(dense_path: Path) -> None:
    from bge_core import DenseEncoder

    emb = BGEEmbedding(model_name=str(dense_path), query_instruction="query: ", text_instruction="passage: ", **OPTS)
    ref = DenseEncoder(dense_path, **OPTS)
    np.testing.assert_allclose(emb.get_query_embedding("cells"), ref.encode(["query: cells"])[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(emb.get_text_embedding("cells"), ref.encode(["passage: cells"])[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(emb.get_query_embedding("cells"), ref.encode(["cells"])[0], atol=1e-3)


def test_options_round_trip_through_to_dict(dense_path: Path) -> None:
    emb = BGEEmbedding(
        model_name=str(dense_path),
        query_instruction="q: ",
        text_instruction="p: ",
        max_length=64,
        normalize=False,
        pooling="mean",
        batch_size=4,
        embed_batch_size=8,
        **OPTS,
    )
    data = emb.to_dict()
    for key, value in {
        "model_name": str(dense_path),
        "query_instruction": "q: ",
        "text_instruction": "p: ",
        "max_length": 64,
        "normalize": False,
        "pooling": "mean",
        "device": "cpu",
        "dtype": "float32",
        "batch_size": 4,
        "embed_batch_size": 8,
    }.items():
        assert data[key] == value, key
    copy = BGEEmbedding.from_dict(data)
    assert copy.to_dict() == data
    assert not copy.encoder_ref.loaded
    enc = copy.encoder
    assert (enc.query_instruction, enc.text_instruction, enc.max_length, enc.normalize, enc.pooling) == (
        "q: ",
        "p: ",
        64,
        False,
        "mean",
    )
    np.testing.assert_allclose(
        copy.get_query_embedding("cells"), emb.get_query_embedding("cells"), rtol=1e-5, atol=1e-6
    )


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="query_instrution"):
        BGEEmbedding(model_name="BAAI/bge-m3", query_instrution="typo")


def test_given_encoder_fills_the_fields(m3: Any) -> None:
    emb = BGEEmbedding(encoder=m3)
    assert emb.device == "cpu" and emb.dtype == "float32" and emb.kind == "m3"
    with pytest.raises(ValueError, match="set them on the encoder"):
        BGEEmbedding(encoder=m3, query_instruction="q: ")


def test_m3_refuses_an_instruction(tiny_m3_path: Path) -> None:
    emb = BGEEmbedding(model_name=str(tiny_m3_path), query_instruction="q: ", **OPTS)
    with pytest.raises(ValueError, match="no query instruction"):
        emb.get_query_embedding("cells")


# -- 19.2 events -------------------------------------------------------------------------------
class _Collect:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def handle(self, event: Any, **kwargs: Any) -> None:
        self.events.append(event)


@pytest.fixture
def event_log() -> Any:
    from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler

    collected = _Collect()

    class Handler(BaseEventHandler):
        @classmethod
        def class_name(cls) -> str:
            return "TestHandler"

        def handle(self, event: Any, **kwargs: Any) -> None:
            collected.handle(event)

    root = get_dispatcher()
    handler = Handler()
    root.add_event_handler(handler)
    yield collected
    root.event_handlers.remove(handler)


@pytest.mark.parametrize("which", ["cross-encoder", "colbert"])
def test_rerankers_emit_callback_and_instrumentation_events(
    which: str, m3: Any, reranker: Any, docs: list[str], event_log: Any
) -> None:
    debug = LlamaDebugHandler()
    manager = CallbackManager([debug])
    post: Any = (
        BGERerank(reranker=reranker, top_n=3, callback_manager=manager)
        if which == "cross-encoder"
        else BGEColBERTRerank(encoder=m3, top_n=3, callback_manager=manager)
    )
    nodes = nodes_of(docs)
    out = post.postprocess_nodes(nodes, query_bundle=QueryBundle(QUERY))
    pairs = debug.get_event_pairs(CBEventType.RERANKING)
    assert len(pairs) == 1
    start, end = pairs[0]
    assert start.payload[EventPayload.QUERY_STR] == QUERY
    assert start.payload[EventPayload.TOP_K] == 3
    assert start.payload[EventPayload.MODEL_NAME] == post.model
    assert len(start.payload[EventPayload.NODES]) == len(nodes)
    assert [n.node.node_id for n in end.payload[EventPayload.NODES]] == [n.node.node_id for n in out]
    names = [type(e).__name__ for e in event_log.events]
    assert names.index("ReRankStartEvent") < names.index("ReRankEndEvent")
    start_ev = next(e for e in event_log.events if type(e).__name__ == "ReRankStartEvent")
    end_ev = next(e for e in event_log.events if type(e).__name__ == "ReRankEndEvent")
    assert start_ev.top_n == 3 and start_ev.model_name == post.model and len(start_ev.nodes) == len(nodes)
    assert [n.node.node_id for n in end_ev.nodes] == [n.node.node_id for n in out]


# -- 19.8 pickle -------------------------------------------------------------------------------
def test_wrappers_pickle_before_and_after_load(tiny_m3_path: Path, reranker: Any, docs: list[str]) -> None:
    emb = BGEEmbedding(model_name=str(tiny_m3_path), **OPTS)
    doc_fn, _query_fn = bge_m3_sparse_functions(emb)
    before = pickle.loads(pickle.dumps(emb))
    assert not before.encoder_ref.loaded
    vec = emb.get_text_embedding("cells")
    after, fn2 = pickle.loads(pickle.dumps((emb, doc_fn)))
    assert not after.encoder_ref.loaded and fn2.ref is after.encoder_ref  # still shared after the trip
    np.testing.assert_allclose(before.get_text_embedding("cells"), vec, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(after.get_text_embedding("cells"), vec, rtol=1e-5, atol=1e-6)
    assert fn2(["cells"]) == doc_fn(["cells"])
    for post in (BGERerank(reranker=reranker, top_n=2), BGEColBERTRerank(encoder=emb, top_n=2)):
        copy = pickle.loads(pickle.dumps(post))
        a = post.postprocess_nodes(nodes_of(docs), query_str=QUERY)
        b = copy.postprocess_nodes(nodes_of(docs), query_str=QUERY)
        assert [n.node.node_id for n in a] == [n.node.node_id for n in b]


# -- 19.9 async batching -----------------------------------------------------------------------
async def test_concurrent_async_embeddings_are_batched(fresh_m3: Any, count_forward: Any, docs: list[str]) -> None:
    emb = BGEEmbedding(encoder=fresh_m3)
    counter = count_forward(fresh_m3.model)
    got = await asyncio.gather(*(emb.aget_text_embedding(t) for t in docs))
    assert len(counter.batches) <= 3  # ten texts: one batched call (batch_size=4: three forwards), not ten
    want = BGEEmbedding(encoder=fresh_m3).get_text_embedding_batch(docs)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
