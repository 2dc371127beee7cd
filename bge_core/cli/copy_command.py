"""``bge copy SRC DST``: copy an index between two stores without re-encoding."""

from __future__ import annotations

import argparse
import sys

from bge_core.cli.stores import open_store
from bge_core.copy import copy_index
from bge_core.index import close_store

__all__ = ["add_copy_command", "cmd_copy"]

_DEFAULT_COLLECTION = "bge"


def add_copy_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``bge copy`` on the CLI's sub-command parsers."""
    p = sub.add_parser(
        "copy",
        help="copy an index to another store (no re-encoding)",
        description="Copy an index between stores, e.g. edge:./bge-index -> qdrant+http://host:6333: vectors and "
        "payload as stored, settings carried over, batched; re-running an interrupted copy writes only what is "
        "missing. Counts and a sample of vectors are checked at the end.",
    )
    p.add_argument("source", metavar="SRC", help="store URI of the index to copy")
    p.add_argument("destination", metavar="DST", help="store URI to copy into")
    p.add_argument(
        "--collection", default=_DEFAULT_COLLECTION, help=f"source collection (default {_DEFAULT_COLLECTION})"
    )
    p.add_argument("--to-collection", default=None, help="destination collection (default: the source's name)")
    p.add_argument("--batch-size", type=int, default=256, help="records per read and write (default 256)")
    p.add_argument(
        "--sample", type=int, default=100, help="records whose vectors are compared at the end (default 100)"
    )
    p.add_argument(
        "--no-progress", dest="progress", action="store_const", const=False, default=None, help="no progress bar"
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug); tracebacks on errors")
    p.set_defaults(func=cmd_copy)


def cmd_copy(args: argparse.Namespace) -> int:
    """Run ``bge copy``."""
    if args.batch_size < 1 or args.sample < 0:
        raise ValueError("--batch-size must be >= 1 and --sample >= 0")
    to_collection = args.to_collection or args.collection
    if args.source.strip() == args.destination.strip() and to_collection == args.collection:
        raise ValueError("SRC and DST are the same store and collection; name another DST or --to-collection")
    src = open_store(args.source, collection=args.collection)
    try:
        dst = open_store(args.destination, collection=to_collection)
        try:
            report = copy_index(src, dst, batch_size=args.batch_size, sample=args.sample, show_progress=args.progress)
        finally:
            close_store(dst)
    finally:
        close_store(src)
    out = getattr(args, "stdout", None) or sys.stdout
    print(
        f"copied {args.source} (collection {args.collection!r}) to {args.destination} (collection {to_collection!r}): "
        f"{report.written} written, {report.skipped} already there; both hold {report.destination_count} records, "
        f"{report.checked} sampled records equal",
        file=out,
    )
    return 0
