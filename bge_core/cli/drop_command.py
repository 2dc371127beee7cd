"""``bge drop``: delete an index (a collection, its companions and its settings record), and
the ``--recreate`` option of ``bge index`` (drop, then index anew in one run).

Dropping never creates a store: a local store (``edge:``, ``qdrant:``, ``milvus:``) that does
not exist, or a collection that is not there, is refused with ``no index at ...`` (exit 1).
Without ``--yes`` it asks first; with no terminal to ask on it refuses (exit 2).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TextIO

from bge_core.cli.stores import open_store, resolve_default_store
from bge_core.errors import BGEError, DamagedIndexError
from bge_core.index import DroppableStore, Store, close_store
from bge_core.uris import redact_uri

__all__ = [
    "EXIT_NOT_CONFIRMED",
    "add_drop_command",
    "add_recreate_option",
    "cmd_drop",
    "drop_store",
]

logger = logging.getLogger(__name__)

#: ``bge drop`` without ``--yes`` where no terminal can confirm: a usage error, as for bad arguments.
EXIT_NOT_CONFIRMED = 2
_DEFAULT_COLLECTION = "bge"


def add_drop_command(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """Register ``bge drop`` on the CLI's sub-command parsers (``common``: --store, -v, ...)."""
    p = sub.add_parser(
        "drop",
        parents=[common],
        help="delete an index (a collection and its settings)",
        description="Delete the collection of an index with everything that belongs to it (Milvus' ColBERT "
        "companion collection, the settings record). Asks first unless --yes. Never creates a store: a "
        "store or collection that does not exist is an error.",
    )
    p.add_argument(
        "--collection", default=_DEFAULT_COLLECTION, help=f"collection to delete (default {_DEFAULT_COLLECTION})"
    )
    p.add_argument("-y", "--yes", action="store_true", default=False, help="do not ask for confirmation")
    p.set_defaults(func=cmd_drop)


def add_recreate_option(index_parser: argparse.ArgumentParser) -> None:
    """``bge index --recreate``: drop the collection first, then index SOURCE into a new one."""
    index_parser.add_argument(
        "--recreate",
        action="store_true",
        default=False,
        help="drop the collection first and build it anew (options left out default to the dropped "
        "index's model, --max-tokens and ColBERT choice; the model is loaded before anything is deleted)",
    )


def _out(args: argparse.Namespace) -> TextIO:
    stream: TextIO = getattr(args, "stdout", None) or sys.stdout
    return stream


def _local_path(uri: str) -> str | None:
    from bge_core.cli.commands import local_store_path

    local = local_store_path(uri)
    return None if local is None else str(local)


def drop_store(store: Store, where: str) -> bool:
    """``store.drop()``; a store without it is refused with a line that names it."""
    if not isinstance(store, DroppableStore):
        raise BGEError(f"{where}: the {type(store).__name__} store cannot delete collections")
    return store.drop()


def _confirm(question: str) -> bool | None:
    """The answer (True for y/yes), or None when there is no terminal to ask on."""
    stdin = sys.stdin
    try:
        interactive = stdin is not None and stdin.isatty()
    except (AttributeError, ValueError):
        interactive = False
    if not interactive:
        return None
    print(question, end=" ", file=sys.stderr, flush=True)
    answer = stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def _ask(args: argparse.Namespace, question: str, what: str) -> int | None:
    """None when the drop may go ahead (``--yes``, or the user said yes); else the exit code,
    after saying why nothing was deleted."""
    if args.yes:
        return None
    answer = _confirm(question)
    if answer is None:
        print(f"bge: error: bge drop deletes {what}; pass --yes to confirm (no terminal to ask on)", file=sys.stderr)
        return EXIT_NOT_CONFIRMED
    if not answer:
        print("bge: nothing deleted", file=sys.stderr)
        return 1
    return None


def _drop_damaged(args: argparse.Namespace, exc: DamagedIndexError, shown: str) -> int:
    """Drop a collection whose files are damaged, without opening the store."""
    assert exc.drop is not None
    print(f"bge: {exc}", file=sys.stderr)
    what = f"the damaged collection {args.collection!r} of {shown}"
    refused = _ask(args, f"bge: delete {what}? [y/N]", what)
    if refused is not None:
        return refused
    exc.drop(args.collection)
    print(f"dropped collection {args.collection!r} of {shown} (damaged)", file=_out(args))
    return 0


def _holds_a_store(uri: str, local: Path) -> bool:
    """Whether the local path of ``uri`` holds a store of its kind (opening one that does not
    would create it): Qdrant local mode writes ``meta.json``, Milvus Lite a folder with
    ``collections/`` (a file in older versions), Qdrant Edge ``bge-edge.json``."""
    if not local.exists():
        return False
    scheme = uri.partition(":")[0].lower()
    if scheme == "qdrant":
        return (local / "meta.json").is_file()
    if scheme == "milvus":
        return local.is_file() or (local / "collections").is_dir()
    if scheme == "edge":
        return (local / "bge-edge.json").is_file()  # bge_qdrant.edge_store.MARKER_NAME
    return True


def cmd_drop(args: argparse.Namespace) -> int:
    """Run ``bge drop``."""
    uri = resolve_default_store(args.store)
    shown = redact_uri(uri)
    where = f"{shown} (collection {args.collection!r})"
    local = _local_path(uri)
    if local is not None and not _holds_a_store(uri, Path(local)):
        # Opening a local store would create it (or write into a folder of something else).
        raise BGEError(f"no index at {local}: nothing to drop (check --store)")
    try:
        store = open_store(uri, collection=args.collection)
    except DamagedIndexError as exc:
        if exc.drop is None or args.collection not in exc.collections:
            raise
        return _drop_damaged(args, exc, shown)
    try:
        if not isinstance(store, DroppableStore):
            raise BGEError(f"{where}: the {type(store).__name__} store cannot delete collections")
        rows, settings = store.count(), store.read_settings()
        if rows or settings is not None:
            model = f", model {settings['model']}" if settings and settings.get("model") else ""
            what = f"{rows} rows{model}"
            target = f"collection {args.collection!r} of {shown} ({what})"
            refused = _ask(args, f"bge: delete {target}? [y/N]", target)
            if refused is not None:
                return refused
        else:
            # No rows and no settings: an empty collection, a Milvus ColBERT companion left by
            # an interrupted creation, or nothing. Dropping loses nothing: no question asked.
            what = "empty"
        if not store.drop():
            raise BGEError(f"no index at {where}: nothing to drop (check --store and --collection)")
    finally:
        close_store(store)
    print(f"dropped collection {args.collection!r} of {shown} ({what})", file=_out(args))
    return 0
