"""``bge mine`` (hard negatives from an index) and ``bge finetune`` (contrastive training).

Registered on the ``bge`` parser by :func:`add_train_commands`; the bodies call the Python
API in :mod:`bge_core.mining` and :mod:`bge_core.finetune`.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

from bge_core.cli.arguments import positive_int
from bge_core.errors import BGEError, IndexSettingsMismatchError

__all__ = ["add_train_commands", "cmd_finetune", "cmd_mine"]

logger = logging.getLogger(__name__)


def _ratio(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {raw!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {raw!r}")
    return value


def _weights(raw: str) -> tuple[float, float, float]:
    parts = raw.split(",")
    try:
        values = tuple(float(x) for x in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or any(not v >= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected 3 numbers >= 0 as DENSE,SPARSE,COLBERT (e.g. 1,0.1,1), got {raw!r}")
    return values[0], values[1], values[2]


def add_train_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``mine`` and ``finetune`` to the ``bge`` sub-command parsers."""
    p = sub.add_parser(
        "mine",
        parents=[common],
        help="mine hard negatives from an index into a training file",
        description="Search the index for each query, sample negatives from a rank range (positives "
        "dropped, optionally likely false negatives too) and write FlagEmbedding's fine-tuning format: "
        'JSON lines {"query", "pos", "neg"}.',
    )
    p.add_argument(
        "queries",
        metavar="QUERIES",
        help="a BEIR folder (queries.jsonl + qrels/<split>.tsv; the "
        'corpus must be indexed, e.g. by bge eval) or a JSONL file of {"query", "pos": [...]} rows',
    )
    p.add_argument("--out", required=True, help="training file to write (JSON lines)")
    p.add_argument("--split", default="train", help="qrels split of a BEIR folder (default train)")
    p.add_argument("--collection", default=None, help="collection (default beir_<folder> for a BEIR folder, else bge)")
    p.add_argument(
        "--model", default=None, help="model the index must have been built with (default: the recorded one)"
    )
    p.add_argument(
        "--mode",
        choices=["dense", "sparse", "hybrid", "colbert"],
        default=None,
        help="search mode (default hybrid for BGE-M3 indexes, dense otherwise)",
    )
    p.add_argument(
        "--range",
        dest="rank_range",
        default="10-100",
        help="0-based rank range START-END to sample negatives from (default 10-100)",
    )
    p.add_argument("--negatives", type=positive_int, default=15, help="negatives per query (default 15)")
    p.add_argument("--seed", type=int, default=42, help="sampling seed (default 42)")
    p.add_argument(
        "--rerank",
        metavar="MODEL",
        default=None,
        help="cross-encoder that judges false negatives (positive-aware filtering); its scores are written",
    )
    p.add_argument(
        "--positive-aware",
        action="store_true",
        help="positive-aware filtering judged by the index's own dense model (no cross-encoder)",
    )
    p.add_argument(
        "--max-neg-ratio",
        type=_ratio,
        default=0.95,
        help="with --rerank / --positive-aware: drop negatives scoring above this fraction of the "
        "positive's score (default 0.95, NV-Retriever's TopK-PercPos)",
    )
    p.add_argument("--prompt", default=None, help="write this query instruction as each row's prompt")
    p.set_defaults(func=cmd_mine)

    train_common = argparse.ArgumentParser(add_help=False)
    train_common.add_argument("-v", "--verbose", action="count", default=0, help="more logging; tracebacks on errors")
    p = sub.add_parser(
        "finetune",
        parents=[train_common],
        help="fine-tune an embedding model (dense or BGE-M3) on a training file",
        description="Contrastive fine-tuning (InfoNCE with in-batch and hard negatives) of a dense BGE or "
        "sentence-transformers model on FlagEmbedding-format JSON lines. A BGE-M3 checkpoint (sparse and "
        "ColBERT heads) trains with FlagEmbedding's unified loss (dense + sparse + ColBERT + their ensemble) "
        "and self-distillation from the ensemble. Checkpoints after each epoch; "
        "--resume continues an interrupted run. Needs: pip install 'bge-integrations[train]'.",
    )
    p.add_argument(
        "train_file", metavar="TRAIN_JSONL", help='JSON lines {"query", "pos", "neg"} (bge mine writes them)'
    )
    p.add_argument(
        "--model",
        required=True,
        help="model id or folder, e.g. BAAI/bge-small-en-v1.5 (dense) or a BGE-M3 folder (M3 loss, chosen by its heads)",
    )
    p.add_argument("--out", required=True, help="output folder (the model, and checkpoints/)")
    p.add_argument("--epochs", type=positive_int, default=1, help="epochs (default 1)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="queries per batch (default 32)")
    p.add_argument(
        "--group-size",
        type=positive_int,
        default=2,
        help="passages per query: 1 positive + N-1 hard negatives; 1 = in-batch negatives only (default 2)",
    )
    p.add_argument("--lr", type=float, default=2e-5, help="learning rate (default 2e-5)")
    p.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="InfoNCE temperature (default the model's own: 0.02 for BGE / CLS pooling and BGE-M3, "
        "0.05 for sentence-transformers mean-pooling models such as all-MiniLM-L6-v2)",
    )
    p.add_argument(
        "--max-length", type=positive_int, default=None, help="token cap (default the model's; 512 for BGE-M3)"
    )
    p.add_argument(
        "--query-instruction",
        default=None,
        help="prefix of queries (default: the model's known instruction; '' for none)",
    )
    p.add_argument("--seed", type=int, default=42, help="seed (default 42)")
    p.add_argument(
        "--dtype",
        choices=["auto", "float32", "bfloat16"],
        default="auto",
        help="auto: bf16 where the GPU or CPU (AMX / AVX512-BF16) runs it, else fp32",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (default auto)")
    p.add_argument("--gradient-checkpointing", action="store_true", help="trade compute for memory")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last complete epoch")
    m3 = p.add_argument_group("BGE-M3 loss (FlagEmbedding's options and defaults; M3 checkpoints only)")
    m3.add_argument(
        "--dense-only",
        action="store_true",
        help="train the dense loss only (FlagEmbedding's unified_finetuning=False); the sparse and ColBERT "
        "heads are copied unchanged",
    )
    m3.add_argument(
        "--no-self-distill",
        dest="self_distill",
        action="store_false",
        help="no self-distillation from the ensemble score (FlagEmbedding's use_self_distill=False)",
    )
    m3.add_argument(
        "--self-distill-start-step",
        type=int,
        default=0,
        help="self-distillation starts after this step (default 0, FlagEmbedding's BGE-M3 recipe)",
    )
    m3.add_argument(
        "--fix-encoder",
        action="store_true",
        help="train the sparse and ColBERT heads only (FlagEmbedding's fix_encoder)",
    )
    m3.add_argument(
        "--loss-weights",
        type=_weights,
        default=(1.0, 0.1, 1.0),
        metavar="D,S,C",
        help="weights of the dense, sparse and ColBERT loss terms (default 1,0.1,1 as FlagEmbedding)",
    )
    m3.add_argument(
        "--ensemble-weights",
        type=_weights,
        default=(1.0, 0.3, 1.0),
        metavar="D,S,C",
        help="weights of dense, sparse and ColBERT in the ensemble score (default 1,0.3,1 as FlagEmbedding)",
    )
    p.add_argument(
        "--no-progress",
        dest="progress",
        action="store_const",
        const=False,
        default=None,
        help="no progress bar (default: shown when stderr is a terminal)",
    )
    p.set_defaults(func=cmd_finetune)


def _beir_collection(folder: str) -> str:
    # The name bge eval gives a BEIR folder's collection.
    name = re.sub(r"[^A-Za-z0-9_]", "_", Path(folder).resolve().name).strip("_").lower() or "corpus"
    return f"beir_{name}"


def cmd_mine(args: argparse.Namespace) -> int:
    """``bge mine QUERIES --store URI --out FILE``."""
    from bge_core.cli.encoders import load_encoder, same_model
    from bge_core.cli.stores import open_store
    from bge_core.index import VectorIndex, close_store
    from bge_core.mining import (
        DenseIndexScorer,
        PairScorer,
        RerankerScorer,
        load_beir_queries,
        load_jsonl_queries,
        mine_hard_negatives,
        parse_rank_range,
        write_examples,
    )
    from bge_core.uris import redact_uri

    source = Path(args.queries)
    beir = source.is_dir()
    if not beir and not source.is_file():
        raise BGEError(f"{source} is neither a BEIR folder nor a JSONL file of queries")
    rank_range = parse_rank_range(args.rank_range)
    if args.rerank and args.positive_aware:
        raise BGEError("--rerank and --positive-aware both choose the false-negative judge; give one")
    if args.positive_aware and args.mode not in (None, "dense"):
        raise BGEError("--positive-aware judges with dense scores; use --mode dense or --rerank MODEL")
    queries = None if beir else load_jsonl_queries(source)
    collection = args.collection or (_beir_collection(str(source)) if beir else "bge")
    where = f"the index {redact_uri(args.store)} (collection {collection!r})"
    probe = open_store(args.store, collection=collection)
    try:
        recorded = probe.read_settings()
        if recorded is None or not recorded.get("model"):
            raise BGEError(f"{where} holds no bge index; build it first (bge eval BEIR_DIR / bge index SOURCE)")
        model = str(recorded["model"])
        if args.model and not same_model(args.model, model):
            raise IndexSettingsMismatchError(
                f"{where} was built with model {model!r}, not {args.model!r}: mine with the model the index "
                "was built with (drop --model), or index the corpus with your model first"
            )
        encoder = load_encoder(model, device=args.device, dtype=args.dtype)
        outputs = [str(x) for x in recorded.get("outputs", ["dense"])]
        index = VectorIndex(
            probe,
            encoder,
            dense=True,
            sparse="sparse" in outputs,
            colbert="colbert" in outputs,
            show_progress=args.progress,
        )
        if beir:
            queries = load_beir_queries(source, index, split=args.split)
        assert queries is not None
        scorer: PairScorer | None = None
        if args.rerank:
            from bge_core.reranker import Reranker

            scorer = RerankerScorer(Reranker(args.rerank, device=args.device, dtype=args.dtype))
        elif args.positive_aware:
            scorer = DenseIndexScorer(index)
        stats = mine_hard_negatives(
            index,
            queries,
            negatives=args.negatives,
            rank_range=rank_range,
            mode=args.mode,
            seed=args.seed,
            scorer=scorer,
            max_neg_ratio=args.max_neg_ratio,
            prompt=args.prompt,
            show_progress=args.progress,
        )
    finally:
        close_store(probe)
    n = write_examples(stats.examples, args.out)
    out = getattr(args, "stdout", None) or sys.stdout
    extra = f", {stats.filtered_false_negatives} likely false negatives dropped" if scorer is not None else ""
    print(f"wrote {n} rows, {stats.negatives} negatives to {args.out}{extra}", file=out)
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    """``bge finetune TRAIN_JSONL --model M --out DIR``."""
    from bge_core.finetune import FinetuneConfig, M3Options, finetune

    m3 = M3Options(
        unified=not args.dense_only,
        # --dense-only has no ensemble to distil from.
        self_distill=args.self_distill and not args.dense_only,
        self_distill_start_step=args.self_distill_start_step,
        fix_encoder=args.fix_encoder,
        loss_weights=args.loss_weights,
        ensemble_weights=args.ensemble_weights,
    )
    cfg = FinetuneConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        group_size=args.group_size,
        learning_rate=args.lr,
        temperature=args.temperature,
        max_length=args.max_length,
        seed=args.seed,
        dtype=args.dtype,
        device=args.device,
        gradient_checkpointing=args.gradient_checkpointing,
        query_instruction=args.query_instruction,
        show_progress=args.progress,
        m3=m3,
    )
    try:
        result = finetune(args.train_file, args.model, args.out, cfg, resume=args.resume)
    except KeyboardInterrupt:
        print(
            f"bge: completed epochs are kept in {args.out}/checkpoints; continue with the same command and --resume",
            file=sys.stderr,
        )
        raise
    out = getattr(args, "stdout", None) or sys.stdout
    loss = "n/a" if result.final_loss is None else f"{result.final_loss:.4f}"
    print(
        json.dumps(
            {
                "out": str(result.output_dir),
                "steps": result.steps,
                "examples": result.examples,
                "train_seconds": round(result.train_seconds, 1),
                "final_loss": loss,
            }
        ),
        file=out,
    )
    return 0
