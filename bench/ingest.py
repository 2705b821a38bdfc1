#!/usr/bin/env python3
"""Ingest benchmark: raw encoder throughput vs. end-to-end ``Engine.ingest``, and re-ingest cost.

Run from the repository root::

    source scripts/venv.sh && source scripts/fixture-env.sh && python bench/ingest.py
    python bench/ingest.py --json            # one JSON object on stdout instead of the table
    python bench/ingest.py --repeats 3       # medians over 3 passes (each ingest in a fresh home)
    python bench/ingest.py --precision fp32  # the model in float32 (default auto: bf16 where native and agreeing)
    python bench/ingest.py --no-draft        # the ingest decodes JPEGs at full size (no reduced-scale draft)

Everything runs in one process, with the encoder loaded once (its load is timed and reported
on its own line):

1. raw: every image is decoded and preprocessed up front (untimed), one warm-up batch is
   encoded (untimed), then only ``encoder.encode_prepared`` over batches of ``--batch-size``
   is timed -> images/s. Twice: one batch at a time on all of torch's threads, and in the
   engine's own configuration (``parallel_batches``: on a CPU, 2 batches at once on half the
   threads each). The faster of the two is the raw figure the ratio divides by.
2. end to end: a fresh temporary home, ``Engine.open(...)`` with the already-loaded encoder
   injected (``encoder_factory``), ``engine.ingest(folder)`` -> ``embedded / report.elapsed_s``,
   and its ratio to raw (target >= 0.9). ``report.elapsed_s`` covers scan, hashing, decode,
   preprocess, encode, database writes and the index save; it excludes ``Engine.open``.
3. re-ingest of the unchanged folder: a second ``ingest`` on the same engine, and
   ``Engine.open`` + ``ingest`` on the same home (open cost included); each as a fraction of
   the first ingest's elapsed time (target < 5%).

With ``--repeats N`` the raw and end-to-end passes alternate (raw, ingest, raw, ingest, ...)
so a noisy neighbour hits both alike; the last row reports how much CPU *other* processes used
during the timed passes (over 5%: rerun on a quiet machine before trusting the numbers).

Relative paths (``--folder``) are resolved against the repository root. The temporary homes
live under ``$TMPDIR``; nothing is written into the repository. FAISS is imported before the
timed runs (it would otherwise be charged to the first ingest only).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
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
from mmsearch.encoders import Encoder, create_encoder  # noqa: E402
from mmsearch.imageio import load_image  # noqa: E402
from mmsearch.ingest.pipeline import batched  # noqa: E402
from mmsearch.ingest.report import IngestReport  # noqa: E402
from mmsearch.ingest.runner import parallel_batches  # noqa: E402
from mmsearch.ingest.scanner import scan_folder  # noqa: E402

E2E_TARGET = 0.9
REINGEST_TARGET = 0.05
MAX_PIXELS = 89_478_485  # the engine's default decompression-bomb limit


@dataclass
class IngestPass:
    """One fresh-home ingest and its two re-ingests."""

    first: IngestReport
    first_cpu: CpuMonitor
    same_engine: IngestReport
    reopen_total_s: float
    reopen_open_s: float
    reopen: IngestReport


@dataclass
class Results:
    import_s: float = 0.0
    workers: int = 0
    load_s: float = 0.0
    export_s: float = 0.0
    export_dir: Path | None = None
    images: int = 0
    prepare_s: float = 0.0
    streams: int = 1
    raw_passes_s: list[float] = field(default_factory=list)
    raw_single_passes_s: list[float] = field(default_factory=list)
    raw_cpu: list[CpuMonitor] = field(default_factory=list)
    passes: list[IngestPass] = field(default_factory=list)
    precision: dict[str, Any] = field(default_factory=dict)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--folder", default=DEV_IMAGES, help=f"images to ingest; relative to the repository root (default {DEV_IMAGES})"
    )
    parser.add_argument("--model", default=FIXTURE_MODEL, help=f"encoder (default {FIXTURE_MODEL})")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument(
        "--precision", default="auto", choices=("auto", "fp32", "bf16"), help="model precision (default auto)"
    )
    parser.add_argument(
        "--no-draft", action="store_true", help="decode JPEGs at full size in the ingest (no reduced-scale draft)"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--workers", type=int, default=None, help="ingest decode threads (default: the engine's own, min(4, cpus))"
    )
    parser.add_argument(
        "--encode-streams", type=int, default=0, help="batches encoded at once (default 0: the encoder's choice)"
    )
    parser.add_argument("--repeats", type=int, default=1, help="timed passes of each measurement; medians are reported")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.repeats < 1:
        parser.error("--batch-size and --repeats must be at least 1")
    args.folder = repo_path(args.folder)
    if not args.folder.is_dir():
        parser.error(f"folder not found: {args.folder}")
    return args


def load_encoder(model: str, device: str, precision: str, results: Results) -> Encoder:
    """Import torch/open_clip/faiss, then build the encoder; both timed separately."""
    started = time.perf_counter()
    import faiss  # noqa: F401
    import open_clip  # noqa: F401
    import torch  # noqa: F401

    results.import_s = time.perf_counter() - started
    started = time.perf_counter()
    encoder = create_encoder(model, device, precision)
    results.load_s = time.perf_counter() - started
    return encoder


def export_text_tower(encoder: Encoder, results: Results, scratch: Path) -> None:
    """The one-off ONNX export of the text tower (torch-free queries), timed on its own.

    An engine exports it once per home, on the first ingest. The timed passes each start a fresh home, so
    they get a copy of this export instead: the export is a per-home cost like the model load, not a
    per-image one, and is reported next to it.
    """
    from mmsearch.encoders.onnx_export import ensure_text_export
    from mmsearch.encoders.onnx_text import EXPORTS_FOLDER

    started = time.perf_counter()
    manifest = ensure_text_export(encoder, scratch)
    results.export_s = time.perf_counter() - started
    if manifest is not None:
        results.export_dir = scratch / EXPORTS_FOLDER


class FullSizeDecode:
    """The encoder, minus ``min_decode_size``: the ingest then decodes every JPEG at full size (``--no-draft``)."""

    def __init__(self, encoder: Encoder) -> None:
        self._encoder = encoder

    def __getattr__(self, name: str) -> Any:
        if name == "min_decode_size":
            raise AttributeError(name)
        return getattr(self._encoder, name)


def prepare_all(encoder: Encoder, folder: Path) -> list[Any]:
    """Decode and preprocess every image the engine would ingest (the same scan), untimed."""
    files = scan_folder(folder).files
    return [encoder.prepare_image(load_image(file.path, MAX_PIXELS)) for file in files]


def raw_pass(encoder: Encoder, prepared: Sequence[Any], batch_size: int, streams: int) -> tuple[float, int]:
    """Seconds to run ``encode_prepared`` over all prepared images, ``streams`` batches at once (1: one at a
    time on all of torch's threads; else as the engine's ingest runs them); and the streams used."""
    if streams == 1:
        started = time.perf_counter()
        for batch in batched(prepared, batch_size):
            encoder.encode_prepared(batch)
        return time.perf_counter() - started, 1
    with parallel_batches(encoder, streams) as used, ThreadPoolExecutor(max_workers=used) as pool:
        started = time.perf_counter()
        list(pool.map(encoder.encode_prepared, batched(prepared, batch_size)))
        return time.perf_counter() - started, used


def prepare_raw(encoder: Encoder, folder: Path, batch_size: int, results: Results) -> list[Any]:
    """Decode + preprocess everything (timed for information only), then one untimed warm-up batch."""
    started = time.perf_counter()
    prepared = prepare_all(encoder, folder)
    results.prepare_s = time.perf_counter() - started
    results.images = len(prepared)
    if not prepared:
        raise SystemExit(f"no images under {folder}")
    encoder.encode_prepared(prepared[:batch_size])
    raw_pass(encoder, prepared[: 4 * batch_size], batch_size, 0)  # warms the parallel configuration too
    return prepared


def measure_raw(encoder: Encoder, prepared: Sequence[Any], args: argparse.Namespace, results: Results) -> None:
    with CpuMonitor() as cpu:
        seconds, results.streams = raw_pass(encoder, prepared, args.batch_size, args.encode_streams)
        results.raw_passes_s.append(seconds)
        results.raw_single_passes_s.append(raw_pass(encoder, prepared, args.batch_size, 1)[0])
    results.raw_cpu.append(cpu)


def open_engine(home: Path, encoder: Encoder, args: argparse.Namespace) -> Engine:
    """An engine on ``home`` that reuses the loaded encoder instead of loading the model again."""
    options: dict[str, Any] = {"batch_size": args.batch_size, "encode_streams": args.encode_streams}
    if args.workers is not None:
        options["workers"] = args.workers
    return Engine.open(
        home,
        model=args.model,
        device=args.device,
        db_url=sqlite_url(home),
        encoder_factory=lambda name, device: encoder,
        **options,
    )


def ingest_pass(encoder: Encoder, folder: Path, args: argparse.Namespace, results: Results) -> IngestPass:
    """First ingest into a fresh home, re-ingest on the same engine, then re-open and re-ingest."""
    with tempfile.TemporaryDirectory(prefix="mmsearch-bench-ingest-") as tmp:
        home = Path(tmp) / "home"
        if results.export_dir is not None:
            shutil.copytree(results.export_dir, home / "indexes" / results.export_dir.name)
        with open_engine(home, encoder, args) as engine, CpuMonitor() as cpu:
            first = engine.ingest(folder)
            results.workers = first.workers
            same_engine = engine.ingest(folder)
        started = time.perf_counter()
        with open_engine(home, encoder, args) as engine:
            opened = time.perf_counter()
            reopen = engine.ingest(folder)
            reopen_total = time.perf_counter() - started
    return IngestPass(first, cpu, same_engine, reopen_total, opened - started, reopen)


def measure(encoder: Encoder, args: argparse.Namespace, results: Results) -> None:
    """Raw and end-to-end passes alternate, so a noisy neighbour hits both alike."""
    prepared = prepare_raw(encoder, args.folder, args.batch_size, results)
    for repeat in range(1, args.repeats + 1):
        log(f"pass {repeat}/{args.repeats}: raw encode_prepared, then ingest + 2 re-ingests ...")
        measure_raw(encoder, prepared, args, results)
        results.passes.append(ingest_pass(encoder, args.folder, args, results))


def summarise(results: Results) -> dict[str, Any]:
    """Medians over the passes, and the ratios the targets are about."""
    parallel_ips = statistics.median(results.images / s for s in results.raw_passes_s)
    single_ips = statistics.median(results.images / s for s in results.raw_single_passes_s)
    raw_ips = max(parallel_ips, single_ips)
    first = [p.first for p in results.passes]
    e2e_ips = statistics.median(r.images_per_s for r in first)
    first_s = statistics.median(r.elapsed_s for r in first)
    same_s = statistics.median(p.same_engine.elapsed_s for p in results.passes)
    reopen_s = statistics.median(p.reopen_total_s for p in results.passes)
    return {
        "images": results.images,
        "precision": results.precision,
        "import_s": round(results.import_s, 3),
        "model_load_s": round(results.load_s, 3),
        "text_export_s": round(results.export_s, 3),
        "prepare_all_s": round(results.prepare_s, 3),
        "raw_images_per_s": round(raw_ips, 2),
        "raw_one_batch_at_a_time_images_per_s": round(single_ips, 2),
        "raw_engine_streams_images_per_s": round(parallel_ips, 2),
        "encode_streams": results.streams,
        "e2e_images_per_s": round(e2e_ips, 2),
        "e2e_over_raw": round(e2e_ips / raw_ips, 4),
        "first_ingest_s": round(first_s, 3),
        "first_ingest_embed_s": round(statistics.median(r.embed_s for r in first), 3),
        "embedded": [r.embedded for r in first],
        "failed": [len(r.failed) for r in first],
        "reingest_same_engine_s": round(same_s, 4),
        "reingest_same_engine_ratio": round(same_s / first_s, 5),
        "reingest_reopen_s": round(reopen_s, 4),
        "reingest_reopen_open_s": round(statistics.median(p.reopen_open_s for p in results.passes), 4),
        "reingest_reopen_ratio": round(reopen_s / first_s, 5),
        "reingest_embedded": [p.same_engine.embedded + p.reopen.embedded for p in results.passes],
        "raw_passes_s": [round(s, 3) for s in results.raw_passes_s],
        "raw_single_passes_s": [round(s, 3) for s in results.raw_single_passes_s],
        "first_ingest_passes": [p.first.to_dict() for p in results.passes],
        "raw_cpu": [cpu.to_dict() for cpu in results.raw_cpu],
        "first_ingest_cpu": [p.first_cpu.to_dict() for p in results.passes],
    }


def precision_rows(precision: dict[str, Any]) -> list[Row]:
    """One row per tower: the dtype it ran in and, where the agreement check ran, its worst/mean cosine."""
    rows = []
    for tower, entry in precision.items():
        value = entry["dtype"]
        if "worst_cosine" in entry:
            value += f" (bf16 vs fp32 worst {entry['worst_cosine']:.5f}, mean {entry['mean_cosine']:.5f})"
        rows.append(Row(f"{tower} tower precision", value))
    return rows


def table(summary: dict[str, Any]) -> list[Row]:
    n = summary["images"]
    ratio = summary["e2e_over_raw"]
    same, reopen = summary["reingest_same_engine_ratio"], summary["reingest_reopen_ratio"]
    complete = all(e == n for e in summary["embedded"]) and not any(summary["failed"])
    unchanged = not any(summary["reingest_embedded"])
    return [
        Row("imports (torch, open_clip, faiss)", summary["import_s"], "s"),
        Row("model load", summary["model_load_s"], "s"),
        Row("text tower ONNX export (once per home, first ingest)", summary["text_export_s"], "s"),
        Row("images", n),
        *precision_rows(summary["precision"]),
        Row("raw, one batch at a time (all torch threads)", summary["raw_one_batch_at_a_time_images_per_s"], "img/s"),
        Row(
            f"raw, {summary['encode_streams']} batches at once (the engine's way)",
            summary["raw_engine_streams_images_per_s"],
            "img/s",
        ),
        Row("raw encode_prepared throughput (the faster)", summary["raw_images_per_s"], "img/s"),
        Row("e2e ingest throughput", summary["e2e_images_per_s"], "img/s"),
        Row("e2e / raw", ratio, "", f">= {E2E_TARGET}", ratio >= E2E_TARGET),
        Row("decode + preprocess all, 1 thread (outside raw timer)", summary["prepare_all_s"], "s"),
        Row("first ingest elapsed", summary["first_ingest_s"], "s"),
        Row("  of which embed phase (decode, encode, commit)", summary["first_ingest_embed_s"], "s"),
        Row(
            "  of which the rest (scan, hash probe, gc, save)",
            round(summary["first_ingest_s"] - summary["first_ingest_embed_s"], 3),
            "s",
        ),
        Row("first ingest embedded all, none failed", str(summary["embedded"]), "", f"== {n}", complete),
        Row("re-ingest, same engine", summary["reingest_same_engine_s"], "s"),
        Row("re-ingest, same engine / first", f"{same:.2%}", "", f"< {REINGEST_TARGET:.0%}", same < REINGEST_TARGET),
        Row("re-ingest, Engine.open + ingest", summary["reingest_reopen_s"], "s"),
        Row(
            "re-ingest, open + ingest / first",
            f"{reopen:.2%}",
            "",
            f"< {REINGEST_TARGET:.0%}",
            reopen < REINGEST_TARGET,
        ),
        Row("re-ingest embedded nothing", str(summary["reingest_embedded"]), "", "0", unchanged),
        quiet_row(
            "raw + first ingest",
            [c["other_cpu_share"] for c in summary["raw_cpu"]]
            + [c["other_cpu_share"] for c in summary["first_ingest_cpu"]],
        ),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = Results()
    log(f"loading {args.model} on {args.device} ...")
    encoder = load_encoder(args.model, args.device, args.precision, results)
    scratch = Path(tempfile.mkdtemp(prefix="mmsearch-bench-export-"))
    log("exporting the text tower (torch-free queries) once ...")
    export_text_tower(encoder, results, scratch)
    if args.no_draft:
        encoder = FullSizeDecode(encoder)  # type: ignore[assignment]
    log(f"preparing {args.folder} for the raw measurement ...")
    try:
        measure(encoder, args, results)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results.precision = dict(getattr(encoder, "precision", {}))
    summary = summarise(results)
    rows = table(summary)
    payload = {
        "benchmark": "ingest",
        "config": {
            "folder": str(args.folder),
            "model": args.model,
            "device": args.device,
            "precision": args.precision,
            "jpeg_draft": not args.no_draft and getattr(encoder, "min_decode_size", None) is not None,
            "batch_size": args.batch_size,
            "encode_streams": results.streams,
            "workers": results.workers,
            "repeats": args.repeats,
        },
        "machine": machine_facts(encoder.device if hasattr(encoder, "device") else args.device),
        "results": summary,
        "notes": [
            "e2e images/s = embedded / IngestReport.elapsed_s (Engine.open and the model load excluded)",
            "raw images/s times only encode_prepared; decode and preprocess were done up front",
            "raw and end-to-end passes alternate; 'other processes' CPU' over 5% means the numbers are noisy",
        ],
    }
    emit(rows, payload, args.json)
    return 1 if args.strict and not all_passed(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
