"""Retrieval metrics (nDCG@k, Recall@k, MRR@k) and a BEIR-format data loader.

Metrics follow BEIR / pytrec_eval: ``ndcg_cut`` with linear gains ``rel / log2(rank + 1)``.
Queries without relevant documents in the qrels are skipped. As BEIR's ``evaluate``
(``ignore_identical_ids=True``), a retrieved document whose id equals the query id is dropped
from the run by default (ArguAna- and Quora-style data hold each query as a document too).
The metrics equal ``ir_measures`` (``nDCG@10``, ``R@100``, ``RR@10``) to 1e-6 (tested).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["BeirData", "drop_identical_ids", "evaluate_run", "load_beir", "mrr_at_k", "ndcg_at_k", "recall_at_k"]

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


def drop_identical_ids(run: Run) -> dict[str, list[str]]:
    """``run`` without the documents whose id equals their query's id (BEIR's rule)."""
    return {q: [d for d in ranked if d != q] for q, ranked in run.items()}


def evaluate_run(run: Run, qrels: Qrels, *, ignore_identical_ids: bool = True) -> dict[str, float]:
    """Mean nDCG@10, Recall@100 and MRR@10 over the queries that have relevant documents.

    ``ignore_identical_ids`` (default, as BEIR) drops a retrieved document whose id equals the
    query id before scoring; pass False to keep them.
    """
    qids = [q for q, rel in qrels.items() if any(g > 0 for g in rel.values())]
    if not qids:
        raise ValueError("qrels hold no relevant documents")
    if ignore_identical_ids:
        run = drop_identical_ids(run)
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


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` of a JSONL file; a malformed line raises ValueError naming it."""
    with open(path, "rb") as fh:
        for line_no, raw in enumerate(fh, 1):
            where = f"{path}:{line_no}"
            try:
                line = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{where}: not UTF-8 (bad byte at column {exc.start + 1})") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: malformed JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")  # noqa: TRY004 - bad file content
            if row.get("_id") is None or str(row["_id"]) == "":
                raise ValueError(f"{where}: no '_id' field")
            yield line_no, row


def load_beir(folder: str | Path, split: str = "test") -> BeirData:
    """Read ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv`` from ``folder``.

    A malformed line raises ``ValueError`` naming the file and line.
    """
    root = Path(folder)
    for need in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"):
        if not (root / need).is_file():
            raise FileNotFoundError(f"{root} is not a BEIR folder: {need} is missing")
    corpus: dict[str, tuple[str, str]] = {}
    for line_no, row in _jsonl_rows(root / "corpus.jsonl"):
        text = row.get("text")
        if not isinstance(text, str):
            raise ValueError(f"{root / 'corpus.jsonl'}:{line_no}: no 'text' string field")  # noqa: TRY004
        corpus[str(row["_id"])] = (str(row.get("title") or ""), text)
    qrels: dict[str, dict[str, int]] = {}
    qrels_path = root / "qrels" / f"{split}.tsv"
    with open(qrels_path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        for i, cells in enumerate(reader):
            if i == 0 and cells and cells[0] == "query-id":
                continue
            if not cells or not "".join(cells).strip():
                continue
            if len(cells) < 3:
                raise ValueError(
                    f"{qrels_path}:{reader.line_num}: expected query-id, corpus-id and score separated by tabs"
                )
            try:
                grade = int(cells[2])
            except ValueError:
                raise ValueError(f"{qrels_path}:{reader.line_num}: score {cells[2]!r} is not an integer") from None
            qrels.setdefault(cells[0], {})[cells[1]] = grade
    queries: dict[str, str] = {}
    for line_no, row in _jsonl_rows(root / "queries.jsonl"):
        if not isinstance(row.get("text"), str):
            raise ValueError(f"{root / 'queries.jsonl'}:{line_no}: no 'text' string field")  # noqa: TRY004
        if str(row["_id"]) in qrels:
            queries[str(row["_id"])] = str(row["text"])
    return BeirData(corpus=corpus, queries=queries, qrels=qrels)
