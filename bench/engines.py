#!/usr/bin/env python3
"""Engine benchmark: per tower and engine, raw throughput on prepared batches and agreement with open_clip fp32.

Run from the repository root::

    source scripts/venv.sh && source scripts/fixture-env.sh && python bench/engines.py
    python bench/engines.py --models fixture            # only the fixture model (default: fixture and vit-b-32)
    python bench/engines.py --json

Models: the offline fixture (EfficientNet-Lite0 + MiniLM, 256-d) and ViT-B-32 with random weights (seeded,
written to a scratch checkpoint: speed and agreement only, no quality). For each, the model is loaded with
open_clip in fp32, both towers are exported to ONNX into a scratch cache (timed), and then, per tower and
candidate (ONNX Runtime fp32; torch fp32, channels_last for a convolutional image tower; torch bf16 where the
CPU has native bf16):

* images/s: ``encode_prepared`` on DEV photos decoded and prepared beforehand (each engine's own preparation),
  batches of 32, one batch at a time on every thread and in the engine's ingest configuration
  (``parallel_batches``: 2 batches at once on one thread each); best of ``--passes`` interleaved passes, the faster
  configuration counts;
* texts/s: ``encode_texts`` on 256 DEV captions (batches of 64 for ONNX, 256 for torch, as each runs them);
* agreement: row cosines against torch fp32 (the open_clip reference, open_clip's own transform) on 96 DEV
  photos / 300 DEV captions: worst and mean; the bar is worst >= 0.995 and mean >= 0.999.

Finally the engine's own calibration (the short one every first run does) is run and its pick reported.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import (
    DEV_CAPTIONS,
    DEV_IMAGES,
    FIXTURE_MODEL,
    CpuMonitor,
    Row,
    emit,
    log,
    machine_facts,
    quiet_row,
    repo_path,
    use_offline_fixture,
)

use_offline_fixture()

BATCH = 32
IMAGES = 96
CAPTIONS = 300
MODELS = ("fixture", "vit-b-32")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--passes", type=int, default=2, help="interleaved timing passes; the best counts")
    parser.add_argument("--images", type=int, default=IMAGES, help=f"DEV photos timed and compared ({IMAGES})")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    args.models = [name.strip() for name in args.models.split(",") if name.strip()]
    if not set(args.models) <= set(MODELS):
        parser.error(f"--models takes {', '.join(MODELS)}")
    return args


def random_vit_checkpoint(scratch: Path) -> str:
    """ViT-B-32 with seeded random weights, saved where open_clip can load it as ``ViT-B-32:<path>``."""
    import open_clip
    import torch

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32")
    path = scratch / "vit-b-32-random.pt"
    torch.save({"state_dict": model.state_dict()}, path)
    return f"ViT-B-32:{path}"


def dev_inputs(count: int = IMAGES) -> tuple[list[Any], list[str]]:
    from mmsearch.imageio import load_image

    paths = sorted(repo_path(DEV_IMAGES).iterdir())[:count]
    with repo_path(DEV_CAPTIONS).open(encoding="utf-8") as handle:
        rows = csv.DictReader(handle, delimiter="\t")
        captions = [row["caption"] for _, row in zip(range(CAPTIONS), rows, strict=False)]
    return [load_image(str(path), 10**8) for path in paths], captions


def images_per_s(encoder: Any, prepared: list[Any]) -> dict[str, float]:
    """One batch at a time on every thread, and the engine's ingest configuration; images/s of each."""
    out = {}
    started = time.perf_counter()
    for start in range(0, len(prepared), BATCH):
        encoder.encode_prepared(prepared[start : start + BATCH])
    out["one_at_a_time"] = len(prepared) / (time.perf_counter() - started)
    batches = [prepared[start : start + BATCH] for start in range(0, len(prepared), BATCH)]
    with encoder.parallel_batches() as streams, ThreadPoolExecutor(max_workers=streams) as pool:
        started = time.perf_counter()
        list(pool.map(encoder.encode_prepared, batches))
        out[f"{streams}_streams"] = len(prepared) / (time.perf_counter() - started)
    return out


def texts_per_s(encode: Callable[[list[str]], Any], captions: list[str]) -> float:
    started = time.perf_counter()
    encode(captions[:256])
    return 256 / (time.perf_counter() - started)


def measure_model(name: str, spec: str, photos: list[Any], captions: list[str], passes: int) -> dict[str, Any]:
    from mmsearch.encoders.calibration import calibrate
    from mmsearch.encoders.engine_choice import candidates_for
    from mmsearch.encoders.image_export import ensure_exports
    from mmsearch.encoders.onnx_image import load_image_encoder
    from mmsearch.encoders.openclip import OpenClipEncoder
    from mmsearch.encoders.precision import agreement, cpu_bf16_support
    from mmsearch.encoders.selection import load_shared_text_encoder

    started = time.perf_counter()
    torch_encoder = OpenClipEncoder(spec, device="cpu", precision="fp32")
    load_s = time.perf_counter() - started
    model, tokenizer = torch_encoder.text_tower
    started = time.perf_counter()
    manifests = ensure_exports(model, torch_encoder.open_clip_preprocess, tokenizer, torch_encoder.identity)
    export_s = time.perf_counter() - started
    onnx_image = load_image_encoder(torch_encoder.identity)
    onnx_text = load_shared_text_encoder(torch_encoder.identity)
    reference = {"image": torch_encoder.encode_images(photos), "text": torch_encoder.encode_texts(captions)}
    bf16 = cpu_bf16_support()[0]
    pairs = candidates_for("auto", "auto", bf16, onnx_image is not None and onnx_text is not None)
    runners = {"image": onnx_image, "text": onnx_text}
    prepared = {
        "onnx": [onnx_image.prepare_image(photo) for photo in photos] if onnx_image else [],
        "torch": [torch_encoder.prepare_image(photo) for photo in photos],
    }
    results: dict[str, Any] = {}
    with CpuMonitor() as cpu:
        for _ in range(passes):
            for tower in ("image", "text"):
                for engine, precision in pairs:
                    key = f"{tower} {engine} {precision}"
                    runner = runners[tower] if engine == "onnx" else torch_encoder
                    if engine == "torch":
                        torch_encoder.set_precision(tower, precision, "bench")
                    entry = results.setdefault(key, {"tower": tower, "engine": engine, "precision": precision})
                    if tower == "image":
                        vectors = runner.encode_prepared(prepared[engine])  # also the warm-up
                        rates = images_per_s(runner, prepared[engine])
                        rate = max(rates.values())
                        entry["configs"] = {
                            k: round(max(v, entry.get("configs", {}).get(k, 0)), 2) for k, v in rates.items()
                        }
                    else:
                        vectors = runner.encode_texts(captions)
                        rate = texts_per_s(runner.encode_texts, captions)
                    entry["rate"] = round(max(rate, entry.get("rate", 0.0)), 2)
                    result = agreement(reference[tower], vectors)
                    entry["worst_cosine"], entry["mean_cosine"] = (
                        round(result.worst_cosine, 6),
                        round(result.mean_cosine, 6),
                    )
    for tower in ("image", "text"):
        torch_encoder.set_precision(tower, "fp32", "bench")
    started = time.perf_counter()
    choice = calibrate(torch_encoder, onnx_image, onnx_text, pairs)
    calibration_s = time.perf_counter() - started
    return {
        "model": name,
        "spec": spec,
        "load_s": round(load_s, 2),
        "export_s": round(export_s, 2),
        "export_checks": {tower: m.get("check") for tower, m in manifests.items()},
        "candidates": list(results.values()),
        "calibration_s": round(calibration_s, 2),
        "calibration_pick": {tower: f"{c.engine} {c.precision}" for tower, c in choice.items()},
        "calibration_measured": {tower: [m.to_dict() for m in c.measured] for tower, c in choice.items()},
        "cpu": cpu.to_dict(),
    }


def rows_for(summary: dict[str, Any]) -> list[Row]:
    rows = [
        Row(
            f"{summary['model']}: open_clip load / ONNX export of both towers (once)",
            f"{summary['load_s']} / {summary['export_s']}",
            "s",
        ),
    ]
    for entry in summary["candidates"]:
        unit = "img/s" if entry["tower"] == "image" else "texts/s"
        agrees = entry["worst_cosine"] >= 0.995 and entry["mean_cosine"] >= 0.999
        rows.append(
            Row(
                f"{summary['model']} {entry['tower']} {entry['engine']} {entry['precision']}",
                f"{entry['rate']} {unit}, worst {entry['worst_cosine']:.5f}, mean {entry['mean_cosine']:.5f}",
                "",
                "worst >= 0.995, mean >= 0.999",
                agrees,
            )
        )
    pick = summary["calibration_pick"]
    rows.append(
        Row(
            f"{summary['model']}: calibration ({summary['calibration_s']} s) picks",
            f"image {pick['image']}, text {pick['text']}",
        )
    )
    rows.append(quiet_row(f"{summary['model']} timing", [summary["cpu"]["other_cpu_share"]]))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="mmsearch-bench-engines-"))
    os.environ["MMSEARCH_CACHE_DIR"] = str(scratch / "cache")  # exports and choices of this run only
    try:
        photos, captions = dev_inputs(args.images)
        summaries = []
        for name in args.models:
            spec = FIXTURE_MODEL if name == "fixture" else random_vit_checkpoint(scratch)
            log(f"{name}: load, export, measure ...")
            summaries.append(measure_model(name, spec, photos, captions, args.passes))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    rows = [row for summary in summaries for row in rows_for(summary)]
    machine: dict[str, Any] = {}
    with contextlib.suppress(Exception):
        machine = machine_facts("cpu")
    payload = {
        "benchmark": "engines",
        "machine": machine,
        "results": summaries,
        "notes": [
            "raw rates on prepared inputs; best of the interleaved passes; agreement vs torch fp32 (open_clip)",
            "onnxruntime's CPU provider has no bf16 arithmetic on x86 (its bf16 fast-math switch is Arm-only)",
        ],
    }
    emit(rows, payload, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
