"""Embedded stores at scale: Qdrant Edge vs Qdrant local mode vs Milvus Lite, vectors given.

Data (synthetic, deterministic, ``--data``, default both): ``minilm``, unit vectors whose
nearest-neighbour similarities and intrinsic dimension match all-MiniLM-L6-v2 vectors of
SciFact (shared mean direction, power-law spectrum, 2 sqrt(N) topics; BENCHMARKS.md section 8),
or ``clusters``, N/100 tiny nearly orthogonal clusters (the earlier runs; far harder for HNSW
than real embeddings); sparse vectors with ~60 non-zeros drawn from a Zipf vocabulary of 30,000
terms; queries drawn from the same distribution (10 sparse terms). Each (store, N) runs in its own process, so peak RSS is
that store's (it includes regenerating the data chunk by chunk, about 2 chunks in memory).

Per store and N: write rate (records with vectors given, no encoding), time until searchable
at full speed (Edge: the HNSW build; the others: first query), search p50 / p99 for dense
and hybrid (RRF k=60 over two prefetches of 100), recall@10 against exact numpy search
(hybrid: against exact RRF over exact top-100 lists), peak RSS and bytes on disk (allocated
blocks). A store that cannot finish writing within ``--cap`` seconds is reported as such.

    python benchmarks/bench_scale.py --sizes 10000 100000 --stores edge qdrant milvus
    python benchmarks/bench_scale.py --sizes 1000000 --stores edge --policy threshold --data minilm --cap 1800
    python benchmarks/bench_scale.py --policies 100000     # Edge HNSW build timing choices
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
for p in (REPO, REPO / "integrations"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

VOCAB = 30_000
NNZ = 60
CHUNK = 10_000
PREFETCH = 100
WARMUP = 50  # untimed queries per mode before the timed ones (see run_one)


# -- data ------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def centers(n: int, dim: int) -> np.ndarray:
    c = np.random.default_rng(12345).normal(size=(max(n // 100, 10), dim)).astype(np.float32)
    out: np.ndarray = c / np.linalg.norm(c, axis=1, keepdims=True)
    return out


def _zipf_terms(rng: np.random.Generator, k: int) -> np.ndarray:
    terms: set[int] = set()
    while len(terms) < k:
        draw = rng.zipf(1.3, size=2 * k) - 1
        terms.update(int(t) for t in draw if t < VOCAB)
    return (
        np.array(sorted(terms)[:k], dtype=np.int32)
        if len(terms) == k
        else np.array(sorted(list(terms)[:k]), dtype=np.int32)
    )


def _zipf_rows(rng: np.random.Generator, rows: int, k: int) -> np.ndarray:
    """``rows`` x ``k`` sorted distinct term ids: per row, Zipf(1.3) draws (``2k`` a round, ids
    below VOCAB) until ``k`` distinct ones, then ``k`` of them (the distribution of ``_zipf_terms``,
    vectorised: 1M points are generated in about a minute instead of ten)."""
    big = np.iinfo(np.int64).max
    draws = np.full((rows, 0), big, dtype=np.int64)
    need = np.ones(rows, dtype=bool)
    while True:
        extra = rng.zipf(1.3, size=(rows, 2 * k)) - 1
        extra[(extra >= VOCAB) | ~need[:, None]] = big
        draws = np.sort(np.concatenate([draws, extra], axis=1), axis=1)
        first = np.ones_like(draws, dtype=bool)
        first[:, 1:] = draws[:, 1:] != draws[:, :-1]
        first &= draws != big
        need = first.sum(axis=1) < k
        if not need.any():
            break
    # k of the distinct ids at random (``_zipf_terms`` takes the first k in set order)
    keys = rng.random(draws.shape)
    keys[~first] = 2.0
    chosen = np.take_along_axis(draws, np.argpartition(keys, k - 1, axis=1)[:, :k], axis=1)
    return np.sort(chosen, axis=1).astype(np.int32)


DATASETS = ("clusters", "minilm")
# "minilm": calibrated to all-MiniLM-L6-v2 vectors of SciFact's 5,183 documents (BENCHMARKS.md
# section 8): a shared mean direction (real sentence embeddings are anisotropic), a power-law
# variance spectrum over a random orthonormal basis (their low intrinsic dimension), and
# sqrt(N)-many topic centres drawn from the same spectrum (density grows with N, as in a larger
# corpus of the same kind, instead of N/100 islands).
MINILM_ALPHA = 0.9  # variance of component i ~ (i + 1) ** -alpha
MINILM_MEAN = 0.5  # norm of the shared mean vector (before normalising each point)
MINILM_TOPIC = 0.9  # scale of a topic centre
MINILM_NOISE = 1.0  # scale of a point around its topic centre
MINILM_QUERY_NOISE = 1.0  # queries: scale of the noise (real queries sit farther from documents)
MINILM_TOPICS_PER_SQRT_N = 2.0


@functools.lru_cache(maxsize=2)
def _minilm_space(n: int, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean vector, basis scaled by the spectrum (dim x dim), topic centres)."""
    rng = np.random.default_rng(54321)
    basis, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    sd = (np.arange(1, dim + 1, dtype=np.float64)) ** (-MINILM_ALPHA / 2)
    sd /= np.sqrt((sd**2).sum())
    scaled = (basis * sd[None, :]).T  # row i: sd_i * basis vector i
    mean = rng.normal(size=dim)
    mean *= MINILM_MEAN / np.linalg.norm(mean)
    k = max(10, int(round(MINILM_TOPICS_PER_SQRT_N * np.sqrt(n))))
    topics = MINILM_TOPIC * (rng.normal(size=(k, dim)) @ scaled)
    return mean.astype(np.float32), scaled.astype(np.float32), topics.astype(np.float32)


def _dense(
    n: int, dim: int, rng: np.random.Generator, size: int, data: str, noise: float = MINILM_NOISE
) -> tuple[np.ndarray, np.ndarray]:
    if data == "minilm":
        mean, scaled, topics = _minilm_space(n, dim)
        cid = rng.integers(0, len(topics), size=size)
        x = mean + topics[cid] + noise * (rng.normal(size=(size, dim)).astype(np.float32) @ scaled)
    elif data == "clusters":
        c = centers(n, dim)
        cid = rng.integers(0, len(c), size=size)
        x = c[cid] + rng.normal(scale=0.35 / np.sqrt(dim) * 4, size=(size, dim)).astype(np.float32)
    else:
        raise SystemExit(f"unknown data set {data!r}: one of {', '.join(DATASETS)}")
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), cid


def chunk(
    n: int, dim: int, start: int, data: str = "clusters"
) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Points ``start .. start+CHUNK`` (dense, sparse (indices, values), cluster ids)."""
    size = min(CHUNK, n - start)
    rng = np.random.default_rng(1_000_003 + start)
    x, cid = _dense(n, dim, rng, size, data)
    terms = _zipf_rows(rng, size, NNZ)
    values = rng.uniform(0.05, 0.4, size=terms.shape).astype(np.float32)
    sparse = [(terms[j], values[j]) for j in range(size)]
    return x, sparse, cid


def queries(n: int, dim: int, q: int, data: str = "clusters") -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    rng = np.random.default_rng(777)
    x, _ = _dense(n, dim, rng, q, data, MINILM_QUERY_NOISE)
    sparse = []
    for _ in range(q):
        idx = np.unique(_zipf_terms(rng, 10))
        sparse.append((idx, np.ones(idx.size, dtype=np.float32)))
    return x, sparse


def point_id(i: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_OID, f"bench:{i}"))


# -- exact ground truth -------------------------------------------------------------------------
def ground_truth(n: int, dim: int, q: int, upto: int | None = None, data: str = "clusters") -> dict[str, Any]:
    """Exact dense top-10, exact hybrid (RRF k=60 over exact top-100 dense and sparse) top-10,
    over the first ``upto`` points (default all ``n``: a capped run is scored on what it wrote)."""
    from scipy import sparse as sp

    from bge_core.scoring import rrf_fusion

    qd, qs = queries(n, dim, q, data)
    qmat = sp.csr_matrix(
        (
            np.concatenate([v for _, v in qs]),
            np.concatenate([i for i, _ in qs]),
            np.cumsum([0] + [len(i) for i, _ in qs]),
        ),
        shape=(q, VOCAB),
    )
    best_d = np.full((q, PREFETCH), -np.inf, dtype=np.float32)
    best_di = np.zeros((q, PREFETCH), dtype=np.int64)
    best_s = np.full((q, PREFETCH), -np.inf, dtype=np.float32)
    best_si = np.zeros((q, PREFETCH), dtype=np.int64)
    for start in range(0, n if upto is None else upto, CHUNK):
        x, sparse, _ = chunk(n, dim, start, data)
        d = qd @ x.T
        smat = sp.csr_matrix(
            (
                np.concatenate([v for _, v in sparse]),
                np.concatenate([i for i, _ in sparse]),
                np.cumsum([0] + [len(i) for i, _ in sparse]),
            ),
            shape=(len(sparse), VOCAB),
        )
        s = (qmat @ smat.T).toarray().astype(np.float32)
        s[s <= 0] = -np.inf  # no shared term: not a sparse match
        for best, besti, scores in ((best_d, best_di, d), (best_s, best_si, s)):
            allv = np.concatenate([best, scores], axis=1)
            alli = np.concatenate([besti, np.arange(start, start + x.shape[0])[None, :].repeat(q, 0)], axis=1)
            top = np.argsort(-allv, axis=1, kind="stable")[:, :PREFETCH]
            best[:] = np.take_along_axis(allv, top, 1)
            besti[:] = np.take_along_axis(alli, top, 1)
    dense10 = [[point_id(int(i)) for i in row[:10]] for row in best_di]
    hybrid10 = []
    for r in range(q):
        dl = [point_id(int(i)) for i in best_di[r]]
        sl = [point_id(int(i)) for i, v in zip(best_si[r], best_s[r]) if np.isfinite(v)]
        hybrid10.append([k for k, _ in rrf_fusion([dl, sl], k=60)[:10]])
    return {"dense": dense10, "hybrid": hybrid10}


# -- stores ------------------------------------------------------------------------------------
def open_store(kind: str, folder: Path, build_threshold: int | None, edge_options: dict[str, Any] | None = None) -> Any:
    if kind == "edge":
        from bge_qdrant.edge_store import EdgeStore

        return EdgeStore(
            folder / "edge", "bench", build_threshold=build_threshold, show_progress=False, **(edge_options or {})
        )
    if kind == "qdrant":
        from qdrant_client import QdrantClient

        from bge_qdrant.store import QdrantStore

        return QdrantStore(QdrantClient(path=str(folder / "qdrant")), "bench", owns_client=True)
    if kind == "milvus":
        from pymilvus import MilvusClient

        from bge_milvus.store import MilvusStore

        return MilvusStore(MilvusClient(str(folder / "milvus.db")), "bench", owns_client=True)
    raise SystemExit(f"unknown store {kind}")


def records(n: int, dim: int, start: int, data: str = "clusters") -> Iterator[Any]:
    from bge_core.index import Record
    from bge_core.types import SparseVector

    x, sparse, cid = chunk(n, dim, start, data)
    for j in range(x.shape[0]):
        i = start + j
        yield Record(
            id=point_id(i),
            text=f"doc {i}",
            metadata={"cluster": int(cid[j])},
            hash=str(i),
            dense=x[j],
            sparse=SparseVector(sparse[j][0], sparse[j][1]),
            colbert=None,
        )


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class AnonPeak:
    """Peak anonymous (private) memory of this process, sampled every 0.2 s: peak RSS
    (``ru_maxrss``) also counts the pages of memory-mapped segment files, which the kernel can
    drop (during an Edge merge RSS reached 6.6 GB while the whole machine used 1.7-2.0 GB)."""

    def __init__(self) -> None:
        import threading

        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                with open("/proc/self/status", encoding="utf-8") as fh:
                    for line in fh:
                        if line.startswith("RssAnon:"):
                            self.peak_mb = max(self.peak_mb, int(line.split()[1]) / 1024)
            except OSError:
                return

    def stop(self) -> float:
        self._stop.set()
        return self.peak_mb


def disk_bytes(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        if p.is_file():
            total += p.stat().st_blocks * 512
    return total


def run_one(
    kind: str,
    n: int,
    dim: int,
    q: int,
    cap: float,
    policy: str,
    search_cap: float,
    data: str = "clusters",
    edge_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One store, one size (in this process)."""
    from bge_core.index import CollectionSpec, SearchRequest
    from bge_core.types import SparseVector

    folder = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-"))
    anon = AnonPeak()
    from bge_qdrant.edge_store import DEFAULT_BUILD_THRESHOLD

    # "threshold": the store's default; "every:N": build after every N points; "end": only at the end
    threshold = (
        None
        if policy == "end"
        else int(policy.split(":")[1])
        if policy.startswith("every:")
        else DEFAULT_BUILD_THRESHOLD
    )
    store = open_store(kind, folder, threshold, edge_options if kind == "edge" else None)
    out: dict[str, Any] = {"store": kind, "n": n, "dim": dim, "policy": policy if kind == "edge" else "-", "data": data}
    if kind == "edge":
        out["edge_options"] = edge_options or {}
    out["load_start"] = os.getloadavg()[0]
    builds = {"n": 0, "wall": 0.0, "cpu": 0.0}
    if kind == "edge":  # time the HNSW builds that run inside upsert apart from the writes
        real_build = store.build_index

        def timed_build() -> bool:
            w, c = time.perf_counter(), time.process_time()
            try:
                return bool(real_build())
            finally:
                builds["n"] += 1
                builds["wall"] += time.perf_counter() - w
                builds["cpu"] += time.process_time() - c
                log(f"  build {builds['n']}: {time.perf_counter() - w:.1f}s wall")

        store.build_index = timed_build
    try:
        store.ensure(CollectionSpec(dense_dim=dim, sparse=True, colbert_dim=None))
        t0 = time.perf_counter()
        c0 = time.process_time()
        written = 0
        gen_s = gen_cpu = 0.0
        for start in range(0, n, CHUNK):
            g, gc = time.perf_counter(), time.process_time()
            recs = list(records(n, dim, start, data))
            gen_s += time.perf_counter() - g
            gen_cpu += time.process_time() - gc
            for b in range(0, len(recs), 1000):
                store.upsert(recs[b : b + 1000])
            written += len(recs)
            del recs
            if written % 100_000 == 0 or written == n:
                el = time.perf_counter() - t0 - gen_s
                log(
                    f"  {written:,} written: {el:.0f}s ({written / max(el - builds['wall'], 1e-9):,.0f}/s without "
                    f"builds), {builds['n']} builds {builds['wall']:.0f}s, RSS {rss_mb():,.0f} MB, load {os.getloadavg()[0]:.1f}"
                )
            if time.perf_counter() - t0 - gen_s > cap:
                # capped: searches are still timed, on what was written (no recall then)
                out["write"] = f"capped: {written:,} of {n:,} in {time.perf_counter() - t0 - gen_s:.0f}s"
                break
        ingest_s = time.perf_counter() - t0 - gen_s
        write_s = ingest_s - builds["wall"]
        out["write_s"] = write_s
        out["written"] = written
        out["write_rate"] = written / write_s
        out["write_rate_cpu"] = written / max(time.process_time() - c0 - gen_cpu - builds["cpu"], 1e-9)
        out["ingest_rate"] = written / ingest_s  # builds during the ingest included
        out["builds_during_ingest"] = builds["n"]
        out["build_s_during_ingest"] = builds["wall"]
        out["build_cpu_s_during_ingest"] = builds["cpu"]
        out["rss_after_write_mb"] = rss_mb()
        qd, qs = queries(n, dim, q, data)
        t1 = time.perf_counter()
        if kind == "edge":
            # what the end of an ingest does (QdrantEdgeIndex.add_texts / close): the last
            # build, then the segment merge; both timed, in CPU seconds too
            c1 = time.process_time()
            store.build_index = real_build
            store.build_index()
            out["last_build_s"] = time.perf_counter() - t1
            out["last_build_cpu_s"] = time.process_time() - c1
            out["segments_before_merge"] = store.segment_count()
            log(f"  last build {out['last_build_s']:.0f}s, {out['segments_before_merge']} segments; merging")
            t2, c2 = time.perf_counter(), time.process_time()
            store.finish_ingest()
            out["merge_s"] = time.perf_counter() - t2
            out["merge_cpu_s"] = time.process_time() - c2
            out["segments"] = store.segment_count()
            out["rss_after_merge_mb"] = rss_mb()
            log(f"  merge {out['merge_s']:.0f}s ({out['merge_cpu_s']:.0f} CPU-s), {out['segments']} segments")
        req0 = SearchRequest("dense", 10, qd[0], None, None, "rrf", 60, (1.0, 1.0), PREFETCH, None)
        store.query(req0)
        out["searchable_s"] = time.perf_counter() - t1
        # Warm-up, untimed: WARMUP stored points (not the timed queries) searched once per mode,
        # so the timed queries do not pay the first touch of a freshly merged segment's pages;
        # a server answers from warm pages.
        warm_start = (written // 2 // CHUNK) * CHUNK
        for rec in itertools.islice(records(n, dim, warm_start, data), WARMUP):
            for mode in ("dense", "hybrid"):
                store.query(top10(mode, rec.dense, rec.sparse))
        out["warmup_queries"] = WARMUP
        lat: dict[str, list[float]] = {"dense": [], "hybrid": []}
        cpu: dict[str, list[float]] = {"dense": [], "hybrid": []}
        got: dict[str, list[list[str]]] = {"dense": [], "hybrid": []}
        for mode in ("dense", "hybrid"):
            spent = 0.0
            for i in range(q):
                req = top10(mode, qd[i], SparseVector(qs[i][0], qs[i][1]))
                s, sc = time.perf_counter(), time.process_time()
                hits = store.query(req)
                dt = time.perf_counter() - s
                lat[mode].append(dt)
                cpu[mode].append(time.process_time() - sc)  # all threads of this process
                got[mode].append([h.id for h in hits])
                spent += dt
                if spent > search_cap and i >= 4:
                    break
        out["count"] = store.count()
        out["load_end"] = os.getloadavg()[0]
        for mode in ("dense", "hybrid"):
            a = np.array(lat[mode]) * 1000
            out[f"{mode}_p50_ms"] = float(np.percentile(a, 50))
            out[f"{mode}_p99_ms"] = float(np.percentile(a, 99))
            out[f"{mode}_queries"] = len(a)
            out[f"{mode}_p50_cpu_ms"] = float(np.percentile(np.array(cpu[mode]) * 1000, 50))
            out[f"{mode}_got"] = got[mode]
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()
        out["disk_bytes"] = disk_bytes(folder)
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out["peak_anon_mb"] = anon.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return out


def top10(mode: str, dense: Any, sparse: Any) -> Any:
    """The timed search: top 10, RRF (k=60) of dense and sparse prefetches for hybrid."""
    from bge_core.index import SearchRequest

    return SearchRequest(
        mode, 10, dense, sparse if mode == "hybrid" else None, None, "rrf", 60, (1.0, 1.0), PREFETCH, None
    )


# -- driver -------------------------------------------------------------------------------------
def edge_options(args: argparse.Namespace) -> dict[str, Any]:
    """EdgeStore options given on the command line (the store's defaults otherwise)."""
    opts: dict[str, Any] = json.loads(args.edge_options) if args.edge_options else {}
    for key in ("hnsw_m", "hnsw_ef_construct", "hnsw_ef", "max_segments", "merged_segment_points"):
        value = getattr(args, key, None)
        if value is not None:
            opts[key] = None if value == 0 and key == "max_segments" else value
    if getattr(args, "dense_quantization", None) is not None:
        opts["dense_quantization"] = None if args.dense_quantization == "none" else args.dense_quantization
    if getattr(args, "quantization_oversampling", None) is not None:
        opts["quantization_oversampling"] = args.quantization_oversampling
    return opts


def child(args: argparse.Namespace, kind: str, n: int, policy: str, data: str) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--n",
        str(n),
        "--dim",
        str(args.dim),
        "--queries",
        str(args.queries),
        "--cap",
        str(args.cap),
        "--policy",
        policy,
        "--search-cap",
        str(args.search_cap),
        "--data",
        data,
        "--edge-options",
        json.dumps(edge_options(args)),
    ]
    try:
        # the child's progress lines (stderr) pass through
        r = subprocess.run(cmd, check=False, stdout=subprocess.PIPE, text=True, timeout=args.cap * 3 + 600)
    except subprocess.TimeoutExpired:
        return {
            "store": kind,
            "n": n,
            "dim": args.dim,
            "data": data,
            "write": f"timed out after {args.cap * 3 + 600:.0f}s",
        }
    if r.returncode != 0:
        return {
            "store": kind,
            "n": n,
            "dim": args.dim,
            "data": data,
            "write": f"failed with exit code {r.returncode} (see stderr)",
        }
    row: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    return row


def recall(got: list[list[str]], want: list[list[str]]) -> float:
    return float(np.mean([len(set(g[:10]) & set(w)) / len(w) for g, w in zip(got, want)]))


def fmt(row: dict[str, Any], truth: dict[str, Any] | None) -> str:
    if "write_s" not in row:
        rate = f"{row['write_rate']:,.0f}/s" if "write_rate" in row else "-"
        return (
            f"| {row['store']} | {row.get('data', '-')} | {row['n']:,} | {row.get('policy', '-')} | {rate} ({row.get('write')}) |"
            + " - |" * 13
        )
    capped = "write" in row
    rd = rh = "n/a"
    if truth is not None:  # capped runs: against exact search over the points written
        rd = f"{recall(row['dense_got'], truth['dense'][: row['dense_queries']]):.3f}"
        rh = f"{recall(row['hybrid_got'], truth['hybrid'][: row['hybrid_queries']]):.3f}"
    over = f" (over {row['written']:,})" if capped else ""
    ingest = row.get("ingest_rate", row["write_rate"])
    merge = (
        f"{row['last_build_s']:.0f} s + merge {row['merge_s']:.0f} s ({row['last_build_cpu_s'] + row['merge_cpu_s']:.0f} CPU-s)"
        if "merge_s" in row
        else f"{row['searchable_s']:.1f} s"
    )
    segs = f"{row.get('segments_before_merge', '-')} -> {row.get('segments', '-')}" if "merge_s" in row else "-"
    return (
        f"| {row['store']} | {row.get('data', '-')} | {row['n']:,} | {row.get('policy', '-')} | {row['write_rate']:,.0f}/s"
        f"{' (' + row['write'] + ')' if capped else ''} | {row.get('write_rate_cpu', 0):,.0f}/s | "
        f"{ingest:,.0f}/s ({row.get('builds_during_ingest', 0)} builds, {row.get('build_s_during_ingest', 0):.0f} s) | "
        f"{merge} | {segs} | {row['dense_p50_ms']:.2f} / {row['dense_p99_ms']:.2f}{over} | "
        f"{row['hybrid_p50_ms']:.2f} / {row['hybrid_p99_ms']:.2f} | "
        f"{row.get('dense_p50_cpu_ms', 0):.2f} / {row.get('hybrid_p50_cpu_ms', 0):.2f} | {rd} | {rh} | {row['dense_queries']}/{row['hybrid_queries']} | "
        f"{row['peak_rss_mb']:,.0f} ({row.get('peak_anon_mb', 0):,.0f}) | {row['disk_bytes'] / 1e6:,.0f} | {row.get('load_start', 0):.0f}-{row.get('load_end', 0):.0f} |"
    )


HEADER = (
    "| store | data | N | HNSW build | write rate (builds apart) | writes per CPU-second | ingest incl. builds | "
    "until searchable (Edge: last build + merge) | segments | dense p50 / p99 ms | hybrid p50 / p99 ms | "
    "CPU ms per query p50 dense / hybrid | recall@10 dense | recall@10 hybrid | "
    "queries timed | peak RSS MB (anonymous) | disk MB | load |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--stores", nargs="+", default=["edge", "qdrant", "milvus"])
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--cap", type=float, default=900.0, help="seconds of writing before a store is reported as capped")
    ap.add_argument(
        "--search-cap", type=float, default=120.0, help="seconds of searching per mode (fewer queries then)"
    )
    ap.add_argument("--policies", type=int, default=0, help="compare Edge HNSW build timings at this N")
    ap.add_argument(
        "--data",
        nargs="+",
        default=["minilm", "clusters"],
        choices=DATASETS,
        help="minilm: calibrated to real all-MiniLM-L6-v2 vectors (section 8); clusters: N/100 tiny nearly "
        "orthogonal clusters (the earlier runs; hard for HNSW)",
    )
    ap.add_argument("--hnsw-m", type=int, default=None, help="Edge: HNSW m (store default otherwise)")
    ap.add_argument("--hnsw-ef-construct", type=int, default=None, help="Edge: HNSW ef_construct")
    ap.add_argument("--hnsw-ef", type=int, default=None, help="Edge: search ef")
    ap.add_argument("--max-segments", type=int, default=None, help="Edge: merge to this many segments (0: never)")
    ap.add_argument("--merged-segment-points", type=int, default=None, help="Edge: largest merged segment")
    ap.add_argument(
        "--dense-quantization",
        choices=["int8", "none"],
        default=None,
        help="Edge: int8 scalar quantisation of the dense vectors with float rescoring (store default: int8)",
    )
    ap.add_argument("--quantization-oversampling", type=float, default=None, help="Edge: candidates rescored per hit")
    ap.add_argument("--edge-options", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--no-truth", action="store_true", help="skip the exact ground truth (no recall)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument(
        "--policy",
        default="end",
        help="Edge HNSW build: end (default: writes and build timed apart), threshold (the store's default), every:N",
    )
    args = ap.parse_args()
    if args.child:
        opts = json.loads(args.edge_options) if args.edge_options else {}
        row = run_one(
            args.child, args.n, args.dim, args.queries, args.cap, args.policy, args.search_cap, args.data[0], opts
        )
        print(json.dumps(row))
        return
    plan: list[tuple[str, int, str, str]] = []
    if args.policies:
        n = args.policies
        plan = [("edge", n, p, d) for d in args.data for p in (f"every:{n // 6}", f"every:{n // 2}", "end")]
    else:
        plan = [(s, n, args.policy, d) for d in args.data for n in args.sizes for s in args.stores]
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next(ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(
        f"bench_scale: dim {args.dim}, {args.queries} queries, cap {args.cap:.0f}s; {cpu}, {os.cpu_count()} cores (shared machine)"
    )
    print(HEADER, flush=True)
    truths: dict[tuple[str, int, int], dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    for kind, n, policy, data in plan:
        row = child(args, kind, n, policy, data)
        if args.json:  # the row first, so a run stopped during the ground truth keeps it
            args.json.write_text(json.dumps([*rows, row], indent=1))
        truth = None
        if not args.no_truth and "write_s" in row:  # after the child: it is timed without this load
            key = (data, n, row["written"])
            if key not in truths:
                truths[key] = ground_truth(n, args.dim, args.queries, upto=row["written"], data=data)
            truth = truths[key]
        rows.append(row)
        print(fmt(row, truth), flush=True)
        if args.json:  # after every row, so a run stopped later keeps what it measured
            args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
