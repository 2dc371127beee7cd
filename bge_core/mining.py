"""Hard-negative mining from an index, in FlagEmbedding's fine-tuning format.

For each query: search the index (any mode it has), take the candidates ranked inside a rank
range (FlagEmbedding's ``range_for_sampling``), drop the positives, optionally drop likely
false negatives (positive-aware filtering: a candidate scoring above ``max_neg_ratio`` times the
positive's score is probably relevant too, as in NV-Retriever's TopK-PercPos), and sample
``negatives`` of the rest with a seeded generator. The rows written are
``{"query", "pos", "neg"}`` plus ``pos_scores`` / ``neg_scores`` when a scorer ran and
``prompt`` when one is given, so the file also feeds FlagEmbedding's own trainer.

numpy only; the models come in through the index and the optional scorer.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import random
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bge_core.errors import BGEError
from bge_core.index import Mode, RerankerLike, VectorIndex, make_id, progress_enabled
from bge_core.jsonl import iter_json_objects
from bge_core.types import Hit

__all__ = [
    "DenseIndexScorer",
    "MiningError",
    "MiningQuery",
    "MiningStats",
    "PairScorer",
    "RerankerScorer",
    "TrainExample",
    "load_beir_queries",
    "load_jsonl_queries",
    "mine_hard_negatives",
    "parse_rank_range",
    "write_examples",
]

logger = logging.getLogger(__name__)


class MiningError(BGEError):
    """Bad mining input: unknown query or document ids, a malformed queries file, bad options."""


@dataclass(frozen=True)
class MiningQuery:
    """A query and its positive passages. ``pos_ids`` are corpus doc ids (BEIR input), used
    to recognise the positives among the hits; JSONL input matches positives by text."""

    qid: str
    query: str
    pos: tuple[str, ...]
    pos_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainExample:
    """One row of FlagEmbedding's fine-tuning format."""

    query: str
    pos: list[str]
    neg: list[str]
    pos_scores: list[float] | None = None
    neg_scores: list[float] | None = None
    prompt: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON object written for this row (optional keys only when set)."""
        row: dict[str, Any] = {"query": self.query, "pos": self.pos, "neg": self.neg}
        if self.pos_scores is not None:
            row["pos_scores"] = self.pos_scores
            row["neg_scores"] = self.neg_scores
        if self.prompt is not None:
            row["prompt"] = self.prompt
        return row


@dataclass
class MiningStats:
    """What mining did: rows written, negatives kept, candidates filtered as likely positives."""

    queries: int = 0
    negatives: int = 0
    short_rows: int = 0
    filtered_false_negatives: int = 0
    dropped_positives: int = 0
    examples: list[TrainExample] = field(default_factory=list)


class PairScorer(Protocol):
    """Scores passages against a query on one scale (higher is more relevant)."""

    def score(self, query: str, passages: Sequence[str]) -> list[float]: ...


class RerankerScorer:
    """A cross-encoder as the false-negative judge (sigmoid scores in 0..1)."""

    def __init__(self, reranker: RerankerLike) -> None:
        self.reranker = reranker

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """Sigmoid of the cross-encoder logits."""
        if not passages:
            return []
        out = self.reranker.score([(query, p) for p in passages], normalize=True)
        return [float(x) for x in np.asarray(out, dtype=np.float32).ravel()]


class DenseIndexScorer:
    """The index's own dense encoder as the judge: cosine of query and passage vectors (the
    teacher-embedding variant of positive-aware mining; no cross-encoder needed)."""

    def __init__(self, index: VectorIndex) -> None:
        self.index = index

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """Cosine similarity (dot product of the L2-normalised dense vectors)."""
        if not passages:
            return []
        enc = self.index.encoder
        q = enc.encode_outputs([query], query=True, dense=True, sparse=False, colbert=False).dense
        d = enc.encode_outputs(list(passages), query=False, dense=True, sparse=False, colbert=False).dense
        assert q is not None and d is not None
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
        return [float(x) for x in (d @ q[0])]


def parse_rank_range(raw: str | Sequence[int]) -> tuple[int, int]:
    """``"10-100"`` or ``(10, 100)``: candidates at 0-based ranks ``start <= r < end``."""
    if isinstance(raw, str):
        parts = raw.replace(":", "-").split("-")
        try:
            start, end = (int(p) for p in parts)
        except ValueError:
            raise MiningError(f"rank range {raw!r} is not START-END; use for example 10-100") from None
    else:
        start, end = (int(x) for x in raw)
    if start < 0 or end <= start:
        raise MiningError(f"rank range {start}-{end} is empty; use START-END with 0 <= START < END, e.g. 10-100")
    return start, end


def _read_jsonl(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    return iter_json_objects(path, MiningError)


def load_jsonl_queries(path: str | os.PathLike[str]) -> list[MiningQuery]:
    """Read ``{"query": str, "pos": [str, ...]}`` rows (optional ``"id"``); row numbers in errors."""
    file = Path(path)
    out: list[MiningQuery] = []
    for line_no, row in _read_jsonl(file):
        query, pos = row.get("query"), row.get("pos")
        if not isinstance(query, str) or not query.strip():
            raise MiningError(f'{file}:{line_no}: "query" must be a non-empty string')
        if isinstance(pos, str):
            pos = [pos]
        if not isinstance(pos, list) or not pos or not all(isinstance(p, str) and p.strip() for p in pos):
            raise MiningError(f'{file}:{line_no}: "pos" must be a non-empty list of non-empty strings')
        out.append(MiningQuery(str(row.get("id", line_no)), query, tuple(pos)))
    if not out:
        raise MiningError(f'{file}: no queries; expected JSON lines like {{"query": ..., "pos": [...]}}')
    return out


def _read_qrels(path: Path) -> dict[str, list[str]]:
    qrels: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as fh:
        for i, row in enumerate(csv.reader(fh, delimiter="\t")):
            if i == 0 and row and row[0] == "query-id":
                continue
            if not row:
                continue
            if len(row) < 3:
                raise MiningError(f"{path}:{i + 1}: expected query-id, corpus-id, score (tab-separated)")
            try:
                score = int(row[2])
            except ValueError:
                raise MiningError(f"{path}:{i + 1}: score {row[2]!r} is not an integer") from None
            if score > 0:
                qrels.setdefault(row[0], []).append(row[1])
    return qrels


def load_beir_queries(folder: str | os.PathLike[str], index: VectorIndex, *, split: str = "train") -> list[MiningQuery]:
    """Queries of ``qrels/<split>.tsv`` with their positive documents read from ``index``.

    The index must hold the corpus with the BEIR doc ids as ids (as ``bge eval`` builds it).
    Raises :class:`MiningError` naming a qrels query id missing from ``queries.jsonl`` or a
    qrels doc id missing from the index.
    """
    root = Path(folder)
    for need in ("queries.jsonl", f"qrels/{split}.tsv"):
        if not (root / need).is_file():
            raise MiningError(f"{root} is not a BEIR folder: {need} is missing (check --split)")
    qrels = _read_qrels(root / "qrels" / f"{split}.tsv")
    if not qrels:
        raise MiningError(f"{root / 'qrels' / f'{split}.tsv'} has no relevant (score > 0) pairs")
    texts: dict[str, str] = {}
    for line_no, row in _read_jsonl(root / "queries.jsonl"):
        if "_id" not in row or not isinstance(row.get("text"), str):
            raise MiningError(f'{root / "queries.jsonl"}:{line_no}: expected {{"_id": ..., "text": ...}}')
        texts[str(row["_id"])] = row["text"]
    missing = [q for q in qrels if q not in texts]
    if missing:
        raise MiningError(
            f"query id {missing[0]!r} of qrels/{split}.tsv is not in {root / 'queries.jsonl'}"
            + (f" ({len(missing)} ids missing)" if len(missing) > 1 else "")
            + "; check --split or the folder"
        )
    doc_ids = list(dict.fromkeys(d for ds in qrels.values() for d in ds))
    found: dict[str, str] = {}
    for start in range(0, len(doc_ids), 256):
        part = doc_ids[start : start + 256]
        for hit in index.get([make_id(d, "") for d in part]):
            found[str(hit.metadata.get("doc_id", hit.id))] = hit.text
    for qid, docs in qrels.items():
        for d in docs:
            if d not in found:
                raise MiningError(
                    f"doc id {d!r} (a positive of query {qid!r} in qrels/{split}.tsv) is not in the index; "
                    f"index the corpus first (bge eval {root} --store ...), or use the same --collection"
                )
    return [MiningQuery(qid, texts[qid], tuple(found[d] for d in docs), tuple(docs)) for qid, docs in qrels.items()]


def _hit_key(hit: Hit) -> str:
    return str(hit.metadata.get("doc_id", hit.id))


def _norm(text: str) -> str:
    return " ".join(text.split())


def mine_hard_negatives(
    index: VectorIndex,
    queries: Sequence[MiningQuery],
    *,
    negatives: int = 15,
    rank_range: tuple[int, int] = (10, 100),
    mode: Mode | None = None,
    seed: int = 42,
    scorer: PairScorer | None = None,
    max_neg_ratio: float = 0.95,
    prompt: str | None = None,
    show_progress: bool | None = None,
) -> MiningStats:
    """Mine ``negatives`` hard negatives per query from ``index``.

    Args:
        index: an index holding the corpus (``VectorIndex.search`` is the only search used).
        queries: the queries with their positives.
        negatives: negatives sampled per query (fewer when fewer candidates remain).
        rank_range: 0-based ranks ``[start, end)`` of the hits to sample from.
        mode: search mode (default hybrid for indexes with sparse vectors, dense otherwise).
        seed: seed of the sampling (same inputs and seed, same file).
        scorer: positive-aware false-negative filter; candidates scoring above
            ``max_neg_ratio * min(positive scores)`` are dropped, and the scores are written.
        prompt: written as each row's ``prompt`` (FlagEmbedding's per-row query instruction).
    """
    if negatives < 1:
        raise MiningError(f"negatives must be >= 1, got {negatives}")
    start, end = parse_rank_range(rank_range)
    if not 0.0 < max_neg_ratio <= 1.0 + 1e-9 and scorer is not None:
        raise MiningError(f"max_neg_ratio must be in (0, 1], got {max_neg_ratio}")
    if mode is None:
        mode = "hybrid" if index.sparse else "dense"
    if mode in ("sparse", "hybrid", "colbert") and not index.sparse:
        raise MiningError(f"mode {mode!r} needs sparse vectors, and this index has dense vectors only; use mode dense")
    rng = random.Random(seed)
    stats = MiningStats()
    from tqdm.auto import tqdm

    for q in tqdm(queries, desc="mining", unit="query", disable=not progress_enabled(show_progress)):
        hits = index.search(q.query, k=end, mode=mode)
        pos_ids = set(q.pos_ids)
        pos_texts = {_norm(p) for p in q.pos}
        seen: set[str] = set()
        cands: list[str] = []
        for hit in hits[start:end]:
            key = _hit_key(hit)
            if key in seen:
                continue
            seen.add(key)
            if key in pos_ids or _norm(hit.text) in pos_texts:
                stats.dropped_positives += 1
                continue
            cands.append(hit.text)
        pos_scores: list[float] | None = None
        cand_scores: list[float] | None = None
        if scorer is not None:
            scores = scorer.score(q.query, list(q.pos) + cands)
            pos_scores, cand_scores = scores[: len(q.pos)], scores[len(q.pos) :]
            limit = max_neg_ratio * min(pos_scores)
            kept = [(c, s) for c, s in zip(cands, cand_scores) if s < limit]
            stats.filtered_false_negatives += len(cands) - len(kept)
            cands, cand_scores = [c for c, _ in kept], [s for _, s in kept]
        picked = sorted(rng.sample(range(len(cands)), min(negatives, len(cands))))
        if len(picked) < negatives:
            stats.short_rows += 1
        stats.examples.append(
            TrainExample(
                query=q.query,
                pos=list(q.pos),
                neg=[cands[i] for i in picked],
                pos_scores=pos_scores,
                neg_scores=None if cand_scores is None else [cand_scores[i] for i in picked],
                prompt=prompt,
            )
        )
        stats.negatives += len(picked)
    stats.queries = len(stats.examples)
    if stats.short_rows:
        logger.warning(
            "%d of %d queries got fewer than %d negatives (widen the rank range or lower --negatives)",
            stats.short_rows,
            stats.queries,
            negatives,
        )
    return stats


def write_examples(examples: Iterable[TrainExample], path: str | os.PathLike[str]) -> int:
    """Write rows as JSON lines atomically (a temp file renamed into place); returns the count."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    n = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for ex in examples:
                fh.write(json.dumps(ex.to_json(), ensure_ascii=False) + "\n")
                n += 1
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n
