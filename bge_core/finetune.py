"""Contrastive fine-tuning of BGE / sentence-transformers models (and BGE-M3) on mined hard negatives.

Built on sentence-transformers' ``SentenceTransformerTrainer`` (itself the transformers
``Trainer``) with ``MultipleNegativesRankingLoss``: InfoNCE over each query's positive, its
hard negatives and every other passage of the batch (in-batch negatives), on cosine scores
with ``scale = 1 / temperature`` (by default the temperature the model was trained with:
0.02 for BGE, FlagEmbedding's; 0.05 for sentence-transformers models). The library brings
what a home-made loop would re-implement and get wrong: a batch sampler that keeps duplicate
passages out of a batch (a duplicate would be a false in-batch negative), bf16 autocast,
gradient checkpointing, warmup/linear decay, RNG-state checkpoints for exact resumes, and a
save format that ``DenseEncoder`` and ``SentenceTransformer`` both load as is.

What this module adds: validation of the training file before anything loads (row numbers
in errors), the query instruction, the group size (1 positive + ``group_size - 1`` hard
negatives per query, FlagEmbedding's ``train_group_size``), seeded sampling, epoch
checkpoints marked complete only after they are fully written (``--resume`` uses the last
complete one), and an atomic final save.

BGE-M3 checkpoints (recognised by their ``colbert_linear`` / ``sparse_linear`` heads) train
with FlagEmbedding's unified loss and self-distillation instead, on the transformers
``Trainer``: :mod:`bge_core.finetune_m3`, options in :class:`M3Options`. Validation, the
recorded options, epoch checkpoints and ``--resume`` are shared.

torch, transformers and sentence-transformers are imported when training starts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from bge_core.errors import BGEError, MissingDependencyError
from bge_core.index import progress_enabled
from bge_core.jsonl import iter_json_objects

__all__ = [
    "COMPLETE_MARKER",
    "FinetuneConfig",
    "FinetuneResult",
    "M3Options",
    "TrainingDataError",
    "TrainingRow",
    "build_training_columns",
    "default_temperature",
    "finetune",
    "last_complete_checkpoint",
    "read_training_file",
]

logger = logging.getLogger(__name__)

#: Written (atomically) into an epoch checkpoint once it is complete.
COMPLETE_MARKER = "bge_checkpoint_complete.json"
CONFIG_FILE = "bge_finetune.json"
#: Default temperatures: BGE (CLS pooling; FlagEmbedding's) and sentence-transformers models
#: (mean pooling; trained with MultipleNegativesRankingLoss at scale 20).
BGE_TEMPERATURE = 0.02
SENTENCE_TRANSFORMERS_TEMPERATURE = 0.05
#: BGE-M3 training token cap unless ``max_length`` is set (the model's own is 8192).
M3_DEFAULT_MAX_LENGTH = 512
_UNSET: Any = object()


class TrainingDataError(BGEError):
    """The training file or options are unusable (the message names the row)."""


@dataclass(frozen=True)
class TrainingRow:
    """One ``{"query", "pos", "neg"}`` row (``prompt`` optional); ``line`` is its line number."""

    line: int
    query: str
    pos: tuple[str, ...]
    neg: tuple[str, ...]
    prompt: str | None = None


@dataclass(frozen=True)
class M3Options:
    """BGE-M3 training switches and loss weights (FlagEmbedding's; used for M3 checkpoints only).

    Defaults are FlagEmbedding's BGE-M3 recipe (its fine-tuning example for ``BAAI/bge-m3``:
    ``--unified_finetuning True --use_self_distill True --self_distill_start_step 0
    --fix_encoder False``) and the weights its loss hard-codes.

    ``unified``: train the sparse and ColBERT heads too (FlagEmbedding's
    ``unified_finetuning``); ``False`` trains the dense loss only and copies the heads
    unchanged. ``self_distill``: distil the ensemble score into each of the three
    (``use_self_distill``), from the step after ``self_distill_start_step``.
    ``fix_encoder``: train the heads only. ``loss_weights``: (dense, sparse, colbert) weights of
    the InfoNCE and distillation terms (FlagEmbedding: 1, 0.1, 1). ``ensemble_weights``:
    (dense, sparse, colbert) weights of the ensemble score (FlagEmbedding: 1, 0.3, 1).
    """

    unified: bool = True
    self_distill: bool = True
    self_distill_start_step: int = 0
    fix_encoder: bool = False
    loss_weights: tuple[float, float, float] = (1.0, 0.1, 1.0)
    ensemble_weights: tuple[float, float, float] = (1.0, 0.3, 1.0)

    def problems(self) -> list[str]:
        """What is wrong with these options (empty when they are usable)."""
        out = []
        for name in ("loss_weights", "ensemble_weights"):
            w = tuple(getattr(self, name))
            if len(w) != 3 or not all(isinstance(x, (int, float)) and math.isfinite(x) and x >= 0 for x in w):
                out.append(f"{name} must be 3 finite numbers >= 0 (dense, sparse, colbert), got {w}")
        if self.self_distill and not self.unified:
            out.append("self-distillation needs the unified loss (the ensemble is its teacher); drop one of them")
        if self.fix_encoder and not self.unified:
            out.append("fix_encoder trains the heads only, which the dense-only loss does not use: nothing would train")
        return out


@dataclass(frozen=True)
class FinetuneConfig:
    """Training options.

    ``group_size``: passages per query, 1 positive + ``group_size - 1`` hard negatives
    (1 = in-batch negatives only). ``temperature``: InfoNCE temperature on cosine scores;
    ``None`` (default) takes the model's own training temperature: 0.02 for CLS-pooling (BGE)
    models, as FlagEmbedding trains them, 0.05 (scale 20, ``MultipleNegativesRankingLoss``'s
    default) for mean-pooling sentence-transformers models such as all-MiniLM-L6-v2. On
    SciFact, MiniLM at 0.02 lost nDCG@10 where 0.05 gained (BENCHMARKS.md section 9).
    ``query_instruction``: prefix of queries (default: the model's known instruction, or a
    row's ``prompt``). ``dtype``: ``auto`` is bf16 where the GPU or CPU (AMX / AVX512-BF16)
    runs it natively, fp32 otherwise. ``m3``: the loss options of BGE-M3 checkpoints
    (:class:`M3Options`; FlagEmbedding's defaults); a dense model refuses non-default ones.
    """

    epochs: int = 1
    batch_size: int = 32
    group_size: int = 2
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    temperature: float | None = None
    max_length: int | None = None
    seed: int = 42
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    device: str = "auto"
    gradient_checkpointing: bool = False
    query_instruction: str | None = None
    logging_steps: int = 10
    show_progress: bool | None = None
    max_steps: int = -1
    m3: M3Options = field(default_factory=M3Options)

    def check(self) -> None:
        """Raise :class:`TrainingDataError` on out-of-range values."""
        if self.epochs < 1 or self.batch_size < 2:
            raise TrainingDataError("epochs must be >= 1 and batch size >= 2 (in-batch negatives need 2 queries)")
        if self.group_size < 1:
            raise TrainingDataError(f"group size must be >= 1 (1 positive + N-1 negatives), got {self.group_size}")
        if self.temperature is not None and not 0.0 < self.temperature <= 1.0:
            raise TrainingDataError(f"temperature must be in (0, 1], got {self.temperature}")
        if self.dtype not in ("auto", "float32", "bfloat16"):
            raise TrainingDataError(f"dtype {self.dtype!r}: use auto, float32 or bfloat16")
        problems = self.m3.problems()
        if problems:
            raise TrainingDataError("BGE-M3 options: " + "; ".join(problems))


@dataclass
class FinetuneResult:
    """Where the model went and what training did."""

    output_dir: Path
    steps: int
    epochs: int
    train_seconds: float
    final_loss: float | None
    examples: int
    resumed_from: Path | None = None
    log: list[dict[str, float]] = field(default_factory=list)


# -- data ------------------------------------------------------------------------------------------
def _strings(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value):
        return tuple(value)
    return None


def read_training_file(path: str | os.PathLike[str]) -> list[TrainingRow]:
    """Read and validate a FlagEmbedding-format JSONL file; errors name the line."""
    file = Path(path)
    if not file.is_file():
        raise TrainingDataError(f"training file {file} does not exist; create it with: bge mine ... --out {file}")
    rows: list[TrainingRow] = []
    for line_no, row in iter_json_objects(file, TrainingDataError):
        query = row.get("query")
        if not isinstance(query, str) or not query.strip():
            raise TrainingDataError(f'{file}:{line_no}: "query" must be a non-empty string')
        pos = _strings(row.get("pos"))
        if not pos:
            raise TrainingDataError(f'{file}:{line_no}: "pos" must be a non-empty list of non-empty strings')
        neg = _strings(row.get("neg", []))
        if neg is None:
            raise TrainingDataError(f'{file}:{line_no}: "neg" must be a list of non-empty strings')
        prompt = row.get("prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise TrainingDataError(f'{file}:{line_no}: "prompt" must be a string')
        rows.append(TrainingRow(line_no, query, pos, neg, prompt))
    if not rows:
        raise TrainingDataError(f'training file {file} is empty; expected JSON lines {{"query", "pos", "neg"}}')
    return rows


def build_training_columns(
    rows: Sequence[TrainingRow], *, group_size: int, seed: int, query_instruction: str = ""
) -> dict[str, list[str]]:
    """Columns for the trainer: ``anchor``, ``positive``, ``negative_1``..``negative_{g-1}``.

    One example per (query, positive) pair; each draws ``group_size - 1`` of its row's
    negatives with a generator seeded by ``seed``. Raises :class:`TrainingDataError` naming
    the first row with fewer negatives than the group needs.
    """
    need = group_size - 1
    for r in rows:
        if len(r.neg) < need:
            raise TrainingDataError(
                f"line {r.line}: {len(r.neg)} negatives, but group size {group_size} needs {need}; "
                f"lower --group-size to at most {len(r.neg) + 1}, or mine more (bge mine --negatives)"
            )
    rng = random.Random(seed)
    cols: dict[str, list[str]] = {"anchor": [], "positive": []}
    for i in range(need):
        cols[f"negative_{i + 1}"] = []
    for r in rows:
        prefix = r.prompt if r.prompt is not None else query_instruction
        for p in r.pos:
            cols["anchor"].append(prefix + r.query)
            cols["positive"].append(p)
            for i, n in enumerate(rng.sample(list(r.neg), need)):
                cols[f"negative_{i + 1}"].append(n)
    return cols


# -- checkpoints ------------------------------------------------------------------------------------
def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _checkpoints(folder: Path) -> list[tuple[int, Path]]:
    out = []
    if folder.is_dir():
        for p in folder.iterdir():
            if p.is_dir() and p.name.startswith("checkpoint-") and p.name[11:].isdigit():
                out.append((int(p.name[11:]), p))
    return sorted(out)


def last_complete_checkpoint(folder: str | os.PathLike[str]) -> Path | None:
    """The highest-step checkpoint under ``folder`` carrying the completion marker."""
    for _, path in reversed(_checkpoints(Path(folder))):
        if (path / COMPLETE_MARKER).is_file():
            return path
    return None


def _file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -- model -----------------------------------------------------------------------------------------
def _import_training() -> Any:
    try:
        import sentence_transformers
    except ImportError as exc:
        raise MissingDependencyError("sentence-transformers", "train", "bge finetune") from exc
    for pkg in ("datasets", "accelerate"):
        try:
            __import__(pkg)
        except ImportError as exc:
            raise MissingDependencyError(pkg, "train", "bge finetune") from exc
    return sentence_transformers


def _load_model(model: str, device: str) -> Any:
    """A SentenceTransformer for ``model``: its own layout when it has one, else BGE's recipe
    (CLS or the registry's pooling, L2 normalisation), the same choice ``DenseEncoder`` makes."""
    st = _import_training()
    from bge_core.loading import resolve_model_dir
    from bge_core.models import model_info

    folder = resolve_model_dir(model)
    if (folder / "modules.json").is_file():
        m = st.SentenceTransformer(str(folder), device=device)
    else:
        info = model_info(model)
        try:
            from sentence_transformers.sentence_transformer.modules import (
                Normalize,
                Pooling,
                Transformer,
            )
        except ImportError:  # sentence-transformers < 6
            from sentence_transformers.models import Normalize, Pooling, Transformer  # type: ignore[no-redef]
        cap = info.max_length if info else None
        tr = Transformer(str(folder), max_seq_length=cap)
        get_dim = getattr(tr, "get_embedding_dimension", None) or tr.get_word_embedding_dimension
        dim = get_dim()
        pool = Pooling(dim, pooling_mode=info.pooling if info else "cls")
        m = st.SentenceTransformer(modules=[tr, pool, Normalize()], device=device)
    return m


def default_temperature(st_model: Any) -> float:
    """The InfoNCE temperature ``st_model`` was trained with, judged by its pooling: CLS (BGE,
    FlagEmbedding's 0.02) or mean and others (sentence-transformers models, scale 20 = 0.05)."""
    for module in st_model:
        if type(module).__name__ != "Pooling":
            continue
        mode = getattr(module, "pooling_mode", None)
        if mode is None and hasattr(module, "get_pooling_mode_str"):  # sentence-transformers < 6
            mode = module.get_pooling_mode_str()
        modes = {mode} if isinstance(mode, str) else set(mode or ())
        return BGE_TEMPERATURE if modes == {"cls"} else SENTENCE_TRANSFORMERS_TEMPERATURE
    return BGE_TEMPERATURE


def _default_instruction(model: str) -> str:
    from bge_core.models import model_info

    info = model_info(model)
    return (info.query_instruction or "") if info else ""


def _use_bf16(dtype: str, device: str) -> bool:
    import torch

    from bge_core.runtime import cpu_has_native_bf16

    if dtype != "auto":
        return dtype == "bfloat16"
    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        return bool(torch.cuda.is_bf16_supported())
    return cpu_has_native_bf16()


def _training_kind(model: str) -> str:
    """``"m3"`` or ``"dense"``: which loss ``model`` trains with (a reranker is refused)."""
    from bge_core.kinds import detect_kind

    kind = detect_kind(model)
    if kind.role != "embed":
        raise TrainingDataError(
            f"{model} is a {kind.name} model ({kind.description}); bge finetune trains embedding models "
            "(dense BGE / sentence-transformers, or BGE-M3)"
        )
    return "m3" if kind.name == "m3" else "dense"


def finetune(
    train: str | os.PathLike[str] | Sequence[TrainingRow],
    model: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    config: FinetuneConfig | None = None,
    *,
    resume: bool = False,
    callbacks: Sequence[Any] = (),
) -> FinetuneResult:
    """Fine-tune the embedding model ``model`` on ``train`` and save it to ``output_dir``.

    A dense model (BGE v1.5, sentence-transformers) trains with InfoNCE over in-batch and hard
    negatives; its output folder loads with ``DenseEncoder`` and ``SentenceTransformer``. A
    BGE-M3 checkpoint (``colbert_linear`` / ``sparse_linear`` heads) trains with
    FlagEmbedding's unified loss and self-distillation (``config.m3``); its output folder
    loads with ``BGEM3Encoder`` and FlagEmbedding's ``BGEM3FlagModel``.
    ``checkpoints/checkpoint-<step>`` is written after each epoch. All input is validated
    before a model loads. A new run refuses a non-empty ``output_dir``; ``resume=True``
    continues from the last complete epoch checkpoint with the recorded options.
    ``callbacks`` are extra ``transformers.TrainerCallback`` objects.
    """
    cfg = config or FinetuneConfig()
    cfg.check()
    model = os.fspath(model)
    out = Path(output_dir)
    rows: list[TrainingRow]
    train_file: Path | None = None
    if isinstance(train, (str, os.PathLike)):
        train_file = Path(train)
        rows = read_training_file(train_file)
    else:
        rows = list(train)
    if not rows:
        raise TrainingDataError("no training rows")
    instruction = cfg.query_instruction if cfg.query_instruction is not None else _default_instruction(model)
    columns = build_training_columns(rows, group_size=cfg.group_size, seed=cfg.seed, query_instruction=instruction)
    n_examples = len(columns["anchor"])
    if n_examples < cfg.batch_size:
        raise TrainingDataError(
            f"{n_examples} training examples are fewer than one batch ({cfg.batch_size}); lower --batch-size"
        )
    kind = _training_kind(model)
    if kind == "m3":
        _check_m3_inputs(model, rows, cfg)
    elif cfg.m3 != M3Options():
        raise TrainingDataError(
            f"{model} is a dense model: the BGE-M3 loss options (dense-only, self-distillation, loss weights) "
            "apply to BGE-M3 checkpoints only; drop them"
        )
    skip = ("show_progress", "logging_steps") + (() if kind == "m3" else ("m3",))
    recorded: dict[str, Any] = {
        "model": model,
        "config": {k: v for k, v in asdict(cfg).items() if k not in skip},
        "instruction": instruction,
        "data": _file_digest(train_file)
        if train_file is not None
        else hashlib.blake2b(json.dumps(columns, sort_keys=True).encode(), digest_size=16).hexdigest(),
    }
    if kind == "m3":
        recorded["kind"] = "m3"
    recorded = json.loads(json.dumps(recorded))  # as read back (tuples become lists)
    ckpt_dir = out / "checkpoints"
    resume_from: Path | None = None
    if resume:
        cfg_file = out / CONFIG_FILE
        if not cfg_file.is_file():
            raise TrainingDataError(f"{out} holds no bge finetune run to resume; drop --resume to start one")
        before = json.loads(cfg_file.read_text(encoding="utf-8"))
        if before != recorded:
            diffs = sorted(k for k in set(before) | set(recorded) if before.get(k) != recorded.get(k))
            if "config" in diffs:
                cd = before.get("config", {})
                diffs = [d for d in diffs if d != "config"] + [
                    f"{k} ({cd.get(k)!r} before)" for k in recorded["config"] if cd.get(k) != recorded["config"][k]
                ]
            raise TrainingDataError(
                f"--resume: {out} was started with other inputs ({', '.join(diffs)}); "
                "use the same model, file and options, or a new --out"
            )
        if (out / "modules.json").is_file() or (out / "config.json").is_file():
            raise TrainingDataError(f"{out} already holds the finished model; use a new --out to train again")
        for _, path in _checkpoints(ckpt_dir):
            if not (path / COMPLETE_MARKER).is_file():
                logger.warning("removing the incomplete checkpoint %s (interrupted while saving)", path)
                shutil.rmtree(path)
        resume_from = last_complete_checkpoint(ckpt_dir)
        if resume_from is None:
            logger.warning("no complete epoch checkpoint in %s; starting from the beginning", ckpt_dir)
    else:
        if out.exists() and any(out.iterdir()):
            raise TrainingDataError(f"{out} exists and is not empty; use --resume to continue it, or a new --out")
        out.mkdir(parents=True, exist_ok=True)
        _write_atomic(out / CONFIG_FILE, json.dumps(recorded, indent=2) + "\n")

    job = _Job(cfg, model, out, ckpt_dir, columns, instruction, len(rows), resume_from, list(callbacks))
    return _train_m3(job) if kind == "m3" else _train_dense(job)


def _check_m3_inputs(model: str, rows: Sequence[TrainingRow], cfg: FinetuneConfig) -> None:
    """What BGE-M3 adds to the checks: it uses no query instruction (``BGEM3Encoder`` refuses
    one, so a model trained with one would be queried without it)."""
    if cfg.query_instruction:
        raise TrainingDataError(f"{model} is a BGE-M3 model, which uses no query instruction; drop --query-instruction")
    for r in rows:
        if r.prompt:
            raise TrainingDataError(
                f'line {r.line}: a "prompt", but {model} is a BGE-M3 model, which uses no query instruction; '
                "mine the file without --prompt"
            )


@dataclass
class _Job:
    """A validated training run."""

    cfg: FinetuneConfig
    model: str
    out: Path
    ckpt_dir: Path
    columns: dict[str, list[str]]
    instruction: str
    n_rows: int
    resume_from: Path | None
    callbacks: list[Any]

    @property
    def n_examples(self) -> int:
        return len(self.columns["anchor"])


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _training_args(cfg: FinetuneConfig, args_class: Any, output_dir: Path, device: str) -> dict[str, Any]:
    """The ``TrainingArguments`` both trainers share (dense and M3), with warmup and
    checkpointing under the names this transformers version uses."""
    import transformers

    extra: dict[str, Any] = {
        "output_dir": str(output_dir),
        "num_train_epochs": cfg.epochs,
        "max_steps": cfg.max_steps,
        "per_device_train_batch_size": cfg.batch_size,
        "learning_rate": cfg.learning_rate,
        "weight_decay": cfg.weight_decay,
        "bf16": _use_bf16(cfg.dtype, device),
        "use_cpu": device == "cpu",
        "seed": cfg.seed,
        "data_seed": cfg.seed,
        "save_strategy": "epoch",
        "logging_steps": cfg.logging_steps,
        "report_to": "none",
        "disable_tqdm": not progress_enabled(cfg.show_progress),
        "dataloader_num_workers": 0,
    }
    if int(transformers.__version__.split(".")[0]) >= 5:
        extra["warmup_steps"] = float(cfg.warmup_ratio)  # a float below 1 is a ratio there
    else:
        extra["warmup_ratio"] = cfg.warmup_ratio
    if cfg.gradient_checkpointing:
        # transformers 5 renamed the option (the old name still works, with a warning).
        names = getattr(args_class, "__dataclass_fields__", {})
        extra["activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"] = True
    return extra


def _result(job: _Job, output: Any, seconds: float, log: list[dict[str, float]]) -> FinetuneResult:
    losses = [e["loss"] for e in log if "loss" in e]
    return FinetuneResult(
        output_dir=job.out,
        steps=int(output.global_step),
        epochs=job.cfg.epochs,
        train_seconds=seconds,
        final_loss=losses[-1] if losses else None,
        examples=job.n_examples,
        resumed_from=job.resume_from,
        log=log,
    )


def _train_m3(job: _Job) -> FinetuneResult:
    """BGE-M3: FlagEmbedding's unified loss on the transformers ``Trainer`` (see
    :mod:`bge_core.finetune_m3`)."""
    for pkg in ("datasets", "accelerate", "transformers"):
        try:
            __import__(pkg)
        except ImportError as exc:
            raise MissingDependencyError(pkg, "train", "bge finetune") from exc
    import datasets
    import transformers

    from bge_core.finetune_m3 import M3Collator, load_m3_training_model, make_trainer_class
    from bge_core.loading import resolve_model_dir

    cfg = job.cfg
    transformers.set_seed(cfg.seed)
    device = _resolve_device(cfg.device)
    folder = resolve_model_dir(job.model)
    temperature = cfg.temperature if cfg.temperature is not None else BGE_TEMPERATURE
    m3_model, tokenizer = load_m3_training_model(folder, temperature=temperature, options=cfg.m3)
    positions = int(getattr(m3_model.config, "max_position_embeddings", 514) or 514) - 2
    cap = min(positions, int(tokenizer.model_max_length))
    max_length = min(cfg.max_length, cap) if cfg.max_length is not None else min(M3_DEFAULT_MAX_LENGTH, cap)
    bf16 = _use_bf16(cfg.dtype, device)
    show = progress_enabled(cfg.show_progress)
    args = transformers.TrainingArguments(
        remove_unused_columns=False,
        **_training_args(cfg, transformers.TrainingArguments, job.ckpt_dir, device),
    )
    log: list[dict[str, float]] = []
    trainer_class = make_trainer_class(folder)
    trainer = trainer_class(
        model=m3_model,
        args=args,
        train_dataset=datasets.Dataset.from_dict(job.columns),
        data_collator=M3Collator(tokenizer, max_length, cfg.group_size),
        processing_class=tokenizer,
        callbacks=[*_callbacks(log, show), *job.callbacks],
    )
    _quiet_stdout(trainer, show)
    opts = cfg.m3
    logger.info(
        "fine-tuning BGE-M3 %s: %d examples (%d rows), group size %d, batch %d, %d epoch(s), %s, temperature %g, "
        "%s loss%s, max length %d",
        job.model,
        job.n_examples,
        job.n_rows,
        cfg.group_size,
        cfg.batch_size,
        cfg.epochs,
        "bf16" if bf16 else "fp32",
        temperature,
        "unified" if opts.unified else "dense-only",
        " + self-distillation" if opts.self_distill else "",
        max_length,
    )
    started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=str(job.resume_from) if job.resume_from else None)
    seconds = time.perf_counter() - started
    _save_final_m3(m3_model, tokenizer, job.out, folder)
    return _result(job, output, seconds, log)


def _save_final_m3(m3_model: Any, tokenizer: Any, out: Path, source: Path) -> None:
    """The M3 folder into a temp folder next to the output, then moved in; ``config.json``
    (what marks the folder as a finished model) moves last."""
    from bge_core.finetune_m3 import save_m3_folder

    tmp = Path(tempfile.mkdtemp(prefix=".final-", dir=out))
    try:
        save_m3_folder(m3_model, tokenizer, tmp, source)
        _move_into(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _move_into(tmp: Path, out: Path) -> None:
    entries = sorted(tmp.iterdir(), key=lambda p: p.name in ("modules.json", "config.json"))
    for entry in entries:
        target = out / entry.name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(entry, target)


def _train_dense(job: _Job) -> FinetuneResult:
    """Dense models: sentence-transformers' trainer and ``MultipleNegativesRankingLoss``."""
    cfg, model, out, ckpt_dir, columns = job.cfg, job.model, job.out, job.ckpt_dir, job.columns
    n_examples, callbacks, resume_from, instruction = job.n_examples, job.callbacks, job.resume_from, job.instruction
    _import_training()
    import datasets
    import transformers
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )

    try:
        from sentence_transformers.sentence_transformer.losses import (
            MultipleNegativesRankingLoss,
        )
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.losses import MultipleNegativesRankingLoss  # type: ignore[no-redef]
    from sentence_transformers.training_args import BatchSamplers

    transformers.set_seed(cfg.seed)
    device = _resolve_device(cfg.device)
    st_model = _load_model(model, device)
    model_max_length = st_model.max_seq_length
    if cfg.max_length is not None:
        # A training-time cap (speed); the saved model keeps the model's own cap.
        st_model.max_seq_length = cfg.max_length
    if instruction:
        # Recorded for SentenceTransformer users: model.encode(q, prompt_name="query").
        st_model.prompts = {"query": instruction, "document": ""}
    temperature = cfg.temperature if cfg.temperature is not None else default_temperature(st_model)
    loss = MultipleNegativesRankingLoss(st_model, scale=1.0 / temperature)
    dataset = datasets.Dataset.from_dict(columns)
    bf16 = _use_bf16(cfg.dtype, device)
    show = progress_enabled(cfg.show_progress)
    args = SentenceTransformerTrainingArguments(
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        **_training_args(cfg, SentenceTransformerTrainingArguments, ckpt_dir, device),
    )
    log: list[dict[str, float]] = []
    trainer = SentenceTransformerTrainer(
        model=st_model,
        args=args,
        train_dataset=dataset,
        loss=loss,
        callbacks=[*_callbacks(log, show), *callbacks],
    )
    _quiet_stdout(trainer, show)
    logger.info(
        "fine-tuning %s: %d examples (%d rows), group size %d, batch %d, %d epoch(s), %s, temperature %g",
        model,
        n_examples,
        job.n_rows,
        cfg.group_size,
        cfg.batch_size,
        cfg.epochs,
        "bf16" if bf16 else "fp32",
        temperature,
    )
    started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    seconds = time.perf_counter() - started
    st_model.max_seq_length = model_max_length
    _save_final(st_model, out)
    return _result(job, output, seconds, log)


def _save_final(st_model: Any, out: Path) -> None:
    """Save into a temp folder next to the output, then move the files in; ``modules.json``
    (what marks the folder as a finished model) moves last."""
    tmp = Path(tempfile.mkdtemp(prefix=".final-", dir=out))
    try:
        st_model.save(str(tmp))
        _legacy_pooling_config(tmp)
        _record_max_length(tmp, int(st_model.max_seq_length))
        _move_into(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _record_max_length(folder: Path, max_length: int) -> None:
    """Write ``max_seq_length`` into ``sentence_bert_config.json`` (sentence-transformers 6
    keeps it only in the tokenizer config; older versions and ``DenseEncoder`` read this key)."""
    cfg_file = folder / "sentence_bert_config.json"
    cfg = json.loads(cfg_file.read_text(encoding="utf-8")) if cfg_file.is_file() else {}
    cfg["max_seq_length"] = max_length
    cfg_file.write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")


def _legacy_pooling_config(folder: Path) -> None:
    """Write the pooling config in the long-standing key format (``pooling_mode_mean_tokens``
    ...) that every sentence-transformers version and ``DenseEncoder`` read; version 6 writes
    a new ``pooling_mode`` key that older readers do not know."""
    modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    for module in modules:
        if "Pooling" not in str(module.get("type", "")):
            continue
        cfg_file = folder / str(module.get("path", "1_Pooling")) / "config.json"
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
        if "pooling_mode" not in cfg:
            continue
        modes = cfg["pooling_mode"]
        modes = {modes} if isinstance(modes, str) else set(modes)
        legacy = {
            "word_embedding_dimension": cfg.get("embedding_dimension", cfg.get("word_embedding_dimension")),
            "pooling_mode_cls_token": "cls" in modes,
            "pooling_mode_mean_tokens": "mean" in modes,
            "pooling_mode_max_tokens": "max" in modes,
            "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens" in modes,
            "include_prompt": bool(cfg.get("include_prompt", True)),
        }
        cfg_file.write_text(json.dumps(legacy, indent=2) + "\n", encoding="utf-8")


def _quiet_stdout(trainer: Any, show: bool) -> None:
    """The Trainer prints each log dict on stdout (PrinterCallback, or tqdm.write of
    ProgressCallback); a library keeps stdout for the caller: the loss goes to the bar's
    postfix and to ``logging`` instead."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if not show:
        return

    class BarWithLoss(ProgressCallback):
        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
        ) -> None:
            bar = getattr(self, "training_bar", None)
            if bar is not None and logs and "loss" in logs:
                bar.set_postfix(loss=f"{float(logs['loss']):.4f}", refresh=False)

    trainer.add_callback(BarWithLoss())


def _callbacks(log: list[dict[str, float]], show: bool) -> list[Any]:
    """The completion marker and the progress log, as ``TrainerCallback`` objects (defined
    here so transformers is imported only when training starts)."""
    from transformers import TrainerCallback

    class MarkComplete(TrainerCallback):
        """Marks an epoch checkpoint complete once the Trainer has fully written it."""

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if path.is_dir():
                marker = {"step": state.global_step, "epoch": state.epoch}
                _write_atomic(path / COMPLETE_MARKER, json.dumps(marker) + "\n")
                logger.info("epoch %.0f checkpoint complete: %s", state.epoch or 0, path)

    class LogProgress(TrainerCallback):
        """Keeps the loss log, and logs loss and time left (the bar shows them when on)."""

        def __init__(self) -> None:
            self.started = time.perf_counter()
            self.first_step: int | None = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.started = time.perf_counter()
            self.first_step = state.global_step

        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
        ) -> None:
            if not logs or "loss" not in logs:
                return
            entry = {"step": float(state.global_step), "epoch": float(state.epoch or 0), "loss": float(logs["loss"])}
            # BGE-M3: the terms of the loss (loss_dense, loss_sparse, loss_colbert, ...).
            parts = {k: float(v) for k, v in logs.items() if k.startswith("loss_")}
            log.append({**entry, **parts})
            done = state.global_step - (self.first_step or 0)
            elapsed = time.perf_counter() - self.started
            left = elapsed / done * (state.max_steps - state.global_step) if done > 0 else float("nan")
            logger.log(
                logging.DEBUG if show else logging.INFO,
                "step %d/%d epoch %.2f loss %.4f%s, %.0f s elapsed, ~%.0f s left",
                state.global_step,
                state.max_steps,
                state.epoch or 0,
                logs["loss"],
                "".join(f" {k[5:]} {v:.4f}" for k, v in parts.items()),
                elapsed,
                left,
            )

    return [MarkComplete(), LogProgress()]
