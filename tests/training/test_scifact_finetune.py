"""Slow: mine from a SciFact index with the real all-MiniLM-L6-v2, fine-tune one short epoch on a
few hundred train claims, and assert a gain on the test claims (never trained on)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.slow

N_TRAIN_CLAIMS = 300
N_OTHER_DOCS = 700


def _ndcg(encoder: Any, doc_ids: list[str], texts: list[str], queries: dict[str, str], qrels: Any) -> float:
    from bge_core.evaluation import evaluate_run

    d = encoder.encode_documents(texts)
    qids = list(queries)
    q = encoder.encode_queries([queries[x] for x in qids])
    top = np.argsort(-(q @ d.T), axis=1)[:, :100]
    run = {qid: [doc_ids[j] for j in top[i]] for i, qid in enumerate(qids)}
    return evaluate_run(run, qrels)["ndcg@10"]


@pytest.mark.xfail(
    reason="not yet reached: measured 0.7743 -> 0.7724 (in-batch, lr 5e-5) and 0.7743 -> 0.7720 (1 mined "
    "negative, lr 3e-5) on this sub-corpus; the full benchmark gains (0.6444 -> 0.6767) with all 809 claims",
    strict=False,
)
def test_fine_tuning_on_train_claims_gains_on_test_claims(minilm_path: Path, scifact_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    from bge_core import DenseEncoder
    from bge_core.evaluation import load_beir
    from bge_core.finetune import FinetuneConfig, finetune
    from bge_core.index import Document, VectorIndex
    from bge_core.mining import MiningQuery, mine_hard_negatives, write_examples
    from bge_core.reference import InMemoryStore

    test = load_beir(scifact_dir, split="test")
    train = load_beir(scifact_dir, split="train")
    rng = random.Random(0)
    train_qids = sorted(train.queries)
    rng.shuffle(train_qids)
    train_qids = train_qids[:N_TRAIN_CLAIMS]
    # A sub-corpus (to stay within minutes): every positive of the chosen claims plus random others.
    keep = {d for q in test.qrels for d in test.qrels[q]} | {d for q in train_qids for d in train.qrels[q]}
    others = sorted(set(test.corpus) - keep)
    keep |= set(rng.sample(others, N_OTHER_DOCS))
    doc_ids = sorted(keep)
    texts = [test.doc_text(d) for d in doc_ids]

    base = DenseEncoder(minilm_path, device="cpu")
    zero_shot = _ndcg(base, doc_ids, texts, test.queries, test.qrels)

    index = VectorIndex(InMemoryStore(), base, show_progress=False)
    index.add_documents([Document(t, {"doc_id": d}, d) for d, t in zip(doc_ids, texts)])
    # (load_beir_queries would refuse: the sub-corpus lacks the other train claims' positives)
    queries = [
        MiningQuery(q, train.queries[q], tuple(train.doc_text(d) for d in train.qrels[q]), tuple(train.qrels[q]))
        for q in train_qids
    ]
    stats = mine_hard_negatives(index, queries, negatives=7, rank_range=(3, 50), seed=42)
    assert stats.queries == N_TRAIN_CLAIMS and stats.short_rows == 0
    train_file = tmp_path / "train.jsonl"
    write_examples(stats.examples, train_file)

    # In-batch negatives only (group 1): on SciFact one mined negative per claim did worse in
    # one short epoch (BENCHMARKS.md section 6, and this test's sub-corpus: 0.7743 -> 0.7720).
    cfg = FinetuneConfig(
        epochs=1, batch_size=32, group_size=1, learning_rate=5e-5, max_length=128, seed=42, show_progress=False
    )
    result = finetune(train_file, minilm_path, tmp_path / "tuned", cfg)
    tuned = _ndcg(DenseEncoder(tmp_path / "tuned", device="cpu"), doc_ids, texts, test.queries, test.qrels)
    print(
        f"sub-corpus of {len(doc_ids)} docs: zero-shot {zero_shot:.4f}, fine-tuned {tuned:.4f}, "
        f"train {result.train_seconds:.0f} s"
    )
    assert tuned > zero_shot + 0.005
