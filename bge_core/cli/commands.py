"""The ``bge`` sub-commands: ``index``, ``search``, ``eval`` and ``models``.

Each command returns an exit code; user errors are raised as ``BGEError`` / ``OSError`` /
``ValueError`` and turned into one line on stderr by :mod:`bge_core.cli.main`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from bge_core.cli.drop_command import drop_store
from bge_core.cli.encoders import CountingEncoder, Kind, load_encoder, model_kind
from bge_core.cli.ray_options import run_index_on_ray
from bge_core.cli.stores import open_store
from bge_core.errors import BGEError
from bge_core.evaluation import drop_identical_ids, evaluate_run, load_beir
from bge_core.index import MODES, Document, Mode, SearchOptions, Store, VectorIndex, close_store, progress_enabled
from bge_core.loading import resolve_model_dir
from bge_core.models import KNOWN_MODELS
from bge_core.settings import (
    ModelFacts,
    SettingsRequest,
    model_to_load,
    resolve_settings,
    same_model,
)
from bge_core.sources import (
    SourceError,
    SourceFile,
    SourceReport,
    find_source_files,
    iter_chunks,
    read_documents,
)
from bge_core.sync import ScanningStore, TrackingStore, find_stale
from bge_core.types import Hit
from bge_core.uris import redact_uri

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
    return f"the index {redact_uri(uri)} (collection {collection!r})"


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
    recreate: bool = False,
) -> _Session:
    """Open the store, reconcile the options with the recorded settings, load the model.
    ``recreate`` (``bge index --recreate``): the collection is dropped once the model has
    loaded, and the new index takes the options given, else the dropped one's."""
    uri: str = args.store
    where = _where(uri, collection)
    local = local_store_path(uri)
    fresh = local is not None and not local.exists()
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
        if recorded is None and must_exist and (not args.model or fresh):
            if fresh and local is not None:
                # Opening a local store creates it: remove it again, search never creates one.
                close_store(store)
                _remove_store_files(local)
            raise BGEError(
                (f"no index at {local}: " if fresh else "")
                + f"{where} holds no bge index; build it first: bge index SOURCE --store {redact_uri(uri)}"
                + (f" --collection {collection}" if collection != DEFAULT_COLLECTION else "")
            )
        if recreate:
            request, recorded = recreate_request(request, recorded), None
        if must_exist and recorded is not None and isinstance(recorded.get("layout"), str):
            # Searching reads either layout (bge index: chunks, bge eval: documents).
            request = dataclasses.replace(request, layout=recorded["layout"])
        # Cheap checks (model, max tokens, ColBERT) before a model is loaded.
        model = model_to_load(request, recorded, where)
        encoder = CountingEncoder(
            load_encoder(model, device=args.device, dtype=args.dtype, batch_size=write_batch_size)
        )
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
        if recreate:  # only now that the model loaded and the options fit: nothing is lost for a typo
            rows = store.count()
            if drop_store(store, where):
                print(f"dropped {where} ({rows} chunks); indexing anew", file=_out(args))
        return _Session(index, encoder, resolved.settings, recorded, where)
    except BaseException:
        close_store(store)
        raise


def recreate_request(request: SettingsRequest, recorded: dict[str, Any] | None) -> SettingsRequest:
    """The request of ``bge index --recreate``: options given win; the others default to the
    dropped index's model and, for that same model, its ``max_tokens`` and ColBERT choice."""
    if recorded is None:
        return request
    have = recorded.get("model")
    model = request.model or (have if isinstance(have, str) else None)
    same = model is not None and isinstance(have, str) and same_model(model, have)
    max_tokens, colbert = request.max_tokens, request.colbert
    if same and max_tokens is None and isinstance(recorded.get("max_tokens"), int):
        max_tokens = int(recorded["max_tokens"])
    outputs = recorded.get("outputs")
    if same and colbert is None and isinstance(outputs, list) and "colbert" not in outputs:
        colbert = False
    return dataclasses.replace(request, model=model, max_tokens=max_tokens, colbert=colbert)


def local_store_path(uri: str) -> Path | None:
    """The file or folder of a local store URI (``qdrant:./dir``, ``milvus:./x.db``), else None."""
    scheme, sep, rest = uri.partition(":")
    if not sep or "+" in scheme or rest.startswith("//") or not rest or rest == ":memory:":
        return None
    return Path(rest).expanduser()


@contextmanager
def _remove_if_created(uri: str) -> Iterator[None]:
    """Remove a local store that this command created, when the command fails before writing:
    a model that cannot load or a refused option must not leave an empty store behind."""
    local = local_store_path(uri)
    fresh = local is not None and not local.exists()
    try:
        yield
    except BaseException:
        if fresh and local is not None:
            _remove_store_files(local)
        raise


def _remove_store_files(local: Path) -> None:
    if local.is_dir():
        shutil.rmtree(local, ignore_errors=True)
    elif local.exists():
        local.unlink(missing_ok=True)
    for extra in local.parent.glob(f".{local.name}*"):  # Milvus Lite's lock and socket files
        if extra.is_file():
            extra.unlink(missing_ok=True)


def _out(args: argparse.Namespace) -> TextIO:
    stream: TextIO = getattr(args, "stdout", None) or sys.stdout
    return stream


# -- index -------------------------------------------------------------------------------------
def _chunk_documents(
    session: _Session, files: Sequence[SourceFile], report: SourceReport, bar: _IndexProgress
) -> Iterator[Document]:
    tokenizer = session.encoder.tokenizer
    docs = bar.documents(read_documents(files, report), files)
    for chunk in iter_chunks(docs, tokenizer, int(session.settings["max_tokens"]), report):
        bar.chunk()
        yield Document(chunk.text, chunk.metadata, chunk.id)


def _looks_readable(path: Path) -> bool:
    """A cheap look at the first bytes: readable, no NUL byte, valid UTF-8 so far."""
    import codecs

    try:
        with open(path, "rb") as fh:
            head = fh.read(8192)
    except OSError:
        return False
    if b"\x00" in head:
        return False
    try:
        codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _preflight(files: Sequence[SourceFile], sources: Sequence[str]) -> None:
    """Refuse, before a store is opened, SOURCEs whose every file is binary, unreadable or empty."""
    readable = [f for f in files if _looks_readable(f.path)]
    shown = ", ".join(str(p) for p in sources)
    if not readable:
        raise SourceError(
            f"{shown}: none of the {len(files)} file(s) is readable UTF-8 text; nothing to index "
            "(convert them to UTF-8 .txt, .md or .jsonl)"
        )
    if all(_is_blank(f.path) for f in readable):
        raise SourceError(f"{shown}: every file is empty; nothing to index")


def _is_blank(path: Path) -> bool:
    try:
        if path.stat().st_size > 65536:
            return False
        return not path.read_bytes().strip()
    except OSError:
        return False


class _IndexProgress:
    """``bge index`` progress: bytes of the SOURCE files read (so a total and the time left are
    known up front), with documents read and chunks written alongside. Log lines printed while
    it is shown go above it, not onto its line."""

    def __init__(self, enabled: bool, total_bytes: int) -> None:
        self._bar: Any = None
        self.docs = 0
        self.chunks = 0
        self._streams: list[tuple[logging.StreamHandler[Any], Any]] = []
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total_bytes,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc="indexing",
                dynamic_ncols=True,
                file=sys.stderr,
            )
            for handler in logging.getLogger().handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stderr, sys.__stderr__):
                    self._streams.append((handler, handler.stream))
                    handler.setStream(_TqdmStream())

    def documents(self, docs: Iterator[Any], files: Sequence[SourceFile]) -> Iterator[Any]:
        sizes = {f.path.as_posix(): _size(f.path) for f in files}
        current: str | None = None
        for doc in docs:
            path = doc.where.rsplit(":", 1)[0] if doc.where not in sizes else doc.where
            if path != current:
                if current is not None:
                    self._advance(sizes.pop(current, 0))
                current = path
            self.docs += 1
            yield doc
        if current is not None:
            self._advance(sizes.pop(current, 0))
        self._advance(sum(sizes.values()))  # files skipped whole

    def chunk(self) -> None:
        self.chunks += 1
        if self._bar is not None and self.chunks % 64 == 1:
            self._bar.set_postfix_str(f"{self.docs} documents, {self.chunks} chunks", refresh=False)

    def _advance(self, n: int) -> None:
        if self._bar is not None and n:
            self._bar.set_postfix_str(f"{self.docs} documents, {self.chunks} chunks", refresh=False)
            self._bar.update(n)

    def close(self) -> None:
        for handler, stream in self._streams:
            handler.setStream(stream)
        self._streams.clear()
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class _TqdmStream:
    """A stderr stand-in that prints through ``tqdm.write`` (above the bar)."""

    def write(self, text: str) -> int:
        from tqdm.auto import tqdm

        if text.strip():
            tqdm.write(text.rstrip("\n"), file=sys.stderr)
        return len(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def cmd_index(args: argparse.Namespace) -> int:
    """``bge index SOURCE...``: chunk, encode and store files so the index reflects them: re-runs
    resume, skip stored chunks, and (unless ``--no-delete``) remove the chunks of files under
    SOURCE that are gone or got shorter."""
    recreate = bool(getattr(args, "recreate", False))
    if getattr(args, "ray", False):  # bge index --ray: bge_core/cli/ray_options.py
        if recreate:
            raise BGEError("--recreate does not run with --ray; run bge drop first, then bge index --ray")
        return run_index_on_ray(args)
    out = _out(args)
    report = SourceReport()
    # Fail on bad SOURCE arguments before the store is opened or a model is loaded.
    files = find_source_files(args.sources, report)
    _preflight(files, args.sources)
    with _remove_if_created(args.store):
        session = _open_session(
            args,
            collection=args.collection,
            layout="chunks",
            max_tokens=args.max_tokens,
            no_colbert=True if args.no_colbert else None,
            write_batch_size=args.batch_size,
            recreate=recreate,
        )
    shown_store = redact_uri(args.store)
    removed = 0
    bar = _IndexProgress(progress_enabled(args.progress), sum(_size(f.path) for f in files))
    try:
        session.index.ensure_collection()
        if session.recorded != session.settings:
            session.index.write_settings(session.settings)
        tracker = TrackingStore(session.index.store)
        session.index.store = tracker
        session.index.show_progress = False  # the bar above counts bytes, documents and chunks
        try:
            ids = session.index.add_documents(_chunk_documents(session, files, report, bar))
        except KeyboardInterrupt:
            bar.close()
            print(
                f"interrupted after encoding {session.encoder.documents_encoded} chunks; run the same command "
                "again to finish (stored chunks are kept and skipped)",
                file=sys.stderr,
            )
            raise
        bar.close()
        if not getattr(args, "no_delete", False):
            removed = _remove_stale(tracker.inner_store, args.sources, set(ids), report)
        total = session.index.count()
    finally:
        bar.close()
        session.close()
    counts = tracker.counts
    counts.removed = removed
    counts.unchanged = max(len(ids) - counts.added - counts.updated, 0)
    skipped = f", {report.skipped_files} skipped" if report.skipped_files else ""
    empty = f", {report.empty} empty skipped" if report.empty else ""
    print(
        f"indexed {report.documents} documents ({len(ids)} chunks, at most {session.settings['max_tokens']} tokens each) "
        f"from {report.files} files{skipped}{empty} into {shown_store} (collection {args.collection!r}): "
        f"{counts.added} added, {counts.updated} updated, {counts.unchanged} unchanged, {counts.removed} removed; "
        f"the index holds {total} chunks",
        file=out,
    )
    if report.documents == 0:
        print("bge: error: nothing was indexed: every document was skipped (see the warnings above)", file=sys.stderr)
        return EXIT_ERROR
    if report.problems:
        print(f"bge: {len(report.problems)} input problem(s) skipped, see the warnings above", file=sys.stderr)
        return EXIT_SKIPPED_INPUT
    return EXIT_OK


def _remove_stale(store: Store, sources: Sequence[str], produced: set[str], report: SourceReport) -> int:
    """Delete stored chunks of files under ``sources`` that this run did not produce."""
    if not isinstance(store, ScanningStore):
        logger.warning("this store cannot list its rows; chunks of deleted or shortened files are kept")
        return 0
    covered = [os.path.abspath(Path(s).expanduser()) for s in sources]
    stale = find_stale(store, covered, produced, report.incomplete)
    if stale:
        logger.info("removing %d chunks of files that are gone or shorter", len(stale))
        store.delete(stale)
    return len(stale)


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
    id_w = max([len(_display_id(h)) for h in hits] + [2])  # ids are never cut: they are what users copy
    title_w = min(max([len(str(h.metadata.get("title", ""))) for h in hits] + [5]), 28)
    snippet_w = max(width - (4 + 1 + 9 + 1 + id_w + 2 + title_w + 2), 20)
    print(f"{'rank':>4} {'score':>9} {'id':<{id_w}}  {'title':<{title_w}}  snippet", file=out)
    for rank, h in enumerate(hits, 1):
        print(
            f"{rank:>4} {h.score:>9.4f} {_display_id(h):<{id_w}}  "
            f"{_clip(str(h.metadata.get('title', '')), title_w):<{title_w}}  {_clip(h.text, snippet_w)}",
            file=out,
        )


def _hit_json(rank: int, h: Hit) -> dict[str, Any]:
    return {
        "rank": rank,
        "score": h.score,
        "id": h.id,
        "ref": _display_id(h),  # the id the table shows (doc_id#chunk); "id" is the stored UUID
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
        args,
        collection=args.collection,
        layout="chunks",
        max_tokens=None,
        no_colbert=None,
        must_exist=True,
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
    """``bge eval BEIR_DIR``: index a BEIR corpus (re-encoding only documents whose text changed,
    removing those no longer in it) and report metrics per mode."""
    out = _out(args)
    modes = _parse_modes(args.modes)
    data = load_beir(args.beir_dir, split=args.split)
    if not data.queries:
        raise BGEError(f"{args.beir_dir}: no queries of split {args.split!r} have qrels; check --split")
    collection = args.collection or _beir_collection(args.beir_dir)
    keep_identical = bool(getattr(args, "keep_identical_ids", False))
    with _remove_if_created(args.store):
        session = _open_session(
            args,
            collection=collection,
            layout="documents",
            max_tokens=None,
            no_colbert=None,
            write_batch_size=args.batch_size,
            fixed_max_tokens=True,
        )
    try:
        _check_modes(session, modes, str(session.settings["model"]))
        session.index.ensure_collection()
        if session.recorded != session.settings:
            session.index.write_settings(session.settings)
        tracker = TrackingStore(session.index.store)
        session.index.store = tracker
        # Every document goes through the content-hash check: stored, unchanged ones are neither
        # encoded nor written, so a re-run reuses the index only where the corpus is the same.
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
            ids = session.index.add_documents(docs, total=len(data.corpus))
        finally:
            quiet.setLevel(level)
        session.index.store = tracker.inner_store
        removed = _remove_missing(tracker.inner_store, set(ids))
        counts = tracker.counts
        logger.info(
            "%s: %d documents encoded (%d new, %d changed), %d unchanged reused, %d no longer in the corpus removed",
            session.where,
            counts.added + counts.updated,
            counts.added,
            counts.updated,
            len(ids) - counts.added - counts.updated,
            removed,
        )
        # One more hit per query, so dropping the query's own id still leaves k=100.
        runs = run_queries(session.index, data.queries, modes, k=100 if keep_identical else 101)
    finally:
        session.close()
    if not keep_identical:
        runs = {mode: {q: ranked[:100] for q, ranked in drop_identical_ids(run).items()} for mode, run in runs.items()}
    results = {mode: evaluate_run(runs[mode], data.qrels, ignore_identical_ids=not keep_identical) for mode in modes}
    print(
        f"{Path(args.beir_dir).name}: {len(data.corpus)} documents, {len(data.queries)} queries ({args.split}), "
        f"model {session.settings['model']}, {redact_uri(args.store)} (collection {collection!r})",
        file=out,
    )
    print(f"{'mode':<8}" + "".join(f"{_METRIC_LABELS[m]:>12}" for m in EVAL_METRICS), file=out)
    for mode in modes:
        print(f"{mode:<8}" + "".join(f"{results[mode][m]:>12.4f}" for m in EVAL_METRICS), file=out)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return EXIT_OK


def _remove_missing(store: Store, produced: set[str]) -> int:
    """Delete stored documents of an eval collection that are no longer in the corpus."""
    if not isinstance(store, ScanningStore):
        return 0
    gone = [row_id for row_id, _ in store.scan(["doc_id"]) if row_id not in produced]
    if gone:
        store.delete(gone)
    return len(gone)


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
