"""Fine-tuning all-MiniLM-L6-v2 on SciFact's train claims with mined hard negatives.

Steps (each cached under .bench-cache/finetune so an interrupted run continues):
1. zero-shot: encode the 5,183 documents, index them (VectorIndex on the reference store),
   test nDCG@10 on the 300 test claims;
2. mine negatives for the 809 train claims (qrels/train.tsv) from that index through
   ``VectorIndex.search`` (dense, ranks 10-100, 15 negatives, seed 42); a second file with
   positive-aware filtering (NV-Retriever TopK-PercPos, 0.95 x the positive's score) judged
   by the zero-shot model itself (no real cross-encoder weights are available offline);
3. fine-tune per variant (in-batch negatives only; mined; mined + filtered), re-encode the
   corpus with the fine-tuned model and test nDCG@10 on the test claims (never on train).

Usage: python benchmarks/bench_finetune.py [--variants inbatch,mined,filtered] [--epochs 1]
Prints a table and writes benchmarks/results/finetune_cpu.json.

``--m3``: the BGE-M3 loss instead (FlagEmbedding's unified loss + self-distillation) on
all-MiniLM-L6-v2 + random M3 heads (``common.minilm_m3_checkpoint``; NOT BAAI's bge-m3 and not
its pretrained heads), in-batch negatives, on the CI test's sub-corpus (300 train claims; the
test claims' and those claims' positives + 700 random documents); dense, sparse and hybrid
(dense + 0.3 sparse, FlagEmbedding's ensemble weights) nDCG@10 on the 300 test claims, before
and after. Writes benchmarks/results/finetune_m3_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import CACHE, REPO, SCIFACT, minilm_dir, minilm_m3_checkpoint

from bge_core.evaluation import evaluate_run, load_beir

OUT = CACHE / "finetune"
RESULTS = REPO / "benchmarks" / "results" / "finetune_cpu.json"
ZERO_SHOT_REF = 0.6451


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _encode_part(job: tuple[str, list[str]]) -> np.ndarray:
    from bge_core import DenseEncoder

    return DenseEncoder(job[0], device="cpu", batch_size=64).encode_documents(job[1])


def corpus_vectors(model: str | Path, tag: str, texts: list[str], workers: int = 1) -> tuple[np.ndarray, float]:
    """Document vectors of ``model`` (cached as .npy), and the encode seconds (``workers``
    processes each encode a slice; on a shared machine each gets its own CPU share)."""
    path = OUT / f"docs-{tag}.npy"
    meta = OUT / f"docs-{tag}.json"
    if path.is_file() and meta.is_file():
        return np.load(path), float(json.loads(meta.read_text())["seconds"])
    start = time.perf_counter()
    if workers <= 1:
        vecs = _encode_part((str(model), texts))
    else:
        import multiprocessing as mp

        step = -(-len(texts) // workers)
        jobs = [(str(model), texts[i : i + step]) for i in range(0, len(texts), step)]
        with mp.get_context("spawn").Pool(workers) as pool:
            vecs = np.concatenate(pool.map(_encode_part, jobs))
    seconds = time.perf_counter() - start
    np.save(path, vecs)
    meta.write_text(json.dumps({"seconds": seconds}))
    return vecs, seconds


def test_ndcg(model: str | Path, doc_vecs: np.ndarray, doc_ids: list[str]) -> dict[str, float]:
    """Exact dense search (what the reference store does) of the test claims; BEIR metrics."""
    from bge_core import DenseEncoder

    test = load_beir(SCIFACT, split="test")
    qids = list(test.queries)
    q = DenseEncoder(model, device="cpu").encode_queries([test.queries[x] for x in qids])
    scores = q @ doc_vecs.T
    top = np.argsort(-scores, axis=1)[:, :100]
    run = {qid: [doc_ids[j] for j in top[i]] for i, qid in enumerate(qids)}
    return evaluate_run(run, test.qrels)


class CachedDocs:
    """A dense encoder that serves document vectors from a precomputed matrix (queries are
    encoded live): the index is built through the public API without encoding twice."""

    def __init__(self, model: str | Path, texts: list[str], vecs: np.ndarray) -> None:
        from bge_core import DenseEncoder

        self._enc = DenseEncoder(model, device="cpu")
        self._vec = {t: vecs[i] for i, t in enumerate(texts)}
        self.model_name = self._enc.model_name
        self.dim = self._enc.dim
        self.max_length = self._enc.max_length
        self.colbert_dim = 0
        self.supports_sparse = False
        self.supports_colbert = False

    def encode_outputs(
        self, texts: Any, *, query: bool, dense: bool = True, sparse: bool = False, colbert: bool = False
    ) -> Any:
        from bge_core import M3Output

        if query or any(t not in self._vec for t in texts):
            return self._enc.encode_outputs(texts, query=query)
        return M3Output(dense=np.stack([self._vec[t] for t in texts]).astype(np.float32))


def _m3_scores(model: Path, doc_texts: list[str], queries: list[str]) -> tuple[dict[str, np.ndarray], float]:
    """Exact dense, sparse and hybrid score matrices (queries x documents), and encode seconds."""
    from scipy.sparse import csr_matrix

    from bge_core import BGEM3Encoder

    enc = BGEM3Encoder(model, device="cpu", max_length=256, batch_size=64)
    start = time.perf_counter()
    docs = enc.encode(doc_texts, dense=True, sparse=True)
    seconds = time.perf_counter() - start
    qs = enc.encode(queries, dense=True, sparse=True)
    assert docs.dense is not None and qs.dense is not None

    def matrix(vectors: list[Any]) -> Any:
        width = 1 + max((int(v.indices.max()) for v in vectors if len(v.indices)), default=0)
        rows = [np.full(len(v.indices), i) for i, v in enumerate(vectors)]
        return csr_matrix(
            (
                np.concatenate([v.values for v in vectors]),
                (np.concatenate(rows), np.concatenate([v.indices for v in vectors])),
            ),
            shape=(len(vectors), width),
        )

    d_sp, q_sp = matrix(docs.sparse), matrix(qs.sparse)
    width = max(d_sp.shape[1], q_sp.shape[1])
    d_sp.resize((d_sp.shape[0], width))
    q_sp.resize((q_sp.shape[0], width))
    dense = qs.dense @ docs.dense.T
    sparse = np.asarray((q_sp @ d_sp.T).todense())
    return {"dense": dense, "sparse": sparse, "hybrid": dense + 0.3 * sparse}, seconds


def m3_main(args: argparse.Namespace) -> None:
    """The ``--m3`` measurement (see the module docstring)."""
    import random
    import resource
    import tempfile

    from bge_core.finetune import FinetuneConfig, M3Options, finetune

    variant = "dense-only" if args.m3_dense_only else "unified"
    results_file = REPO / "benchmarks" / "results" / f"finetune_m3_{variant}_cpu.json"
    test = load_beir(SCIFACT, split="test")
    train = load_beir(SCIFACT, split="train")
    rng = random.Random(0)
    train_qids = sorted(train.queries)
    rng.shuffle(train_qids)
    train_qids = train_qids[:300]
    keep = {d for q in test.qrels for d in test.qrels[q]} | {d for q in train_qids for d in train.qrels[q]}
    keep |= set(rng.sample(sorted(set(test.corpus) - keep), 700))
    doc_ids = sorted(keep)
    texts = [test.doc_text(d) for d in doc_ids]
    qids = sorted(test.queries)

    def ndcg(scores: dict[str, np.ndarray]) -> dict[str, float]:
        out = {}
        for mode, m in scores.items():
            top = np.argsort(-m, axis=1)[:, :100]
            run = {q: [doc_ids[j] for j in top[i]] for i, q in enumerate(qids)}
            out[mode] = round(evaluate_run(run, test.qrels)["ndcg@10"], 4)
        return out

    base = minilm_m3_checkpoint()
    before, enc_s = _m3_scores(base, texts, [test.queries[q] for q in qids])
    zero = ndcg(before)
    print(f"zero-shot {zero} (corpus encode {enc_s:.0f} s)", flush=True)
    work = Path(tempfile.mkdtemp(prefix="m3ft-", dir=OUT))
    rows = [{"query": train.queries[q], "pos": [train.doc_text(d) for d in train.qrels[q]]} for q in train_qids]
    (work / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cfg = FinetuneConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        group_size=1,
        learning_rate=args.lr,
        max_length=args.max_length or 128,
        seed=42,
        show_progress=False,
        m3=M3Options(unified=False, self_distill=False) if args.m3_dense_only else M3Options(),
    )
    cpu0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(resource.RUSAGE_SELF).ru_stime
    res = finetune(work / "train.jsonl", base, work / "tuned", cfg)
    cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(resource.RUSAGE_SELF).ru_stime - cpu0
    after, _ = _m3_scores(work / "tuned", texts, [test.queries[q] for q in qids])
    tuned = ndcg(after)
    load = Path("/proc/loadavg").read_text().split()[:3]
    result = {
        "cpu": cpu_name(),
        "note": "machine shared with other jobs",
        "checkpoint": "all-MiniLM-L6-v2 + random M3 heads (not BAAI bge-m3, not its heads)",
        "loss": variant,
        "docs": len(doc_ids),
        "train_claims": len(train_qids),
        "examples": res.examples,
        "steps": res.steps,
        "settings": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "max_length": cfg.max_length},
        "zero_shot": zero,
        "fine_tuned": tuned,
        "train_wall_s": round(res.train_seconds, 1),
        "train_cpu_s": round(cpu, 1),
        "loss_first_last": [res.log[0]["loss"], res.log[-1]["loss"]] if res.log else None,
        "loadavg_end": load,
    }
    results_file.parent.mkdir(parents=True, exist_ok=True)
    results_file.write_text(json.dumps(result, indent=2) + "\n")
    print("| mode | zero-shot nDCG@10 | fine-tuned nDCG@10 |")
    print("| --- | --- | --- |")
    for mode in ("dense", "sparse", "hybrid"):
        print(f"| {mode} | {zero[mode]:.4f} | {tuned[mode]:.4f} |")
    print(json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", default="inbatch,mined,filtered")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--group-size", type=int, default=2)
    ap.add_argument("--lr", type=float, default=3e-5)
    ap.add_argument(
        "--temperature", type=float, default=None, help="InfoNCE temperature (default the model's: 0.05 for MiniLM)"
    )
    ap.add_argument("--max-length", type=int, default=None, help="training token cap (default the model's, 256)")
    ap.add_argument("--workers", type=int, default=1, help="processes encoding the corpus for evaluation")
    ap.add_argument(
        "--eval-only",
        type=float,
        default=None,
        metavar="TRAIN_SECONDS",
        help="evaluate the already trained model of each variant (its training took TRAIN_SECONDS)",
    )
    ap.add_argument("--m3", action="store_true", help="the BGE-M3 loss on MiniLM + random M3 heads (see above)")
    ap.add_argument("--m3-dense-only", action="store_true", help="with --m3: the dense-only M3 loss")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    OUT.mkdir(parents=True, exist_ok=True)
    if args.m3:
        m3_main(args)
        return
    from bge_core.finetune import FinetuneConfig, finetune
    from bge_core.index import Document, VectorIndex
    from bge_core.mining import (
        DenseIndexScorer,
        load_beir_queries,
        mine_hard_negatives,
        write_examples,
    )
    from bge_core.reference import InMemoryStore

    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results["cpu"] = cpu_name()
    results["note"] = "machine shared with other jobs (load average noted per variant)"
    results["settings"] = {
        k: getattr(args, k) for k in ("epochs", "batch_size", "group_size", "lr", "temperature", "max_length")
    }
    base = minilm_dir()
    data = load_beir(SCIFACT, split="test")
    doc_ids = list(data.corpus)
    texts = [data.doc_text(d) for d in doc_ids]

    def save() -> None:
        # Merge: variants may run as parallel processes, each adding its own keys.
        merged = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
        merged.update(results)
        tmp = RESULTS.with_suffix(".tmp")
        tmp.write_text(json.dumps(merged, indent=2) + "\n")
        tmp.replace(RESULTS)

    # 1. zero-shot
    vecs, enc_s = corpus_vectors(base, "zeroshot", texts)
    if "zeroshot" not in results:
        results["zeroshot"] = {"metrics": test_ndcg(base, vecs, doc_ids), "encode_s": enc_s}
        save()
    print(f"zero-shot nDCG@10 {results['zeroshot']['metrics']['ndcg@10']:.4f} (corpus encode {enc_s:.0f} s)")

    # 2. mining (in-batch training needs only the (claim, positive) pairs)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    mined, filtered, pairs = OUT / "train_mined.jsonl", OUT / "train_filtered.jsonl", OUT / "train_pairs.jsonl"
    if not pairs.is_file():
        from bge_core.mining import TrainExample

        train = load_beir(SCIFACT, split="train")
        write_examples(
            [
                TrainExample(train.queries[q], [train.doc_text(d) for d, g in rel.items() if g > 0], [])
                for q, rel in train.qrels.items()
            ],
            pairs,
        )
    needed = {"mined": [mined], "filtered": [mined, filtered]}
    if any(not f.is_file() for v in variants for f in needed.get(v, [])):
        index = VectorIndex(InMemoryStore(), CachedDocs(base, texts, vecs), show_progress=False)  # type: ignore[arg-type]
        index.add_documents((Document(t, {"doc_id": d}, d) for d, t in zip(doc_ids, texts)), total=len(texts))
        queries = load_beir_queries(SCIFACT, index, split="train")
        start = time.perf_counter()
        plain = mine_hard_negatives(index, queries, negatives=15, rank_range=(10, 100), seed=42)
        t_plain = time.perf_counter() - start
        write_examples(plain.examples, mined)
        start = time.perf_counter()
        aware = mine_hard_negatives(
            index,
            queries,
            negatives=15,
            rank_range=(10, 100),
            seed=42,
            scorer=DenseIndexScorer(index),
            max_neg_ratio=0.95,
        )
        t_aware = time.perf_counter() - start
        write_examples(aware.examples, filtered)
        results["mining"] = {
            "queries": plain.queries,
            "mined_s": t_plain,
            "filtered_s": t_aware,
            "negatives": plain.negatives,
            "filtered_negatives": aware.negatives,
            "dropped_as_false_negatives": aware.filtered_false_negatives,
            "short_rows_filtered": aware.short_rows,
        }
        save()
    print("mining:", results.get("mining"))
    filtered_nonempty = OUT / "train_filtered_nonempty.jsonl"
    if filtered.is_file() and not filtered_nonempty.is_file():
        with open(filtered, encoding="utf-8") as src, open(filtered_nonempty, "w", encoding="utf-8") as dst:
            dst.writelines(line for line in src if json.loads(line)["neg"])

    # 3. variants
    plan = {
        "inbatch": (pairs, 1),
        "mined": (mined, args.group_size),
        # Queries whose positive the zero-shot model ranks low lose every candidate to the
        # filter; they are left out (FlagEmbedding would pad with random corpus negatives).
        "filtered": (filtered_nonempty, args.group_size),
    }
    for name in variants:
        if name in results and results[name].get("settings") == results["settings"]:
            continue
        file, group = plan[name]
        out = OUT / f"model-{name}"
        resume = (out / "bge_finetune.json").is_file() and not (out / "modules.json").is_file()
        if (out / "modules.json").is_file() and args.eval_only is None:
            import shutil

            shutil.rmtree(out)
            resume = False
        if args.eval_only is not None:
            tag = f"{name}-{time.strftime('%H%M%S')}"
            v, enc_s = corpus_vectors(out, tag, texts, args.workers)
            metrics = test_ndcg(out, v, doc_ids)
            results[name] = {
                "metrics": metrics,
                "train_s": args.eval_only,
                "encode_s": enc_s,
                "group_size": group,
                "settings": results["settings"],
                "encode_workers": args.workers,
            }
            save()
            print(f"{name}: nDCG@10 {metrics['ndcg@10']:.4f}")
            continue
        cfg = FinetuneConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            group_size=group,
            learning_rate=args.lr,
            temperature=args.temperature,
            seed=42,
            max_length=args.max_length,
            show_progress=False,
            logging_steps=5,
        )
        load_before = Path("/proc/loadavg").read_text().split()[0]
        res = finetune(file, base, out, cfg, resume=resume)
        tag = f"{name}-{time.strftime('%H%M%S')}"
        v, enc_s = corpus_vectors(out, tag, texts)
        metrics = test_ndcg(out, v, doc_ids)
        results[name] = {
            "metrics": metrics,
            "train_s": res.train_seconds,
            "steps": res.steps,
            "examples": res.examples,
            "final_loss": res.final_loss,
            "encode_s": enc_s,
            "group_size": group,
            "settings": results["settings"],
            "load_average_at_start": float(load_before),
        }
        save()
        print(f"{name}: nDCG@10 {metrics['ndcg@10']:.4f}, train {res.train_seconds:.0f} s, re-encode {enc_s:.0f} s")

    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else results
    print(f"\nSciFact test (300 claims), all-MiniLM-L6-v2, {results['cpu']}, machine shared")
    print(f"{'variant':<34}{'nDCG@10':>9}{'R@100':>8}{'train s':>9}")
    labels = {
        "zeroshot": "zero-shot",
        "inbatch": "in-batch negatives only",
        "mined": "mined hard negatives",
        "filtered": "mined + positive-aware filter",
    }
    for key, label in labels.items():
        if key not in results:
            print(f"{label:<34}{'not run':>9}")
            continue
        m = results[key]["metrics"]
        print(f"{label:<34}{m['ndcg@10']:>9.4f}{m['recall@100']:>8.4f}{results[key].get('train_s', 0):>9.0f}")


if __name__ == "__main__":
    main()
