#!/usr/bin/env python3
"""Warm query latency: ``engine.search(text, k=10)`` vs. text-encode + FAISS search alone.

Run from the repository root::

    source scripts/venv.sh && source scripts/fixture-env.sh && python bench/query.py
    python bench/query.py --json             # one JSON object on stdout instead of the table
    python bench/query.py --queries 400      # more samples per side (needs 2 x (queries + warmup) captions)
    python bench/query.py --cold             # cold `mmsearch query` processes and `--help` (bench/query_cold.py)

The DEV folder is ingested once into a temporary home; then, in the same process, with the
encoder and the FAISS index loaded:

* engine: ``engine.search(text, k)`` per query;
* baseline: ``encoder.encode_texts([text])`` then ``IndexCache.get().search(vector, k)`` on the
  engine's own loaded index: the floor the engine adds its database work to.

The engine caches text vectors in its database (``query_cache``), so a repeated text skips the
model. Every timed query therefore uses a DISTINCT caption (captions.tsv, in file order, split
alternately between the two sides so both see the same images and lengths): every timed engine
query really runs the text encoder, which the script checks (no timed text was cached before,
all were after). The two measurements alternate per query, swapping which goes first each time,
after ``--warmup`` untimed pairs. A separate, untargeted line times repeated (cached) queries.
The target is engine/baseline <= 1.2 for both p50 and p99. A row reports how much CPU *other*
processes used during the timed loop (over 5%: rerun on a quiet machine before trusting it).

Relative paths are resolved against the repository root; the temporary home lives under
``$TMPDIR``; nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import csv
import gc
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    DEV_CAPTIONS,
    DEV_IMAGES,
    FIXTURE_MODEL,
    CpuMonitor,
    Row,
    all_passed,
    emit,
    log,
    machine_facts,
    quiet_row,
    repo_path,
    sqlite_url,
    use_offline_fixture,
)

use_offline_fixture()

from mmsearch import Engine  # noqa: E402
from mmsearch.encoders import ModelIdentity  # noqa: E402
from mmsearch.index.cache import IndexCache  # noqa: E402

RATIO_TARGET = 1.2


@dataclass(frozen=True)
class TextSets:
    """Distinct texts: untimed warm-up and timed ones, one set per side."""

    engine_warmup: list[str]
    baseline_warmup: list[str]
    engine: list[str]
    baseline: list[str]


@dataclass
class Latencies:
    engine_s: list[float] = field(default_factory=list)
    baseline_s: list[float] = field(default_factory=list)
    cached_s: list[float] = field(default_factory=list)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--folder", default=DEV_IMAGES, help=f"images to ingest; relative to the repository root (default {DEV_IMAGES})"
    )
    parser.add_argument(
        "--captions",
        default=DEV_CAPTIONS,
        help=f"TSV with a 'caption' column; relative to the repository root (default {DEV_CAPTIONS})",
    )
    parser.add_argument("--model", default=FIXTURE_MODEL, help=f"encoder (default {FIXTURE_MODEL})")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--batch-size", type=int, default=32, help="ingest batch size")
    parser.add_argument("--queries", type=int, default=200, help="timed distinct queries per side")
    parser.add_argument("--warmup", type=int, default=10, help="untimed distinct queries per side first")
    parser.add_argument("--cached", type=int, default=50, help="timed repeated (cached) engine queries")
    parser.add_argument("-k", type=int, default=10, help="results per query")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if min(args.queries, args.k, args.batch_size) < 1 or min(args.warmup, args.cached) < 0:
        parser.error("--queries, -k and --batch-size must be at least 1; --warmup and --cached at least 0")
    args.folder, args.captions = repo_path(args.folder), repo_path(args.captions)
    for path, what in ((args.folder, "folder"), (args.captions, "captions file")):
        if not path.exists():
            parser.error(f"{what} not found: {path}")
    return args


def read_captions(path: Path) -> list[str]:
    """Distinct non-empty captions, in file order."""
    with path.open(encoding="utf-8", newline="") as handle:
        texts = (row["caption"].strip() for row in csv.DictReader(handle, delimiter="\t"))
        return list(dict.fromkeys(text for text in texts if text))


def split_texts(captions: list[str], queries: int, warmup: int) -> TextSets:
    """Alternate captions between the sides: warm-up texts first, then the timed ones."""
    needed = 2 * (queries + warmup)
    if len(captions) < needed:
        raise SystemExit(f"need {needed} distinct captions, the file has {len(captions)}")
    engine_side, baseline_side = captions[0:needed:2], captions[1:needed:2]
    return TextSets(engine_side[:warmup], baseline_side[:warmup], engine_side[warmup:], baseline_side[warmup:])


def ingest(engine: Engine, folder: Path) -> dict[str, Any]:
    """Index the folder once (loads the model); returns the report with the wall time."""
    started = time.perf_counter()
    report = engine.ingest(folder)
    wall = time.perf_counter() - started
    if report.failed or not report.embedded:
        raise SystemExit(f"ingest went wrong: {report.to_dict()}")
    return {**report.to_dict(), "wall_s": round(wall, 3)}


def index_cache(engine: Engine) -> tuple[int, ModelIdentity, IndexCache]:
    """The engine's own (already loaded) index cache for the active model."""
    active = engine.store.active_model()
    assert active is not None, "nothing ingested"
    model_id, identity = active
    return model_id, identity, engine.models.index_cache(model_id, identity)


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def engine_query(engine: Engine, text: str, k: int) -> Callable[[], Any]:
    return lambda: engine.search(text, k=k)


def baseline_query(engine: Engine, cache: IndexCache, text: str, k: int) -> Callable[[], Any]:
    encoder = engine.encoder
    return lambda: cache.get().search(encoder.encode_texts([text]), k)


def run_pairs(
    engine: Engine,
    cache: IndexCache,
    engine_texts: Sequence[str],
    baseline_texts: Sequence[str],
    k: int,
    out: Latencies | None,
) -> None:
    """One engine query and one baseline query per step, alternating which goes first."""
    for step, (mine, theirs) in enumerate(zip(engine_texts, baseline_texts, strict=True)):
        first_engine = step % 2 == 0
        pair = [("engine", engine_query(engine, mine, k)), ("baseline", baseline_query(engine, cache, theirs, k))]
        for side, fn in pair if first_engine else reversed(pair):
            elapsed = timed(fn)
            if out is not None:
                (out.engine_s if side == "engine" else out.baseline_s).append(elapsed)


def run_cached(engine: Engine, texts: Sequence[str], k: int, out: Latencies) -> None:
    """Repeated texts: already in the query cache, so the engine skips the text encoder."""
    for text in texts:
        out.cached_s.append(timed(engine_query(engine, text, k)))


def cached_count(engine: Engine, model_id: int, texts: Sequence[str]) -> int:
    """How many texts are in the query cache (written behind: flush the engine's buffer first)."""
    if engine.queries.cache is not None:
        engine.queries.cache.flush()
    return len(engine.store.cached_query_vectors(model_id, list(texts)))


def same_results(engine: Engine, cache: IndexCache, text: str, k: int) -> bool:
    """The baseline finds the same ids as the engine (so both do equivalent work)."""
    hits = [hit.id for hit in engine.search(text, k=k)]
    _, ids = cache.get().search(engine.encoder.encode_texts([text]), k)
    return hits == [int(i) for i in ids[0] if i >= 0]


def measure(engine: Engine, texts: TextSets, args: argparse.Namespace) -> tuple[Latencies, dict[str, Any]]:
    model_id, _, cache = index_cache(engine)
    cache.get()
    engine.encoder  # noqa: B018  (loaded by the ingest already; make sure)
    checks: dict[str, Any] = {
        "timed_engine_texts_cached_before": cached_count(engine, model_id, texts.engine),
    }
    run_pairs(engine, cache, texts.engine_warmup, texts.baseline_warmup, args.k, None)
    latencies = Latencies()
    gc.collect()
    with CpuMonitor() as cpu:
        run_pairs(engine, cache, texts.engine, texts.baseline, args.k, latencies)
    checks["timed_loop_cpu"] = cpu.to_dict()
    checks["timed_engine_texts_cached_after"] = cached_count(engine, model_id, texts.engine)
    run_cached(engine, texts.engine[: args.cached], args.k, latencies)
    checks["baseline_matches_engine"] = same_results(engine, cache, texts.engine[0], args.k)
    checks["index_size"] = len(cache.get())
    return latencies, checks


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    values = np.asarray(samples) * 1000.0
    return {
        "n": len(values),
        "p50_ms": round(float(np.percentile(values, 50)), 3),
        "p99_ms": round(float(np.percentile(values, 99)), 3),
        "mean_ms": round(float(values.mean()), 3),
        "min_ms": round(float(values.min()), 3),
        "max_ms": round(float(values.max()), 3),
    }


def summarise(latencies: Latencies, checks: dict[str, Any], queries: int) -> dict[str, Any]:
    engine, baseline = percentiles(latencies.engine_s), percentiles(latencies.baseline_s)
    summary: dict[str, Any] = {
        "engine": engine,
        "baseline": baseline,
        "ratio_p50": round(engine["p50_ms"] / baseline["p50_ms"], 4),
        "ratio_p99": round(engine["p99_ms"] / baseline["p99_ms"], 4),
        "overhead_p50_ms": round(engine["p50_ms"] - baseline["p50_ms"], 3),
        "checks": checks,
        "all_timed_queries_encoded": checks["timed_engine_texts_cached_before"] == 0
        and checks["timed_engine_texts_cached_after"] == queries,
    }
    if latencies.cached_s:
        summary["cached"] = percentiles(latencies.cached_s)
    return summary


def table(summary: dict[str, Any]) -> list[Row]:
    engine, baseline = summary["engine"], summary["baseline"]
    target = f"<= {RATIO_TARGET}x"
    encoded, matches = summary["all_timed_queries_encoded"], summary["checks"]["baseline_matches_engine"]
    rows = [
        Row(f"engine.search p50 (n={engine['n']}, distinct)", engine["p50_ms"], "ms"),
        Row("engine.search p99", engine["p99_ms"], "ms"),
        Row(f"encode_texts + index.search p50 (n={baseline['n']})", baseline["p50_ms"], "ms"),
        Row("encode_texts + index.search p99", baseline["p99_ms"], "ms"),
        Row("ratio p50", summary["ratio_p50"], "x", target, summary["ratio_p50"] <= RATIO_TARGET),
        Row("ratio p99", summary["ratio_p99"], "x", target, summary["ratio_p99"] <= RATIO_TARGET),
        Row("engine overhead at p50", summary["overhead_p50_ms"], "ms"),
        Row("every timed engine query ran the encoder", str(encoded), "", "True", encoded),
        Row("baseline returns the engine's ids", str(matches), "", "True", matches),
        quiet_row("the timed queries", [summary["checks"]["timed_loop_cpu"]["other_cpu_share"]]),
    ]
    if "cached" in summary:
        cached = summary["cached"]
        rows.append(Row(f"cached (repeated) query p50 (n={cached['n']}, extra)", cached["p50_ms"], "ms"))
        rows.append(Row("cached (repeated) query p99", cached["p99_ms"], "ms"))
    return rows


def run(args: argparse.Namespace, texts: TextSets) -> tuple[dict[str, Any], dict[str, Any], Latencies, str]:
    with tempfile.TemporaryDirectory(prefix="mmsearch-bench-query-") as tmp:
        home = Path(tmp) / "home"
        with Engine.open(
            home, model=args.model, device=args.device, db_url=sqlite_url(home), batch_size=args.batch_size
        ) as engine:
            log(f"ingesting {args.folder} (loads the model) ...")
            ingest_report = ingest(engine, args.folder)
            log(f"timing {len(texts.engine)} + {len(texts.baseline)} distinct queries, alternating ...")
            latencies, checks = measure(engine, texts, args)
            device = getattr(engine.encoder, "device", args.device)
    return ingest_report, checks, latencies, device


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--cold" in argv:  # cold `mmsearch query` in new processes and `--help`: bench/query_cold.py
        import query_cold

        return query_cold.main([arg for arg in argv if arg != "--cold"])
    args = parse_args(argv)
    texts = split_texts(read_captions(args.captions), args.queries, args.warmup)
    ingest_report, checks, latencies, device = run(args, texts)
    summary = summarise(latencies, checks, args.queries)
    rows = table(summary)
    payload = {
        "benchmark": "query",
        "config": {
            "folder": str(args.folder),
            "captions": str(args.captions),
            "model": args.model,
            "device": args.device,
            "queries": args.queries,
            "warmup": args.warmup,
            "cached": args.cached,
            "k": args.k,
        },
        "machine": machine_facts(device),
        "ingest": ingest_report,
        "results": summary,
        "notes": [
            "every timed query text is distinct and was not in the query cache: each engine.search encodes",
            "engine and baseline alternate per query (order swapped every step) after untimed warm-up pairs",
            "cached line: repeated texts served from the query_cache table (no text encoding)",
        ],
    }
    emit(rows, payload, args.json)
    return 1 if args.strict and not all_passed(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
