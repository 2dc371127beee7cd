"""Retrieval metrics (nDCG@k, Recall@k, MRR@k) and a BEIR-format data loader.

Metrics follow BEIR / pytrec_eval: ``ndcg_cut`` with linear gains ``rel / log2(rank + 1)``.
Queries without relevant documents in the qrels are skipped, as in BEIR.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BeirData", "evaluate_run", "load_beir", "mrr_at_k", "ndcg_at_k", "recall_at_k"]

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Sequence[str]]


def ndcg_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """nDCG@k with linear gains (pytrec_eval's ``ndcg_cut``)."""
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """Share of relevant documents found in the top k."""
    rel = {d for d, g in relevant.items() if g > 0}
    if not rel:
        return 0.0
    return len(rel & set(ranked[:k])) / len(rel)


def mrr_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """Reciprocal rank of the first relevant document within the top k (0 if none)."""
    for i, doc in enumerate(ranked[:k]):
        if relevant.get(doc, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def evaluate_run(run: Run, qrels: Qrels) -> dict[str, float]:
    """Mean nDCG@10, Recall@100 and MRR@10 over the queries that have relevant documents."""
    qids = [q for q, rel in qrels.items() if any(g > 0 for g in rel.values())]
    if not qids:
        raise ValueError("qrels hold no relevant documents")
    sums = {"ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0}
    for q in qids:
        ranked = list(run.get(q, []))
        sums["ndcg@10"] += ndcg_at_k(ranked, qrels[q], 10)
        sums["recall@100"] += recall_at_k(ranked, qrels[q], 100)
        sums["mrr@10"] += mrr_at_k(ranked, qrels[q], 10)
    return {name: total / len(qids) for name, total in sums.items()}


@dataclass(frozen=True)
class BeirData:
    """A BEIR dataset: ``corpus[doc_id] = (title, text)``, ``queries[qid] = text``, ``qrels``."""

    corpus: dict[str, tuple[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    def doc_text(self, doc_id: str) -> str:
        """``title + " " + text`` stripped, as BEIR and MTEB index documents."""
        title, text = self.corpus[doc_id]
        return f"{title} {text}".strip()


def load_beir(folder: str | Path, split: str = "test") -> BeirData:
    """Read ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv`` from ``folder``."""
    root = Path(folder)
    for need in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"):
        if not (root / need).is_file():
            raise FileNotFoundError(f"{root} is not a BEIR folder: {need} is missing")
    corpus: dict[str, tuple[str, str]] = {}
    with open(root / "corpus.jsonl", encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                corpus[str(row["_id"])] = (str(row.get("title") or ""), str(row.get("text") or ""))
            except (json.JSONDecodeError, KeyError) as exc:
                raise ValueError(f"{root / 'corpus.jsonl'}:{line_no}: malformed line ({exc})") from exc
    qrels: dict[str, dict[str, int]] = {}
    with open(root / "qrels" / f"{split}.tsv", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t")
        for i, row in enumerate(reader):
            if i == 0 and row and row[0] == "query-id":
                continue
            if len(row) >= 3:
                qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    queries: dict[str, str] = {}
    with open(root / "queries.jsonl", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                if str(row["_id"]) in qrels:
                    queries[str(row["_id"])] = str(row["text"])
    return BeirData(corpus=corpus, queries=queries, qrels=qrels)
