"""``bge``: index files, search them, evaluate on BEIR data and list the BGE models.

Errors a user can make (a bad store URI, an unreachable server, a model that is not
available offline, a locked store, ...) are printed as one line on stderr with a non-zero
exit code; ``-v`` adds the traceback. Exit codes: 0 ok, 1 error, 2 bad arguments,
3 indexed but some input was skipped (see the warnings), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Sequence
from typing import Any

from bge_core.cli.arguments import positive_int
from bge_core.cli.commands import (
    DEFAULT_COLLECTION,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    cmd_eval,
    cmd_index,
    cmd_models,
    cmd_search,
)
from bge_core.cli.copy_command import add_copy_command
from bge_core.cli.drop_command import add_drop_command, add_recreate_option
from bge_core.cli.encoders import DEFAULT_MODEL
from bge_core.cli.ray_options import add_ray_options
from bge_core.cli.stores import DEFAULT_STORE
from bge_core.cli.train_commands import add_train_commands
from bge_core.errors import BGEError
from bge_core.load_report import install_load_report_filter
from bge_core.uris import redact_secrets

__all__ = ["build_parser", "main"]

_LOGGERS = ("bge_core", "bge_qdrant", "bge_milvus")
_handler: logging.Handler | None = None
_saved_showwarning: Any = None


def _key_value(raw: str) -> str:
    key, sep, _ = raw.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {raw!r} (for example --filter source=notes/a.md)")
    return raw


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``bge``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv: debug); tracebacks on errors"
    )
    common.add_argument(
        "--store",
        default=DEFAULT_STORE,
        help=f"vector store URI (default {DEFAULT_STORE}); e.g. "
        "qdrant:./dir, qdrant+http://host:6333, milvus:./file.db, milvus+http://host:19530",
    )
    common.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:1, mps (default auto)")
    common.add_argument(
        "--dtype", default="auto", help="compute dtype: auto, float32, bfloat16, float16 (default auto)"
    )
    common.add_argument(
        "--no-progress",
        dest="progress",
        action="store_const",
        const=False,
        default=None,
        help="no progress bar (default: shown when stderr is a terminal)",
    )

    parser = argparse.ArgumentParser(
        prog="bge",
        description="Index files with BGE models (BGE-M3 dense + sparse + ColBERT, v1.5 dense) in Qdrant or "
        "Milvus, search them, and evaluate retrieval on BEIR data.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "index",
        parents=[common],
        help="index .txt/.md/.jsonl files or folders",
        description="Chunk, encode and store files. Re-running finishes an interrupted run "
        "without duplicates and without re-encoding stored chunks.",
    )
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="files or folders (recursive) of .txt, .md, .jsonl")
    p.add_argument(
        "--model", default=None, help=f"model id or folder (default: the recorded one, else {DEFAULT_MODEL})"
    )
    p.add_argument("--collection", default=DEFAULT_COLLECTION, help=f"collection name (default {DEFAULT_COLLECTION})")
    p.add_argument(
        "--max-tokens",
        type=positive_int,
        default=None,
        help="most tokens per chunk, special tokens included "
        "(default: the recorded value, else the model's max length)",
    )
    p.add_argument("--no-colbert", action="store_true", default=False, help="do not store ColBERT vectors (M3 models)")
    p.add_argument(
        "--batch-size", type=positive_int, default=32, help="chunks encoded and written per step (default 32)"
    )
    p.add_argument(
        "--no-delete",
        "--append",
        dest="no_delete",
        action="store_true",
        default=False,
        help="keep stored chunks of files under SOURCE that are gone or got shorter (default: remove them)",
    )
    add_ray_options(p)  # bge index --ray (bge_core/cli/ray_options.py)
    add_recreate_option(p)  # bge index --recreate (bge_core/cli/drop_command.py)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser(
        "search", parents=[common], help="search an index", description="Search an index built by bge index."
    )
    p.add_argument("query", metavar="QUERY")
    p.add_argument("-k", type=positive_int, default=10, help="number of results (default 10)")
    p.add_argument(
        "--mode",
        choices=["dense", "sparse", "hybrid", "colbert"],
        default=None,
        help="default: hybrid for BGE-M3 indexes, dense for dense-only ones",
    )
    p.add_argument(
        "--rerank", metavar="MODEL", default=None, help="rerank with a cross-encoder, e.g. BAAI/bge-reranker-v2-m3"
    )
    p.add_argument(
        "--filter",
        action="append",
        metavar="KEY=VALUE",
        type=_key_value,
        help="metadata filter (repeat; a key given twice matches any of its values)",
    )
    p.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    p.add_argument("--model", default=None, help="model (default: the one recorded with the index)")
    p.add_argument("--collection", default=DEFAULT_COLLECTION, help=f"collection name (default {DEFAULT_COLLECTION})")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser(
        "eval",
        parents=[common],
        help="nDCG@10 / Recall@100 / MRR@10 on a BEIR folder",
        description="Index a BEIR corpus (title + ' ' + text; skipped when already stored), run "
        "the queries (k=100) and print nDCG@10, Recall@100 and MRR@10 per mode.",
    )
    p.add_argument("beir_dir", metavar="BEIR_DIR", help="folder with corpus.jsonl, queries.jsonl, qrels/<split>.tsv")
    p.add_argument("--model", default=None, help=f"model (default: the recorded one, else {DEFAULT_MODEL})")
    p.add_argument("--modes", default="dense,sparse,hybrid,colbert", help="comma-separated (default all four)")
    p.add_argument("--split", default="test", help="qrels split (default test)")
    p.add_argument("--json", metavar="FILE", default=None, help="also write the metrics as JSON to FILE")
    p.add_argument("--collection", default=None, help="collection name (default beir_<folder name>)")
    p.add_argument(
        "--batch-size", type=positive_int, default=32, help="documents encoded and written per step (default 32)"
    )
    p.add_argument(
        "--keep-identical-ids",
        action="store_true",
        default=False,
        help="keep a retrieved document whose id equals the query id (default: dropped, as BEIR does)",
    )
    p.set_defaults(func=cmd_eval)

    add_copy_command(sub)
    add_drop_command(sub, common)

    p = sub.add_parser("models", help="list the known BGE models and whether they are available offline")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    p.set_defaults(func=cmd_models)
    add_train_commands(sub, common)
    return parser


class _QuietFilter(logging.Filter):
    """Without -v: only bge's own records (other libraries repeat what the error line says)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.startswith(_LOGGERS) or record.levelno >= logging.CRITICAL


class _RedactingFormatter(logging.Formatter):
    """Log lines with the credentials of store URIs (and ``token=``-like pairs) redacted."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_secrets(super().format(record))


class _NoTracebackFormatter(_RedactingFormatter):
    """Without -v: log lines without the tracebacks attached to them."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


def _setup_logging(verbosity: int) -> None:
    global _handler
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = logging.StreamHandler(sys.stderr)
    if verbosity == 0:
        _handler.setFormatter(_NoTracebackFormatter("bge: %(levelname)s: %(message)s"))
        _handler.addFilter(_QuietFilter())
    else:
        _handler.setFormatter(_RedactingFormatter("bge: %(levelname)s %(name)s: %(message)s"))
    root.addHandler(_handler)
    root.setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbosity == 1 else logging.NOTSET)
    install_load_report_filter()  # the expected pooler-only LOAD REPORT of BGE checkpoints
    global _saved_showwarning
    if _saved_showwarning is None:
        _saved_showwarning = warnings.showwarning
        warnings.showwarning = _warning_to_log
    if verbosity < 2:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``bge`` with ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help or a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else 2
    verbose = int(getattr(args, "verbose", 0))
    _setup_logging(verbose)
    try:
        code: int = args.func(args)
        return code
    except KeyboardInterrupt:
        print("bge: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the CLI reports every failure as one line
        if verbose:
            print(redact_secrets(traceback.format_exc()), file=sys.stderr, end="")
        print(f"bge: error: {_describe(exc)}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        sys.stdout.flush()
        _teardown_logging()


def _teardown_logging() -> None:
    """Remove this call's log handler: an in-process caller (tests, notebooks) may close the
    stream it writes to, and a handler left behind would then fail on every later record."""
    global _handler, _saved_showwarning
    if _handler is not None:
        logging.getLogger().removeHandler(_handler)
        _handler = None
    if _saved_showwarning is not None:
        warnings.showwarning = _saved_showwarning
        _saved_showwarning = None


def _warning_to_log(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """Python warnings (e.g. a store client's advice) as one ``bge: WARNING:`` line, without
    the library's file name and source line; ``-v`` adds where it came from."""
    logging.getLogger("bge_core.cli").warning("%s", message)
    logging.getLogger("bge_core.cli").info("(%s from %s:%d)", category.__name__, filename, lineno)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BGEError):
        text = str(exc)
    elif isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc.strerror)
    elif isinstance(exc, (OSError, ValueError, TypeError)):
        text = str(exc) or type(exc).__name__
    else:
        text = f"{type(exc).__name__}: {exc} (run with -v for the traceback)"
    return redact_secrets(" ".join(text.split()))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
