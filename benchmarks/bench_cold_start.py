"""`bge search` cold start: this tree against an earlier git revision, idle and next to a busy process.

A 4-document index of the real all-MiniLM-L6-v2 (the default Edge store, ``edge:``) is built
once; then ``bge search`` runs in fresh processes, alternating between the two code versions
(so both see the same background noise), ``--reps`` times each, idle and with ONE CPU-bound
background process. "before" is ``--before-rev`` exported with ``git archive`` into a temporary
folder (default: the commit before the cold-start work); "after" is this working tree.
Also prints the import profile of one "after" run (the slowest top-level imports).

    python benchmarks/bench_cold_start.py [--reps 5] [--before-rev REV] [--no-busy] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from common import REPO, cpu_kind, minilm_dir, print_table, write_json

DEFAULT_BEFORE = "8f70ae7"  # main before the cold-start work (issue 18)
TEXTS = ["Coffee and sleep.", "Bones need vitamin D.", "Sleep apnea and the heart.", "Tea and antioxidants."]


def _export(rev: str, dest: Path) -> Path:
    """The tree of ``rev`` (git archive) unpacked into ``dest``."""
    archive = dest / "src.tar"
    with open(archive, "wb") as fh:
        subprocess.run(["git", "-C", str(REPO), "archive", rev], stdout=fh, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest / "src", filter="data")
    return dest / "src"


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = f"{root}{os.pathsep}{root / 'integrations'}"
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def _search(root: Path, store: str, extra: list[str] | None = None) -> tuple[float, float, str]:
    """Wall and CPU seconds (user + sys) of one ``bge search`` in a fresh process."""
    before = os.times()
    t = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            *(extra or []),
            "-m",
            "bge_core.cli",
            "search",
            "sleep and coffee",
            "--store",
            store,
            "-k",
            "3",
        ],
        env=_env(root),
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
    )
    wall = time.perf_counter() - t
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return wall, cpu, out.stderr


def _import_profile(root: Path, store: str, top: int = 8) -> list[list[object]]:
    """The slowest top-level imports of one run (``python -X importtime``)."""
    _, _, err = _search(root, store, ["-X", "importtime"])
    rows = []
    for line in err.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)$", line)
        if m and not line.split("|")[2].startswith("  "):
            rows.append([m.group(2).strip(), int(m.group(1)) / 1e6])
    rows.sort(key=lambda r: -float(r[1]))  # type: ignore[arg-type]
    return rows[:top]


def _busy() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def _load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:  # pragma: no cover - not Linux
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--before-rev", default=DEFAULT_BEFORE, help=f"git revision of 'before' (default {DEFAULT_BEFORE})")
    ap.add_argument("--no-busy", action="store_true", help="skip the runs next to a busy process")
    ap.add_argument("--json", default="")
    args = ap.parse_args()

    results: dict[str, object] = {"cpu": cpu_kind(), "before_rev": args.before_rev, "reps": args.reps}
    with tempfile.TemporaryDirectory(prefix="bge-cold-") as tmp_name:
        tmp = Path(tmp_name)
        roots = {"before": _export(args.before_rev, tmp), "after": REPO}
        notes = tmp / "notes"
        notes.mkdir()
        for i, text in enumerate(TEXTS):
            (notes / f"n{i}.txt").write_text(text, encoding="utf-8")
        store = f"edge:{tmp / 'idx'}"
        subprocess.run(
            [sys.executable, "-m", "bge_core.cli", "index", str(notes), "--store", store, "--model", str(minilm_dir())],
            env=_env(REPO),
            check=True,
            capture_output=True,
            cwd=REPO,
        )
        for root in roots.values():  # warm the page cache and both trees' bytecode
            _search(root, store)

        rows = []
        for load in ("idle",) if args.no_busy else ("idle", "1 busy process"):
            busy = _busy() if load != "idle" else None
            load_before = _load()
            try:
                time.sleep(0.5 if busy else 0)
                walls: dict[str, list[float]] = {name: [] for name in roots}
                cpus: dict[str, list[float]] = {name: [] for name in roots}
                for _ in range(args.reps):
                    for name, root in roots.items():
                        wall, cpu, _ = _search(root, store)
                        walls[name].append(wall)
                        cpus[name].append(cpu)
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
            med = {name: statistics.median(v) for name, v in walls.items()}
            for name in roots:
                rows.append(
                    [
                        load,
                        name,
                        med[name],
                        min(walls[name]),
                        statistics.median(cpus[name]),
                        med["before"] / med[name],
                        f"{load_before}/{_load()}",
                    ]
                )
            results[load] = {"wall": walls, "cpu": cpus}
        print_table(
            ["machine", "code", "wall s (median)", "wall s (min)", "CPU s (median)", "speed-up", "load 1-min"], rows
        )
        print("\nslowest top-level imports of one 'after' run (python -X importtime, cumulative s):")
        print_table(["module", "s"], _import_profile(REPO, store))
    print(
        f"\nCPU: {cpu_kind()}; `bge search` on a 4-document edge: index, all-MiniLM-L6-v2; before = {args.before_rev}"
    )
    write_json(args.json, results)


if __name__ == "__main__":
    main()
