"""Slow: the whole loop on real data. Index a SciFact sub-corpus with the real all-MiniLM-L6-v2,
mine negatives for a few hundred train claims, fine-tune one short epoch, re-index with the
fine-tuned model, and assert a gain in nDCG@10 on the 300 test claims (never trained on)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

N_TRAIN_CLAIMS = 300
N_OTHER_DOCS = 700
#: Measured (machine shared): 0.7743 -> 0.7911 (+0.017, seed 42) and 0.7743 -> 0.7894 (+0.015,
#: seed 7). Without training (lr 0) the gain is 0; the earlier settings (temperature 0.02,
#: lr 5e-5) gave -0.002 here, which is what this test now guards against.
MIN_GAIN = 0.008


def _index(encoder: Any, doc_ids: list[str], texts: list[str]) -> Any:
    from bge_core.index import Document, VectorIndex
    from bge_core.reference import InMemoryStore

    index = VectorIndex(InMemoryStore(), encoder, show_progress=False)
    index.add_documents([Document(t, {"doc_id": d}, d) for d, t in zip(doc_ids, texts)])
    return index


def _test_ndcg(index: Any, queries: dict[str, str], qrels: Any) -> float:
    from bge_core.evaluation import evaluate_run

    qids = sorted(queries)
    hits = index.search_batch([queries[q] for q in qids], k=100, mode="dense")
    # Hit ids are the store's; the BEIR id is in the metadata.
    return evaluate_run({q: [h.metadata["doc_id"] for h in hs] for q, hs in zip(qids, hits)}, qrels)["ndcg@10"]


def test_fine_tuning_on_train_claims_gains_on_test_claims(minilm_path: Path, scifact_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    from bge_core import DenseEncoder
    from bge_core.evaluation import load_beir
    from bge_core.finetune import FinetuneConfig, finetune
    from bge_core.mining import MiningQuery, mine_hard_negatives, write_examples

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

    index = _index(DenseEncoder(minilm_path, device="cpu"), doc_ids, texts)
    zero_shot = _test_ndcg(index, test.queries, test.qrels)
    # (load_beir_queries would refuse: the sub-corpus lacks the other train claims' positives)
    queries = [
        MiningQuery(q, train.queries[q], tuple(train.doc_text(d) for d in train.qrels[q]), tuple(train.qrels[q]))
        for q in train_qids
    ]
    stats = mine_hard_negatives(index, queries, negatives=7, rank_range=(3, 50), seed=42)
    assert stats.queries == N_TRAIN_CLAIMS and stats.short_rows == 0
    train_file = tmp_path / "train.jsonl"
    write_examples(stats.examples, train_file)

    # In-batch negatives only (group 1): the mined negatives of SciFact's sparse qrels hold
    # unlabelled positives (BENCHMARKS.md section 9). 11 steps, so a high learning rate. The
    # default temperature for MiniLM (mean pooling) is 0.05, its own training scale (20); at
    # BGE's 0.02 the same run loses 0.018 (0.7743 -> 0.7560), so this also guards the default.
    cfg = FinetuneConfig(
        epochs=1,
        batch_size=32,
        group_size=1,
        learning_rate=1e-4,
        max_length=128,
        seed=42,
        show_progress=False,
    )
    result = finetune(train_file, minilm_path, tmp_path / "tuned", cfg)
    tuned = _test_ndcg(_index(DenseEncoder(tmp_path / "tuned", device="cpu"), doc_ids, texts), test.queries, test.qrels)
    print(
        f"sub-corpus of {len(doc_ids)} docs: zero-shot {zero_shot:.4f}, fine-tuned {tuned:.4f}, "
        f"train {result.train_seconds:.0f} s"
    )
    assert tuned >= zero_shot + MIN_GAIN, f"no gain: zero-shot {zero_shot:.4f}, fine-tuned {tuned:.4f}"
