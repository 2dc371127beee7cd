"""BGE-M3 fine-tuning: FlagEmbedding's unified loss (dense + sparse + ColBERT + ensemble) with
self-knowledge distillation from the ensemble.

The loss is FlagEmbedding 1.4.2's ``EncoderOnlyEmbedderM3Model.forward`` (in-batch negatives,
one device, no teacher scores), rewritten here:

- dense: CLS vector, L2-normalised; sparse: ``relu(sparse_linear(h))`` per token, max-pooled per
  vocabulary id, CLS/EOS/PAD/UNK ids zeroed; ColBERT: ``colbert_linear(h[:, 1:])`` masked and
  L2-normalised, query tokens' best match summed and divided by the query's token count.
  Every score is divided by the temperature; each query scores its group and every other
  passage of the batch.
- ``loss = (w_d·CE(dense) + CE(ensemble) + w_s·CE(sparse) + w_c·CE(colbert)) / 4`` with the
  ensemble ``e_d·dense + e_s·sparse + e_c·colbert``; with self-distillation (after
  ``self_distill_start_step``) the softmax of the detached ensemble teaches each score:
  ``loss = (loss + (w_d·KD(dense) + w_s·KD(sparse) + w_c·KD(colbert)) / 3) / 2``.
  FlagEmbedding hard-codes ``w = (1, 0.1, 1)`` and ``e = (1, 0.3, 1)``; here they are options
  with those defaults (:class:`bge_core.finetune.M3Options`).

One difference in how, not what: FlagEmbedding scatters sparse weights into a
``batch × length × vocabulary`` tensor (250k ids for bge-m3) before the max; here the max runs
over the ids present in the batch only (``scatter_reduce``), the same scores in far less memory.

Training runs on the transformers ``Trainer`` (optimizer, schedule, bf16 autocast, gradient
checkpointing, RNG-state checkpoints for exact resumes); checkpoints and the final folder are
in BGE-M3's layout: the transformer, ``colbert_linear.pt`` and ``sparse_linear.pt`` (plain
state dicts, ``torch.save``, as FlagEmbedding writes them), so ``BGEM3Encoder`` and
FlagEmbedding's ``BGEM3FlagModel`` load them as they are.

This module imports torch and transformers; :mod:`bge_core.finetune` imports it when an M3
training run starts.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from bge_core.encoder_base import special_token_ids
from bge_core.finetune import M3Options

__all__ = ["M3Loss", "M3Options", "M3TrainingModel", "load_m3_training_model", "save_m3_folder"]

logger = logging.getLogger(__name__)

#: Sentence-transformers files (backbone-independent configuration) copied from the source
#: checkpoint so an ST layout stays loadable as one.
_ST_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json")


@dataclass
class M3Loss:
    """One batch's loss and its parts (parts detached, for logging)."""

    loss: torch.Tensor
    parts: dict[str, float]


def _in_batch_ce(scores: torch.Tensor, group_size: int) -> torch.Tensor:
    """InfoNCE over a (queries, queries × group) score matrix; query i's positive is column i·g."""
    targets = torch.arange(scores.size(0), device=scores.device, dtype=torch.long) * group_size
    return F.cross_entropy(scores, targets)


def _kd(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    """FlagEmbedding's ``kl_div`` distillation: cross-entropy of the student against soft targets."""
    return -torch.mean(torch.sum(torch.log_softmax(student, dim=-1) * teacher, dim=-1))


class M3TrainingModel(nn.Module):
    """A BGE-M3 transformer with its two heads, and FlagEmbedding's unified training loss.

    ``forward(queries=, passages=)`` takes tokenized batches (``input_ids``,
    ``attention_mask``, ...; right padding), ``passages`` holding ``group_size`` passages per
    query (positive first), and returns ``{"loss": ...}`` as the transformers ``Trainer``
    expects. ``unused_ids`` are the token ids whose lexical weight is zeroed (FlagEmbedding:
    CLS, EOS, PAD, UNK).
    """

    def __init__(
        self,
        backbone: nn.Module,
        colbert_linear: nn.Linear,
        sparse_linear: nn.Linear,
        *,
        unused_ids: Sequence[int],
        temperature: float,
        options: M3Options | None = None,
    ) -> None:
        super().__init__()
        self.model = backbone
        self.colbert_linear = colbert_linear
        self.sparse_linear = sparse_linear
        self.options = options or M3Options()
        self.temperature = float(temperature)
        self.register_buffer("unused_ids", torch.tensor(sorted(set(unused_ids)), dtype=torch.long), persistent=False)
        self.config = getattr(backbone, "config", None)
        #: The optimizer step the next forward belongs to (the trainer sets it; self-distillation
        #: starts after ``options.self_distill_start_step``, as FlagEmbedding counts).
        self.step = 0
        self.last_parts: dict[str, float] = {}

    # -- Trainer hooks ---------------------------------------------------------------------
    def activation_checkpointing_enable(self, **kwargs: Any) -> None:
        """Activation (gradient) checkpointing of the transformer (the Trainer calls this)."""
        enable = getattr(self.model, "activation_checkpointing_enable", None)
        if enable is not None:
            enable(**kwargs)
        else:  # transformers < 5
            self.model.gradient_checkpointing_enable(  # type: ignore[operator]
                gradient_checkpointing_kwargs=kwargs.get("activation_checkpointing_kwargs")
            )

    def forward(self, queries: Mapping[str, torch.Tensor], passages: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """The training loss of one batch (``{"loss": tensor}``)."""
        result = self.compute_loss(queries, passages)
        self.last_parts = result.parts
        return {"loss": result.loss}

    # -- representations -------------------------------------------------------------------
    def _hidden(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        out = self.model(**features, return_dict=True)
        return out.last_hidden_state  # type: ignore[no-any-return]

    def _dense(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.normalize(hidden[:, 0], dim=-1)

    def _token_weights(self, hidden: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """Lexical weight of each token (0 for the unused ids), shape (batch, length)."""
        w = torch.relu(self.sparse_linear(hidden)).squeeze(-1)
        unused = torch.isin(input_ids, self.unused_ids)  # type: ignore[arg-type]
        return w.masked_fill(unused, 0.0)

    def _colbert(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        vecs = self.colbert_linear(hidden[:, 1:]) * mask[:, 1:, None].to(hidden.dtype)
        return F.normalize(vecs, dim=-1)

    # -- scores ----------------------------------------------------------------------------
    def sparse_scores(
        self, q_weights: torch.Tensor, q_ids: torch.Tensor, p_weights: torch.Tensor, p_ids: torch.Tensor
    ) -> torch.Tensor:
        """Lexical match scores of every query with every passage (before the temperature).

        Max-pools each text's token weights per id over the ids present in the batch, which
        equals FlagEmbedding's max over a full-vocabulary scatter.
        """
        ids, inverse = torch.unique(torch.cat([q_ids.reshape(-1), p_ids.reshape(-1)]), return_inverse=True)
        n_q = q_ids.numel()

        def pool(weights: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            out = torch.zeros(weights.size(0), ids.numel(), dtype=weights.dtype, device=weights.device)
            return out.scatter_reduce(1, index, weights, reduce="amax", include_self=True)

        q = pool(q_weights, inverse[:n_q].view_as(q_ids))
        p = pool(p_weights, inverse[n_q:].view_as(p_ids))
        return q @ p.T

    @staticmethod
    def colbert_scores(q_vecs: torch.Tensor, p_vecs: torch.Tensor, q_mask: torch.Tensor) -> torch.Tensor:
        """Late-interaction scores (before the temperature): each query token's best passage
        token (padding counts as a zero vector, as in FlagEmbedding), averaged over the query."""
        token = torch.einsum("qin,pjn->qipj", q_vecs, p_vecs)
        best = token.max(-1).values.sum(1)
        return best / q_mask[:, 1:].sum(-1, keepdim=True).to(best.dtype)

    def compute_loss(self, queries: Mapping[str, torch.Tensor], passages: Mapping[str, torch.Tensor]) -> M3Loss:
        """FlagEmbedding's M3 loss for one batch (see the module docstring)."""
        opts = self.options
        q_hidden, p_hidden = self._hidden(queries), self._hidden(passages)
        n_q, n_p = q_hidden.size(0), p_hidden.size(0)
        if n_p % n_q:
            raise ValueError(f"{n_p} passages for {n_q} queries: each query needs the same group size")
        group = n_p // n_q
        t = self.temperature
        dense = self._dense(q_hidden) @ self._dense(p_hidden).T / t
        dense_loss = _in_batch_ce(dense, group)
        parts = {"dense": float(dense_loss.detach())}
        if not opts.unified:
            self.step += 1
            return M3Loss(dense_loss, parts)
        sparse = (
            self.sparse_scores(
                self._token_weights(q_hidden, queries["input_ids"]),
                queries["input_ids"],
                self._token_weights(p_hidden, passages["input_ids"]),
                passages["input_ids"],
            )
            / t
        )
        q_mask = queries["attention_mask"]
        colbert = (
            self.colbert_scores(
                self._colbert(q_hidden, q_mask), self._colbert(p_hidden, passages["attention_mask"]), q_mask
            )
            / t
        )
        e_d, e_s, e_c = opts.ensemble_weights
        ensemble = e_d * dense + e_s * sparse + e_c * colbert
        w_d, w_s, w_c = opts.loss_weights
        sparse_loss, colbert_loss, ensemble_loss = (_in_batch_ce(s, group) for s in (sparse, colbert, ensemble))
        loss = (w_d * dense_loss + ensemble_loss + w_s * sparse_loss + w_c * colbert_loss) / 4
        parts.update(
            sparse=float(sparse_loss.detach()),
            colbert=float(colbert_loss.detach()),
            ensemble=float(ensemble_loss.detach()),
        )
        if opts.self_distill and self.step > opts.self_distill_start_step:
            teacher = torch.softmax(ensemble.detach(), dim=-1)
            distill = (w_d * _kd(teacher, dense) + w_s * _kd(teacher, sparse) + w_c * _kd(teacher, colbert)) / 3
            loss = (loss + distill) / 2
            parts["distill"] = float(distill.detach())
        self.step += 1
        return M3Loss(loss, parts)


def _load_backbone(folder: Path) -> Any:
    """The transformer in fp32, without the pooler where the class has one (BGE-M3 does not
    use it; a pooler missing from the checkpoint would be saved back randomly initialised)."""
    from transformers import AutoModel

    try:
        return AutoModel.from_pretrained(str(folder), dtype=torch.float32, add_pooling_layer=False)
    except TypeError:  # a model class without that option
        return AutoModel.from_pretrained(str(folder), dtype=torch.float32)


def load_m3_training_model(
    folder: str | os.PathLike[str], *, temperature: float, options: M3Options | None = None
) -> tuple[M3TrainingModel, Any]:
    """The trainable model and the tokenizer of the BGE-M3 checkpoint in ``folder`` (fp32)."""
    from transformers import AutoTokenizer

    from bge_core.loading import load_head_state_dict

    path = Path(folder)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    backbone = _load_backbone(path)
    hidden = int(backbone.config.hidden_size)
    heads: dict[str, nn.Linear] = {}
    for name in ("colbert_linear", "sparse_linear"):
        state = load_head_state_dict(path, name)
        weight = state.get("weight")
        if weight is None or weight.ndim != 2 or weight.shape[1] != hidden:
            from bge_core.errors import ModelFilesError

            raise ModelFilesError(f"{name} in {path} does not fit the model (hidden size {hidden})")
        head = nn.Linear(hidden, int(weight.shape[0]), bias="bias" in state)
        head.load_state_dict({k: v.float() for k, v in state.items()})
        heads[name] = head
    model = M3TrainingModel(
        backbone,
        heads["colbert_linear"],
        heads["sparse_linear"],
        unused_ids=special_token_ids(tokenizer),
        temperature=temperature,
        options=options,
    )
    if model.options.fix_encoder:
        for p in backbone.parameters():
            p.requires_grad_(False)
    return model, tokenizer


def save_m3_folder(model: M3TrainingModel, tokenizer: Any, out: Path, source: Path | None = None) -> None:
    """Write ``model`` in BGE-M3's layout into ``out``: the transformer (``save_pretrained``),
    the tokenizer, ``colbert_linear.pt`` / ``sparse_linear.pt`` (CPU state dicts, FlagEmbedding's
    format) and, from ``source``, sentence-transformers' configuration files."""
    out.mkdir(parents=True, exist_ok=True)
    backbone: Any = model.model
    backbone.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    for name in ("colbert_linear", "sparse_linear"):
        head: nn.Module = getattr(model, name)
        state = {k: v.detach().clone().cpu() for k, v in head.state_dict().items()}
        torch.save(state, out / f"{name}.pt")
    if source is not None:
        for name in _ST_FILES:
            if (source / name).is_file():
                shutil.copy2(source / name, out / name)
        for sub in source.iterdir():
            # ST module folders: 1_Pooling, 2_Normalize (configuration only, no weights).
            if sub.is_dir() and sub.name[:1].isdigit() and "_" in sub.name and not (out / sub.name).exists():
                shutil.copytree(sub, out / sub.name)


def load_m3_checkpoint(model: M3TrainingModel, folder: Path) -> None:
    """Load the weights of a checkpoint written by :func:`save_m3_folder` into ``model``."""
    from bge_core.loading import load_head_state_dict

    saved = _load_backbone(folder)
    model.model.load_state_dict(saved.state_dict())
    for name in ("colbert_linear", "sparse_linear"):
        getattr(model, name).load_state_dict(load_head_state_dict(folder, name))


def make_trainer_class(source_dir: Path | None = None) -> Any:
    """A transformers ``Trainer`` that saves and resumes BGE-M3 folders (with the
    sentence-transformers files of ``source_dir``) and passes the step to the loss (defined on
    call: transformers is imported when training starts)."""
    from transformers import Trainer

    class M3Trainer(Trainer):
        _parts: dict[str, list[float]]

        def compute_loss(
            self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
        ) -> Any:
            core = self.accelerator.unwrap_model(model)
            core.step = self.state.global_step
            outputs = model(queries=inputs["queries"], passages=inputs["passages"])
            if core.training:
                parts = self.__dict__.setdefault("_parts", {})
                for key, value in core.last_parts.items():
                    parts.setdefault(key, []).append(value)
            return (outputs["loss"], outputs) if return_outputs else outputs["loss"]

        def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
            # The terms of the loss (mean since the last log) next to it: loss_dense, loss_sparse, ...
            parts = self.__dict__.get("_parts")
            if "loss" in logs and parts:
                logs.update({f"loss_{k}": round(sum(v) / len(v), 4) for k, v in parts.items()})
                parts.clear()
            super().log(logs, *args, **kwargs)

        def _save(self, output_dir: str | None = None, state_dict: Any = None) -> None:
            target = Path(str(output_dir if output_dir is not None else self.args.output_dir))
            core = self.accelerator.unwrap_model(self.model)
            save_m3_folder(core, self.processing_class, target, source_dir)
            torch.save(self.args, target / "training_args.bin")

        def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
            core = self.accelerator.unwrap_model(model if model is not None else self.model)
            load_m3_checkpoint(core, Path(resume_from_checkpoint))

    return M3Trainer


class M3Collator:
    """Tokenizes rows of ``anchor``, ``positive``, ``negative_1``.. into query and passage batches
    (passages grouped per query, positive first; padded to the longest, truncated at ``max_length``)."""

    def __init__(self, tokenizer: Any, max_length: int, group_size: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.columns = ["positive"] + [f"negative_{i + 1}" for i in range(group_size - 1)]

    def _tok(self, texts: list[str]) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return dict(enc)

    def __call__(self, rows: list[dict[str, str]]) -> dict[str, dict[str, torch.Tensor]]:
        queries = [r["anchor"] for r in rows]
        passages = [r[c] for r in rows for c in self.columns]
        return {"queries": self._tok(queries), "passages": self._tok(passages)}
