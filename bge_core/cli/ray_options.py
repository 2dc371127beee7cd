"""``bge index SOURCE --ray``: the options and the command body that hand the job to
:func:`bge_ray.ingest` (extra ``ray``). ``bge_ray`` is imported only when ``--ray`` is given,
so the CLI works without Ray installed.

Hooks (two lines each): ``add_ray_options(p)`` on the ``index`` sub-parser, and at the top
of ``cmd_index``: ``if getattr(args, "ray", False): return run_index_on_ray(args)``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any, TextIO

from bge_core.cli.arguments import non_negative, positive_int
from bge_core.errors import MissingDependencyError

__all__ = ["add_ray_options", "run_index_on_ray"]


_EXIT_OK = 0
_EXIT_SKIPPED_INPUT = 3


def add_ray_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--ray``, ``--ray-address``, ``--workers``, ``--gpus-per-worker``,
    ``--cpus-per-worker`` and ``--on-error`` to the ``index`` sub-parser."""
    group = parser.add_argument_group("distributed encoding on Ray (pip install 'bge-integrations[ray]')")
    group.add_argument(
        "--ray",
        action="store_true",
        default=False,
        help="encode on a Ray actor pool (a local Ray unless --ray-address is given)",
    )
    group.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDRESS",
        help="a running Ray cluster: HOST:PORT, ray://HOST:PORT or auto",
    )
    group.add_argument(
        "--workers", type=positive_int, default=1, help="encoder workers, each loads the model once (default 1)"
    )
    group.add_argument("--gpus-per-worker", type=non_negative, default=0.0, help="GPUs per worker (default 0: CPU)")
    group.add_argument("--cpus-per-worker", type=non_negative, default=1.0, help="CPUs per worker (default 1)")
    group.add_argument(
        "--on-error",
        choices=["fail", "skip"],
        default="fail",
        help="a chunk that fails to encode: stop (fail, default) or leave it out and exit 3 (skip)",
    )


def _bge_ray() -> Any:
    try:
        return importlib.import_module("bge_ray")
    except MissingDependencyError:
        raise
    except ImportError as exc:
        raise MissingDependencyError("ray[data]", "ray", "bge index --ray") from exc


def run_index_on_ray(args: argparse.Namespace) -> int:
    """The body of ``bge index --ray``: the same chunks, ids and settings as ``bge index``."""
    out: TextIO = getattr(args, "stdout", None) or sys.stdout
    bge_ray = _bge_ray()
    try:
        result = bge_ray.ingest(
            list(args.sources),
            args.store,
            model=args.model,
            collection=args.collection,
            workers=args.workers,
            gpus_per_worker=args.gpus_per_worker,
            cpus_per_worker=args.cpus_per_worker,
            batch_size=args.batch_size,
            max_tokens=args.max_tokens,
            colbert=False if args.no_colbert else None,
            device=args.device,
            dtype=args.dtype,
            on_error=args.on_error,
            address=args.ray_address,
            show_progress=args.progress,
        )
    except KeyboardInterrupt:
        print("interrupted; run the same command again to finish (stored chunks are kept and skipped)", file=sys.stderr)
        raise
    report = result.report
    print(
        f"indexed {report.documents} documents ({result.rows} chunks, at most {result.settings['max_tokens']} tokens each) "
        f"from {report.files} files into {args.store} (collection {args.collection!r}) on Ray ({args.workers} workers): "
        f"{result.encoded} encoded, {result.skipped} already stored; the index holds {result.stored} chunks",
        file=out,
    )
    problems = len(report.problems) + len(result.failed)
    if problems:
        print(f"bge: {problems} input problem(s) skipped, see the warnings above", file=sys.stderr)
        return _EXIT_SKIPPED_INPUT
    return _EXIT_OK
