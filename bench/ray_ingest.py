#!/usr/bin/env python3
"""Ray's overhead: images/s of ``ingest`` with the local executor vs ``--executor ray`` on this machine.

Run from the repository root::

    source scripts/venv.sh && source scripts/fixture-env.sh && python bench/ray_ingest.py [--json]

Both ingest the same folder (default: the 300 DEV photos) with the same model (default: the fixture model, on
the CPU) into fresh homes, in this order: local, then Ray on a local cluster started here with every CPU
(``ray.init(num_cpus=N)``; its start-up is timed apart). Reported per executor: the embedding phase's images/s
(``IngestReport.embed_s``: decode + encode + commit, what scales with a cluster) and end to end (model load
included; Ray's includes starting its actors, which load their own model). Target: Ray >= 0.8x local on the
embedding phase (issue 16). ``--repeat`` runs each executor that many times (fresh homes) and keeps the best.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DEV_IMAGES, FIXTURE_MODEL, Row, emit, log, repo_path, use_offline_fixture

use_offline_fixture()

TARGET_RATIO = 0.8


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default=DEV_IMAGES)
    parser.add_argument("--model", default=FIXTURE_MODEL)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def run(folder: Path, model: str, batch_size: int, **options: Any) -> dict[str, float]:
    from mmsearch import Engine

    home = Path(tempfile.mkdtemp(prefix="mmsearch-ray-bench-"))
    started = time.perf_counter()
    with Engine.open(home, model=model, device="cpu", batch_size=batch_size, **options) as engine:
        report = engine.ingest(folder)
    wall = time.perf_counter() - started
    if report.failed or not report.embedded:
        raise SystemExit(f"ingest failed: {report.failed[:3]}")
    return {
        "images": report.embedded,
        "embed_images_per_s": round(report.embedded / report.embed_s, 2),
        "end_to_end_images_per_s": round(report.embedded / wall, 2),
        "wall_s": round(wall, 2),
    }


def best(runs: list[dict[str, float]]) -> dict[str, float]:
    return max(runs, key=lambda entry: entry["embed_images_per_s"])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    folder = repo_path(args.folder)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    load_start = os.getloadavg()
    log("local executor ...")
    local = best([run(folder, args.model, args.batch_size) for _ in range(args.repeat)])
    import ray

    started = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    ray_start_s = time.perf_counter() - started
    try:
        log("Ray executor ...")
        remote = best([run(folder, args.model, args.batch_size, executor="ray") for _ in range(args.repeat)])
    finally:
        ray.shutdown()
    ratio = remote["embed_images_per_s"] / local["embed_images_per_s"]
    rows = [
        Row("local: embedding phase", local["embed_images_per_s"], "images/s"),
        Row("Ray: embedding phase", remote["embed_images_per_s"], "images/s"),
        Row("Ray / local, embedding phase", round(ratio, 3), "x", f">= {TARGET_RATIO}x", ratio >= TARGET_RATIO),
        Row("local: end to end (model load included)", local["end_to_end_images_per_s"], "images/s"),
        Row("Ray: end to end (actor start and model loads included)", remote["end_to_end_images_per_s"], "images/s"),
        Row(f"ray.init(num_cpus={cpus})", round(ray_start_s, 2), "s"),
    ]
    payload = {
        "local": local,
        "ray": remote,
        "ray_init_s": round(ray_start_s, 2),
        "machine": {"nproc": cpus, "loadavg_at_start": load_start, "loadavg_at_end": os.getloadavg()},
        "notes": [f"{local['images']} images of {folder}, model {args.model}, batch {args.batch_size}, CPU"],
    }
    emit(rows, payload, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
