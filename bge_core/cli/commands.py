"""The ``bge`` sub-commands: ``index``, ``search``, ``eval`` and ``models``.

Each command returns an exit code; user errors are raised as ``BGEError`` / ``OSError`` /
``ValueError`` and turned into one line on stderr by :mod:`bge_core.cli.main`.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from bge_core.cli.encoders import CountingEncoder, Kind, load_encoder, model_kind
from bge_core.cli.ray_options import run_index_on_ray
from bge_core.cli.stores import open_store
from bge_core.errors import BGEError
from bge_core.evaluation import evaluate_run, load_beir
from bge_core.index import MODES, Document, Mode, SearchOptions, Store, VectorIndex
from bge_core.loading import resolve_model_dir
from bge_core.models import KNOWN_MODELS
from bge_core.settings import (
    ModelFacts,
    SettingsRequest,
    model_to_load,
    resolve_settings,
)
from bge_core.sources import (
    SourceReport,
    find_source_files,
    iter_chunks,
    read_documents,
)
from bge_core.types import Hit

__all__ = [
    "DEFAULT_COLLECTION",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_SKIPPED_INPUT",
    "cmd_eval",
    "cmd_index",
    "cmd_models",
    "cmd_search",
    "parse_filters",
]

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_ERROR = 1
#: ``bge index`` finished but skipped unreadable files or malformed lines (see the warnings).
EXIT_SKIPPED_INPUT = 3
EXIT_INTERRUPTED = 130

#: Collection ``bge index`` / ``bge search`` use unless ``--collection`` says otherwise.
DEFAULT_COLLECTION = "bge"
EVAL_METRICS = ("ndcg@10", "recall@100", "mrr@10")
_METRIC_LABELS = {"ndcg@10": "nDCG@10", "recall@100": "Recall@100", "mrr@10": "MRR@10"}


# -- shared ------------------------------------------------------------------------------------
@dataclass
class _Session:
    """An open store, the loaded encoder and the index that joins them."""

    index: VectorIndex
    encoder: CountingEncoder
    settings: dict[str, Any]
    recorded: dict[str, Any] | None
    where: str

    @property
    def kind(self) -> Kind:
        return "m3" if self.index.sparse else "dense"

    def close(self) -> None:
        """Close the store (and the client it opened)."""
        self.index.close()


def _where(uri: str, collection: str) -> str:
    return f"the index {uri} (collection {collection!r})"


def _close_store(store: Store) -> None:
    closer = getattr(store, "close", None)
    if callable(closer):
        closer()


def _open_session(
    args: argparse.Namespace,
    *,
    collection: str,
    layout: str,
    max_tokens: int | None,
    no_colbert: bool | None,
    write_batch_size: int = 32,
    must_exist: bool = False,
    fixed_max_tokens: bool = False,
) -> _Session:
    """Open the store, reconcile the options with the recorded settings, load the model."""
    uri: str = args.store
    where = _where(uri, collection)
    if args.model:
        # A model that cannot load fails before the store is opened (no folder or file left behind).
        model_kind(args.model)
        resolve_model_dir(args.model)
    request = SettingsRequest(
        model=args.model or None,
        max_tokens=max_tokens,
        colbert=False if no_colbert else None,
        layout=layout,
        fixed_max_tokens=fixed_max_tokens,
    )
    store = open_store(uri, collection=collection)
    try:
        recorded = store.read_settings()
        if recorded is None and must_exist and not args.model:
            raise BGEError(
                f"{where} holds no bge index; build it first: bge index SOURCE --store {uri}"
                + (f" --collection {collection}" if collection != DEFAULT_COLLECTION else "")
            )
        # Cheap checks (model, max tokens, ColBERT) before a model is loaded.
        model = model_to_load(request, recorded, where)
        encoder = CountingEncoder(load_encoder(model, device=args.device, dtype=args.dtype, batch_size=write_batch_size))
        resolved = resolve_settings(request, recorded, ModelFacts.of(encoder), where)
        index = VectorIndex(
            store,
            encoder,
            dense=True,
            sparse=resolved.kind == "m3",
            colbert=resolved.colbert,
            show_progress=args.progress,
            write_batch_size=write_batch_size,
            # --batch-size B: B texts per encode step and per write, so an interrupted run
            # loses at most one step of work.
            chunk_size=write_batch_size,
        )
        return _Session(index, encoder, resolved.settings, recorded, where)
    except BaseException:
        _close_store(store)
        raise


def _out(args: argparse.Namespace) -> TextIO:
    stream: TextIO = getattr(args, "stdout", None) or sys.stdout
    return stream


# -- index -------------------------------------------------------------------------------------
def _chunk_documents(session: _Session, sources: Sequence[str], report: SourceReport) -> Iterator[Document]:
    files = find_source_files(sources, report)
    tokenizer = session.encoder.tokenizer
    docs = read_documents(files, report)
    for chunk in iter_chunks(docs, tokenizer, int(session.settings["max_tokens"]), report):
        yield Document(chunk.text, chunk.metadata, chunk.id)


def cmd_index(args: argparse.Namespace) -> int:
    """``bge index SOURCE...``: chunk, encode and store files; re-runs resume and skip stored chunks."""
    if getattr(args, "ray", False):  # bge index --ray: bge_core/cli/ray_options.py
        return run_index_on_ray(args)
    out = _out(args)
    report = SourceReport()
    # Fail on bad SOURCE arguments before the store is opened or a model is loaded.
    find_source_files(args.sources, SourceReport())
    session = _open_session(
        args,
        collection=args.collection,
        layout="chunks",
        max_tokens=args.max_tokens,
        no_colbert=True if args.no_colbert else None,
        write_batch_size=args.batch_size,
    )
    try:
        session.index.ensure_collection()
        if session.recorded != session.settings:
            session.index.write_settings(session.settings)
        try:
            ids = session.index.add_documents(_chunk_documents(session, args.sources, report))
        except KeyboardInterrupt:
            print(
                f"interrupted after encoding {session.encoder.documents_encoded} chunks; run the same command "
                "again to finish (stored chunks are kept and skipped)",
                file=sys.stderr,
            )
            raise
        total = session.index.count()
    finally:
        session.close()
    encoded = session.encoder.documents_encoded
    print(
        f"indexed {report.documents} documents ({len(ids)} chunks, at most {session.settings['max_tokens']} tokens each) "
        f"from {report.files} files into {args.store} (collection {args.collection!r}): "
        f"{encoded} encoded, {len(ids) - encoded} already stored; the index holds {total} chunks",
        file=out,
    )
    if report.problems:
        print(f"bge: {len(report.problems)} input problem(s) skipped, see the warnings above", file=sys.stderr)
        return EXIT_SKIPPED_INPUT
    return EXIT_OK


# -- search ------------------------------------------------------------------------------------
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$")


def _parse_value(raw: str) -> Any:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return raw[1:-1]
    if raw in ("true", "false"):
        return raw == "true"
    if _INT.match(raw):
        return int(raw)
    if _FLOAT.match(raw):
        return float(raw)
    return raw


def parse_filters(items: Sequence[str] | None) -> dict[str, Any] | None:
    """``KEY=VALUE`` strings to a filter dict; a key given twice matches any of its values.

    Values that look like numbers or ``true``/``false`` are typed; quote them to keep a string.
    """
    if not items:
        return None
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise BGEError(f"--filter {item!r}: use KEY=VALUE, for example --filter source=notes/a.md")
        key = key.strip()
        value = _parse_value(raw)
        if key in out:
            prev = out[key]
            out[key] = (prev if isinstance(prev, list) else [prev]) + [value]
        else:
            out[key] = value
    return out


def _display_id(hit: Hit) -> str:
    doc = hit.metadata.get("doc_id")
    if doc is None:
        return hit.id
    chunk = hit.metadata.get("chunk")
    return f"{doc}#{chunk}" if chunk is not None else str(doc)


def _clip(text: str, width: int) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: max(width - 1, 0)] + "…"


def _print_table(hits: Sequence[Hit], out: TextIO) -> None:
    width = shutil.get_terminal_size((120, 24)).columns
    id_w = min(max([len(_display_id(h)) for h in hits] + [2]), 28)
    title_w = min(max([len(str(h.metadata.get("title", ""))) for h in hits] + [5]), 28)
    snippet_w = max(width - (4 + 1 + 9 + 1 + id_w + 2 + title_w + 2), 20)
    print(f"{'rank':>4} {'score':>9} {'id':<{id_w}}  {'title':<{title_w}}  snippet", file=out)
    for rank, h in enumerate(hits, 1):
        print(
            f"{rank:>4} {h.score:>9.4f} {_clip(_display_id(h), id_w):<{id_w}}  "
            f"{_clip(str(h.metadata.get('title', '')), title_w):<{title_w}}  {_clip(h.text, snippet_w)}",
            file=out,
        )


def _hit_json(rank: int, h: Hit) -> dict[str, Any]:
    return {
        "rank": rank,
        "score": h.score,
        "id": h.id,
        "doc_id": h.metadata.get("doc_id"),
        "chunk": h.metadata.get("chunk"),
        "title": h.metadata.get("title"),
        "source": h.metadata.get("source"),
        "text": h.text,
        "metadata": h.metadata,
        "scores": h.scores,
    }


def _check_modes(session: _Session, modes: Sequence[str], model_hint: str) -> None:
    for mode in modes:
        if mode not in MODES:
            raise BGEError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    if not session.index.sparse:
        bad = [m for m in modes if m != "dense"]
        if bad:
            raise BGEError(
                f"mode {', '.join(bad)} needs a BGE-M3 index, but {session.where} is dense-only "
                f"(model {model_hint}); use mode dense"
            )
    if "colbert" in modes and not session.index.colbert:
        raise BGEError(f"mode colbert needs ColBERT vectors, but {session.where} was built with --no-colbert")


def cmd_search(args: argparse.Namespace) -> int:
    """``bge search QUERY``: search an index built by ``bge index``."""
    out = _out(args)
    if not args.query.strip():
        raise BGEError("the query is empty; pass the text to search for")
    if args.k < 1:
        raise BGEError(f"-k must be at least 1, got {args.k}")
    flt = parse_filters(args.filter)
    session = _open_session(
        args, collection=args.collection, layout="chunks", max_tokens=None, no_colbert=None, must_exist=True,
        fixed_max_tokens=False,
    )
    try:
        mode: Mode = args.mode or ("hybrid" if session.index.sparse else "dense")
        _check_modes(session, [mode], str(session.settings["model"]))
        reranker = None
        if args.rerank:
            from bge_core.reranker import Reranker

            reranker = Reranker(args.rerank, device=args.device, dtype=args.dtype)
        hits = session.index.search(args.query, options=SearchOptions(k=args.k, mode=mode, filter=flt, rerank=reranker))
    finally:
        session.close()
    if args.json:
        for rank, h in enumerate(hits, 1):
            print(json.dumps(_hit_json(rank, h), ensure_ascii=False), file=out)
    elif hits:
        _print_table(hits, out)
    else:
        print("no results", file=out)
    return EXIT_OK


# -- eval --------------------------------------------------------------------------------------
def _beir_collection(folder: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", Path(folder).resolve().name).strip("_").lower() or "corpus"
    return f"beir_{name}"


def _parse_modes(raw: str) -> list[str]:
    modes = [m.strip().lower() for m in raw.split(",") if m.strip()]
    if not modes:
        raise BGEError("--modes is empty; use for example --modes dense,sparse,hybrid,colbert")
    for m in modes:
        if m not in MODES:
            raise BGEError(f"unknown mode {m!r} in --modes; use any of {', '.join(MODES)}")
    return list(dict.fromkeys(modes))


def _doc_ids(hits: Sequence[Hit]) -> list[str]:
    seen: dict[str, None] = {}
    for h in hits:
        seen.setdefault(str(h.metadata.get("doc_id", h.id)), None)
    return list(seen)


def run_queries(
    index: VectorIndex, queries: dict[str, str], modes: Sequence[str], k: int = 100
) -> dict[str, dict[str, list[str]]]:
    """``{mode: {qid: ranked doc ids}}``: all queries encoded in one pass for every mode, then
    searched per mode in one ``search_batch`` (the store's batch query where it has one)."""
    qids = list(queries)
    runs: dict[str, dict[str, list[str]]] = {mode: {} for mode in modes}
    if not qids:
        return runs
    encoded = index.encode_queries([queries[q] for q in qids], modes=modes)  # type: ignore[arg-type]
    for mode in modes:
        results = index.search_batch(encoded, options=SearchOptions(k=k, mode=mode))  # type: ignore[arg-type]
        runs[mode] = {qid: _doc_ids(hits) for qid, hits in zip(qids, results)}
    return runs


def cmd_eval(args: argparse.Namespace) -> int:
    """``bge eval BEIR_DIR``: index a BEIR corpus (unless stored) and report metrics per mode."""
    out = _out(args)
    modes = _parse_modes(args.modes)
    data = load_beir(args.beir_dir, split=args.split)
    if not data.queries:
        raise BGEError(f"{args.beir_dir}: no queries of split {args.split!r} have qrels; check --split")
    collection = args.collection or _beir_collection(args.beir_dir)
    session = _open_session(
        args, collection=collection, layout="documents", max_tokens=None, no_colbert=None,
        write_batch_size=args.batch_size, fixed_max_tokens=True,
    )
    try:
        _check_modes(session, modes, str(session.settings["model"]))
        session.index.ensure_collection()
        if session.recorded != session.settings:
            session.index.write_settings(session.settings)
        stored = session.index.count()
        if stored == len(data.corpus):
            logger.info("%s already holds the %d documents; not re-indexing", session.where, stored)
        else:
            docs = (
                Document(data.doc_text(doc_id), {"doc_id": doc_id, "title": title}, doc_id)
                for doc_id, (title, _) in data.corpus.items()
            )
            quiet = logging.getLogger("bge_core.encoder_base")
            level = quiet.level
            if not args.verbose:
                # BEIR truncates long documents to the model's cap; say so once, not per batch.
                quiet.setLevel(logging.ERROR)
                logger.info("documents longer than %d tokens are truncated", session.encoder.max_length)
            try:
                session.index.add_documents(docs, total=len(data.corpus))
            finally:
                quiet.setLevel(level)
        runs = run_queries(session.index, data.queries, modes)
    finally:
        session.close()
    results = {mode: evaluate_run(runs[mode], data.qrels) for mode in modes}
    print(
        f"{Path(args.beir_dir).name}: {len(data.corpus)} documents, {len(data.queries)} queries ({args.split}), "
        f"model {session.settings['model']}, {args.store} (collection {collection!r})",
        file=out,
    )
    print(f"{'mode':<8}" + "".join(f"{_METRIC_LABELS[m]:>12}" for m in EVAL_METRICS), file=out)
    for mode in modes:
        print(f"{mode:<8}" + "".join(f"{results[mode][m]:>12.4f}" for m in EVAL_METRICS), file=out)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return EXIT_OK


# -- models ------------------------------------------------------------------------------------
def cmd_models(args: argparse.Namespace) -> int:
    """``bge models``: the known BGE models and whether each loads offline here."""
    from bge_core.loading import is_available_offline

    out = _out(args)
    rows = []
    for name, info in KNOWN_MODELS.items():
        rows.append(
            (
                name,
                info.kind,
                "+".join(info.outputs),
                str(info.dim) if info.dim else "-",
                str(info.max_length),
                "yes" if is_available_offline(name) else "no",
            )
        )
    header = ("model", "kind", "outputs", "dim", "max_len", "offline")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip(), file=out)
    return EXIT_OK
