#!/usr/bin/env python3
"""Vector index kinds at scale: exact flat vs. HNSW on synthetic clustered 512-d vectors.

Run from the repository root (the 1M run needs about 7 GiB of RAM and 15-25 minutes on 2 cores)::

    source scripts/venv.sh && nice -n 10 python bench/index.py
    python bench/index.py --sizes 10000,25000,50000,100000    # where HNSW starts to pay (the policy threshold)
    python bench/index.py --sizes 100000 --ef-search 16,32,64,128 --ef-construction 40
    python bench/index.py --json                               # one JSON object on stdout instead of tables

Data: a deterministic Gaussian mixture of unit vectors (numpy, float32, generated in fixed chunks so
a smaller size is a prefix of a larger one): ``--clusters`` centres, each point its centre plus a
low-rank spread (``--rank`` directions of its own cluster, like the low intrinsic dimension of real
embeddings) plus isotropic noise. Queries are held-out points of the same mixture with extra noise.

Per size and kind, through mmsearch's own index classes (``FaissIndex``, ``HnswIndex``):

* build: adding every vector in chunks of 65536, with FAISS on ``--threads`` threads (default: all);
* memory: bytes per vector of the saved file, and the RSS growth while building (includes the id map);
* single-query latency p50/p99: ``index.search(one_query, k)`` in a loop, FAISS on ONE thread;
* batch QPS: all queries in one ``search`` call on ``--threads`` threads;
* recall@k against exact search (the flat index's batch result, computed in batches);
* save and load times of the one-file format.

HNSW is measured once per ``--ef-search`` value on the same graph; the row with mmsearch's default
``HNSW_EF_SEARCH`` carries the target: at the largest size, recall@10 >= 0.95 with p50 <= 2 ms.
Each timed loop reports how much CPU other processes used (over 5%: rerun on a quiet machine).
Temporary index files go under ``$TMPDIR``; nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _common import CpuMonitor, Row, all_passed, emit, log, machine_facts, quiet_row

from mmsearch.encoders.base import ModelIdentity
from mmsearch.index import load_index
from mmsearch.index.faiss_index import FaissIndex
from mmsearch.index.hnsw_index import HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH, HNSW_M, HnswIndex
from mmsearch.index.policy import DEFAULT_HNSW_THRESHOLD

CHUNK = 65536  # generation and insertion chunk; part of the data's definition (sizes are prefixes)
RECALL_TARGET = 0.95
P50_TARGET_MS = 2.0
TARGET_SIZE = 1_000_000
WARMUP = 20


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="collection sizes, comma-separated")
    parser.add_argument("--queries", type=int, default=1000, help="held-out queries per size")
    parser.add_argument("-k", type=int, default=10, help="results per query (recall@k)")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--clusters", type=int, default=1000, help="mixture components")
    parser.add_argument("--rank", type=int, default=32, help="directions of each cluster's spread")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kinds", default="flat,hnsw", help="flat, hnsw or both (recall needs flat)")
    parser.add_argument("--m", type=int, default=HNSW_M, help=f"HNSW links per node (default {HNSW_M})")
    parser.add_argument(
        "--ef-construction", type=int, default=HNSW_EF_CONSTRUCTION, help=f"default {HNSW_EF_CONSTRUCTION}"
    )
    parser.add_argument(
        "--ef-search",
        default=f"64,128,{HNSW_EF_SEARCH}",
        help=f"HNSW efSearch values to measure, comma-separated (mmsearch's default: {HNSW_EF_SEARCH})",
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="FAISS threads for build/batch")
    parser.add_argument("--no-save", action="store_true", help="skip the save/load timing")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    try:
        args.sizes = sorted({int(value) for value in args.sizes.split(",")})
        args.ef_search = sorted({int(value) for value in args.ef_search.split(",")})
    except ValueError:
        parser.error("--sizes and --ef-search take comma-separated integers")
    args.kinds = [kind.strip() for kind in args.kinds.split(",")]
    if not set(args.kinds) <= {"flat", "hnsw"} or not args.kinds:
        parser.error("--kinds takes flat, hnsw or flat,hnsw")
    if min(args.sizes + args.ef_search + [args.queries, args.k, args.dim, args.clusters, args.rank]) < 1:
        parser.error("sizes, queries, k, dim, clusters, rank and ef-search must be at least 1")
    return args


# -- data ----------------------------------------------------------------------------------------


class Mixture:
    """Deterministic clustered unit vectors: centre + low-rank spread + isotropic noise, normalised."""

    def __init__(self, dim: int, clusters: int, rank: int, seed: int, spread: float = 1.0, noise: float = 0.3) -> None:
        rng = np.random.default_rng([seed, 0])
        centres = rng.standard_normal((clusters, dim), dtype=np.float32)
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
        self.bases = rng.standard_normal((clusters, rank, dim), dtype=np.float32) / np.float32(np.sqrt(dim))
        self.dim, self.clusters, self.rank, self.seed = dim, clusters, rank, seed
        self.spread, self.noise = spread, noise

    def chunk(self, stream: int, index: int, n: int, extra_noise: float = 0.0) -> np.ndarray:
        """``n`` points of chunk ``index`` of ``stream`` (0: the collection, 1: the queries)."""
        rng = np.random.default_rng([self.seed, 1 + stream, index])
        labels = rng.integers(0, self.clusters, n)
        noise = np.float32((self.noise**2 + extra_noise**2) ** 0.5 / np.sqrt(self.dim))
        points = self.centres[labels] + rng.standard_normal((n, self.dim), dtype=np.float32) * noise
        latent = rng.standard_normal((n, self.rank), dtype=np.float32) * np.float32(self.spread / np.sqrt(self.rank))
        order = np.argsort(labels, kind="stable")
        bounds = np.flatnonzero(np.diff(labels[order])) + 1
        for group in np.split(order, bounds):
            points[group] += latent[group] @ self.bases[labels[group[0]]]
        points /= np.linalg.norm(points, axis=1, keepdims=True)
        return points

    def collection(self, n: int) -> np.ndarray:
        out = np.empty((n, self.dim), dtype=np.float32)
        for index, start in enumerate(range(0, n, CHUNK)):
            out[start : start + CHUNK] = self.chunk(0, index, min(CHUNK, n - start))
        return out

    def queries(self, n: int) -> np.ndarray:
        return self.chunk(1, 0, n, extra_noise=0.2)


# -- measuring -----------------------------------------------------------------------------------


def rss_bytes() -> int:
    """This process's resident memory, from /proc (0 where unavailable)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def set_threads(count: int) -> None:
    import faiss

    faiss.omp_set_num_threads(count)


def build(make: Callable[[], Any], vectors: np.ndarray, threads: int) -> tuple[Any, dict[str, Any]]:
    """Fill a new index with ``vectors`` (ids 0..n-1) in chunks; returns it with time and RSS growth."""
    set_threads(threads)
    gc.collect()
    rss_before = rss_bytes()
    started = time.perf_counter()
    index = make()
    for start in range(0, len(vectors), CHUNK):
        index.add(np.arange(start, min(start + CHUNK, len(vectors)), dtype=np.int64), vectors[start : start + CHUNK])
    build_s = time.perf_counter() - started
    gc.collect()
    rss_growth = rss_bytes() - rss_before
    return index, {"build_s": round(build_s, 2), "rss_bytes_per_vector": round(rss_growth / len(vectors), 1)}


def single_latency(index: Any, queries: np.ndarray, k: int) -> tuple[dict[str, Any], np.ndarray]:
    """One query per ``search`` call, FAISS on one thread; returns percentiles and the ids found."""
    set_threads(1)
    for row in range(min(WARMUP, len(queries))):
        index.search(queries[row : row + 1], k)
    samples = np.empty(len(queries))
    found = np.empty((len(queries), k), dtype=np.int64)
    with CpuMonitor() as cpu:
        for row in range(len(queries)):
            started = time.perf_counter()
            _, ids = index.search(queries[row : row + 1], k)
            samples[row] = time.perf_counter() - started
            found[row] = ids[0]
    ms = samples * 1000.0
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "cpu": cpu.to_dict(),
    }, found


def batch_qps(index: Any, queries: np.ndarray, k: int, threads: int) -> tuple[float, np.ndarray]:
    """All queries in one call on ``threads`` threads; returns queries per second and the ids found."""
    set_threads(threads)
    started = time.perf_counter()
    _, ids = index.search(queries, k)
    return round(len(queries) / (time.perf_counter() - started), 1), ids


def exact_truth(index: FaissIndex, queries: np.ndarray, k: int, threads: int, batch: int = 256) -> np.ndarray:
    """Exact top-k ids from the flat index, in batches of queries."""
    set_threads(threads)
    return np.vstack([index.search(queries[start : start + batch], k)[1] for start in range(0, len(queries), batch)])


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(np.intersect1d(f, t)) for f, t in zip(found, truth, strict=True)]
    return round(float(np.mean(hits)) / truth.shape[1], 4)


def save_and_load(index: Any, folder: Path, n: int) -> dict[str, Any]:
    """Save in the one-file format and load it back; file size per vector and both times."""
    path = folder / f"{index.kind}-{n}.mmidx"
    started = time.perf_counter()
    index.save(path, {"generation": 0})
    save_s = time.perf_counter() - started
    size = path.stat().st_size
    started = time.perf_counter()
    loaded, _ = load_index(path)
    load_s = time.perf_counter() - started
    assert loaded.kind == index.kind and len(loaded) == len(index), "round trip changed the index"
    del loaded
    path.unlink()
    return {"file_bytes_per_vector": round(size / n, 1), "save_s": round(save_s, 2), "load_s": round(load_s, 2)}


# -- one size ------------------------------------------------------------------------------------


def measure_size(
    args: argparse.Namespace, identity: ModelIdentity, vectors: np.ndarray, queries: np.ndarray, folder: Path
) -> list[dict[str, Any]]:
    n, k, results = len(vectors), args.k, []
    truth = None
    if "flat" in args.kinds:
        log(f"[{n}] flat: building ...")
        flat, facts = build(lambda: FaissIndex(identity), vectors, args.threads)
        truth = exact_truth(flat, queries, k, args.threads)
        latency, found = single_latency(flat, queries, k)
        qps, _ = batch_qps(flat, queries, k, args.threads)
        facts.update(latency=latency, batch_qps=qps, recall=recall(found, truth))
        if not args.no_save:
            facts.update(save_and_load(flat, folder, n))
        results.append({"size": n, "kind": "flat", "params": {}, **facts})
        log(f"[{n}] flat: {results[-1]}")
        del flat
    if "hnsw" in args.kinds:
        log(f"[{n}] hnsw M={args.m} efConstruction={args.ef_construction}: building ...")
        make = lambda: HnswIndex(identity, args.m, args.ef_construction)  # noqa: E731
        hnsw, facts = build(make, vectors, args.threads)
        if not args.no_save:
            facts.update(save_and_load(hnsw, folder, n))
        for ef in args.ef_search:
            hnsw.ef_search = ef
            latency, found = single_latency(hnsw, queries, k)
            qps, _ = batch_qps(hnsw, queries, k, args.threads)
            params = {"m": args.m, "ef_construction": args.ef_construction, "ef_search": ef}
            row = {"size": n, "kind": "hnsw", "params": params, **facts, "latency": latency, "batch_qps": qps}
            row["recall"] = recall(found, truth) if truth is not None else None
            results.append(row)
            log(f"[{n}] hnsw ef={ef}: {row}")
        del hnsw
    gc.collect()
    return results


# -- output --------------------------------------------------------------------------------------


def markdown(results: Sequence[dict[str, Any]], k: int) -> str:
    """The results as a markdown table, one row per (size, kind, efSearch)."""
    head = (
        f"| vectors | index | build | bytes/vector (file, RSS) | save / load | p50 | p99 | batch QPS | recall@{k} |\n"
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    lines = [head]
    for row in results:
        params = row["params"]
        name = "flat (exact)" if row["kind"] == "flat" else f"HNSW{params['m']} efC={params['ef_construction']}"
        if row["kind"] == "hnsw":
            name += f" efS={params['ef_search']}"
        file_bytes = row.get("file_bytes_per_vector", "-")
        save = f"{row['save_s']} / {row['load_s']} s" if "save_s" in row else "-"
        rec = "-" if row["recall"] is None else f"{row['recall']:.3f}"
        lines.append(
            f"| {row['size']:,} | {name} | {row['build_s']} s | {file_bytes}, {row['rss_bytes_per_vector']} | {save} "
            f"| {row['latency']['p50_ms']} ms | {row['latency']['p99_ms']} ms | {row['batch_qps']:,} | {rec} |"
        )
    return "\n".join(lines)


def target_rows(results: Sequence[dict[str, Any]]) -> list[Row]:
    """The target, on the default-efSearch HNSW row of the largest size measured."""
    rows: list[Row] = []
    hnsw = [row for row in results if row["kind"] == "hnsw" and row["params"]["ef_search"] == HNSW_EF_SEARCH]
    if hnsw:
        top = max(hnsw, key=lambda row: row["size"])
        scale = "" if top["size"] >= TARGET_SIZE else f" (target is set at {TARGET_SIZE:,})"
        if top["recall"] is not None:
            rows.append(
                Row(
                    f"HNSW recall@10 at {top['size']:,}{scale}",
                    top["recall"],
                    "",
                    f">= {RECALL_TARGET}",
                    top["recall"] >= RECALL_TARGET,
                )
            )
        p50 = top["latency"]["p50_ms"]
        rows.append(Row(f"HNSW p50 at {top['size']:,}{scale}", p50, "ms", f"<= {P50_TARGET_MS}", p50 <= P50_TARGET_MS))
    rows.append(quiet_row("the latency loops", [row["latency"]["cpu"]["other_cpu_share"] for row in results]))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    identity = ModelIdentity("synthetic-mixture", None, args.dim, {"clusters": args.clusters, "rank": args.rank})
    mixture = Mixture(args.dim, args.clusters, args.rank, args.seed)
    log(f"generating {max(args.sizes):,} x {args.dim} vectors and {args.queries} queries ...")
    started = time.perf_counter()
    vectors, queries = mixture.collection(max(args.sizes)), mixture.queries(args.queries)
    log(f"generated in {time.perf_counter() - started:.1f} s")
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mmsearch-bench-index-") as tmp:
        for size in args.sizes:
            results.extend(measure_size(args, identity, vectors[:size], queries, Path(tmp)))
    del vectors
    rows = target_rows(results)
    machine = machine_facts("cpu")
    machine.update(faiss_threads_build_and_batch=args.threads, faiss_threads_single_query=1)
    payload = {
        "benchmark": "index",
        "config": {
            "sizes": args.sizes,
            "queries": args.queries,
            "k": args.k,
            "dim": args.dim,
            "clusters": args.clusters,
            "rank": args.rank,
            "seed": args.seed,
            "m": args.m,
            "ef_construction": args.ef_construction,
            "ef_search": args.ef_search,
            "default_ef_search": HNSW_EF_SEARCH,
            "hnsw_threshold": DEFAULT_HNSW_THRESHOLD,
        },
        "machine": machine,
        "results": results,
        "notes": [
            "single-query latency: one query per search call, FAISS on 1 thread; build and batch on all threads",
            "recall@k against exact flat search; bytes/vector: saved file, and RSS growth while building",
        ],
    }
    if not args.json:
        print(markdown(results, args.k))
        print()
    emit(rows, payload, args.json)
    return 1 if args.strict and not all_passed(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
