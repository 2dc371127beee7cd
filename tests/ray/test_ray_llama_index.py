"""``llama_index_bge.BGEEmbedding`` in LlamaIndex's Ray ingestion pipeline: one model pass per node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ray_helpers import encoded_count, rows


def test_bge_embedding_as_a_ray_transformation(ray_cluster: Any, tiny_m3_path: Path, tmp_path: Path) -> None:
    pytest.importorskip("llama_index.ingestion.ray")
    from llama_index.core.schema import TextNode
    from llama_index.ingestion.ray import RayIngestionPipeline, RayTransformComponent
    from ray_helpers import CountingBGEEmbedding

    from llama_index_bge import BGEEmbedding

    counts = tmp_path / "counts"
    counts.mkdir()
    nodes = [TextNode(text=r["text"], id_=r["id"]) for r in rows(24, seed=5)]
    embed = RayTransformComponent(
        transform_class=CountingBGEEmbedding,
        map_batches_kwargs={"batch_size": 8, "compute": ray_cluster.data.ActorPoolStrategy(size=2)},
        model_name=str(tiny_m3_path),
        device="cpu",
        dtype="float32",
        embed_batch_size=8,
        count_dir=str(counts),
    )
    out = RayIngestionPipeline(transformations=[embed]).run(nodes=nodes)
    assert sorted(n.node_id for n in out) == sorted(n.node_id for n in nodes)
    assert encoded_count(counts) == len(nodes)  # every node embedded exactly once, in the workers

    ref = BGEEmbedding(model_name=str(tiny_m3_path), device="cpu", dtype="float32")
    want = dict(zip([n.node_id for n in nodes], ref.get_text_embedding_batch([n.get_content() for n in nodes])))
    for node in out:
        a, b = np.asarray(node.embedding), np.asarray(want[node.node_id])
        assert float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))) >= 0.999


def test_bge_embedding_instance_crosses_to_a_ray_worker(ray_cluster: Any, tiny_m3_path: Path) -> None:
    """Issue 19.8: an embedding object pickled to another process must still embed there."""
    from llama_index_bge import BGEEmbedding

    emb = BGEEmbedding(model_name=str(tiny_m3_path), device="cpu", dtype="float32")

    @ray_cluster.remote(num_cpus=1)
    def embed(e: Any) -> list[float]:
        return list(e.get_text_embedding("the heart and the lung"))

    got = np.asarray(ray_cluster.get(embed.remote(emb)))
    want = np.asarray(emb.get_text_embedding("the heart and the lung"))
    assert float(got @ want / (np.linalg.norm(got) * np.linalg.norm(want))) >= 0.999
