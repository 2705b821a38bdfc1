#!/usr/bin/env python3
"""The GPU check (run by ``bench/gpu_check.sh``): ViT-B-32 ingest speed on CUDA and the fixture model's CUDA
embeddings against CPU fp32. Prints a table and writes it to ``--out``.

Without CUDA it says so, skips the GPU rows (marked ``skipped``), still runs what needs no GPU (image decoding on
every core, the defaults each device gets, the fixture model on the CPU) and exits with status 2.

Rows (GPU present):
* raw encoder, ViT-B-32 with random weights (speed does not depend on them), batches of ``--batch`` random
  pixels already on the GPU, autocast fp16 and bf16: images/s of the model alone;
* end-to-end ``Engine.ingest`` of ``--images`` synthetic JPEGs (640x480) with that model on CUDA (precision
  ``auto``: bf16 autocast on Hopper) and all cores decoding: images/s of the embedding phase and end to end,
  the batch size and decode workers the engine chose, and the ratio to the raw encoder;
* the fixture model (``hf-hub:mmsearch-fixtures/lit-effnet-minilm``) on CUDA (precision ``auto``) vs on the CPU in
  fp32: the lowest cosine over image and text embeddings (target >= 0.999).
Target (issue 16): >= 2,500 images/s end to end, ViT-B-32 on one H100/H200.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SHARED, Row, format_table

FIXTURE_MODEL = "hf-hub:mmsearch-fixtures/lit-effnet-minilm"
E2E_TARGET = 2500.0
COSINE_TARGET = 0.999


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4000, help="synthetic JPEGs for the end-to-end ingest")
    parser.add_argument("--batch", type=int, default=256, help="raw encoder batch")
    parser.add_argument("--out", default=str(Path(os.environ.get("OUT", ".")) / "gpu_check.txt"))
    return parser.parse_args()


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _write_jpegs(args: tuple[str, int, int]) -> None:
    import numpy as np
    from PIL import Image

    folder, start, stop = args
    rng = np.random.default_rng(start)
    for number in range(start, stop):
        base = rng.integers(0, 256, size=(30, 40, 3), dtype=np.uint8)  # smooth-ish content: upscaled noise
        Image.fromarray(base).resize((640, 480), Image.Resampling.BILINEAR).save(
            Path(folder) / f"img{number:06d}.jpg", quality=90
        )


def synthetic_images(folder: Path, count: int) -> float:
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    step = max(1, count // (4 * cores()))
    with ProcessPoolExecutor(cores()) as pool:
        list(pool.map(_write_jpegs, [(str(folder), s, min(count, s + step)) for s in range(0, count, step)]))
    return time.perf_counter() - started


def decode_rate(folder: Path) -> float:
    """Images/s of the ingest's decoding (read, hash, decode at reduced size) on every core, no model."""
    from mmsearch.ingest.ray_executor import decode_files

    paths = sorted(str(p) for p in folder.glob("*.jpg"))
    chunks = [paths[i : i + 64] for i in range(0, len(paths), 64)]
    started = time.perf_counter()
    with ProcessPoolExecutor(cores()) as pool:
        list(pool.map(decode_files, chunks, [89_478_485] * len(chunks), [(336, 336)] * len(chunks)))
    return len(paths) / (time.perf_counter() - started)


def raw_encoder(batch: int) -> dict[str, float]:
    import open_clip
    import torch

    model = open_clip.create_model("ViT-B-32", pretrained=None).to("cuda").eval()
    pixels = torch.randn(batch, 3, 224, 224, device="cuda")
    out = {}
    for name, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        with torch.inference_mode(), torch.autocast("cuda", dtype=dtype):
            for _ in range(3):
                model.encode_image(pixels)
            torch.cuda.synchronize()
            started, rounds = time.perf_counter(), 20
            for _ in range(rounds):
                model.encode_image(pixels)
            torch.cuda.synchronize()
        out[name] = batch * rounds / (time.perf_counter() - started)
    return out


def end_to_end(folder: Path, work: Path) -> dict[str, Any]:
    import open_clip
    import torch

    from mmsearch import Engine

    checkpoint = work / "vit-b-32-random.pt"
    torch.save(open_clip.create_model("ViT-B-32", pretrained=None).state_dict(), checkpoint)
    started = time.perf_counter()
    with Engine.open(work / "home", model=f"ViT-B-32:{checkpoint}", device="cuda") as engine:
        report = engine.ingest(folder)
    wall = time.perf_counter() - started
    return {
        "embed_images_per_s": report.embedded / report.embed_s,
        "end_to_end_images_per_s": report.embedded / wall,
        "batch_size": report.batch_size,
        "workers": report.workers,
        "precision": report.precision,
        "images": report.embedded,
    }


def fixture_agreement(cuda: bool) -> dict[str, Any]:
    """The fixture model's embeddings on CUDA (precision auto) vs CPU fp32: the lowest cosine."""
    import numpy as np
    from PIL import Image

    from mmsearch.encoders import create_encoder

    dev = SHARED / "data" / "flickr8k" / "dev" / "images"
    images = [Image.open(p).convert("RGB") for p in sorted(dev.glob("*.jpg"))[:32]] if dev.is_dir() else []
    if not images:
        rng = np.random.default_rng(0)
        images = [Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)) for _ in range(16)]
    texts = ["a dog running on the beach", "two children playing in the snow", "a red car", "a man on a bike"]
    cpu = create_encoder(FIXTURE_MODEL, "cpu", "fp32")
    reference = (cpu.encode_images(images), cpu.encode_texts(texts))
    if not cuda:
        return {"images": len(images), "cpu_only": True}
    gpu = create_encoder(FIXTURE_MODEL, "cuda", "auto")
    got = (gpu.encode_images(images), gpu.encode_texts(texts))
    cosines = [float(np.min(np.sum(a * b, axis=1))) for a, b in zip(reference, got, strict=True)]
    return {"images": len(images), "image_min_cosine": cosines[0], "text_min_cosine": cosines[1]}


def main() -> int:
    args = parse_args()
    from mmsearch.config import default_batch_size, default_workers

    try:
        import torch

        cuda = torch.cuda.is_available()
        torch_note = f"torch {torch.__version__}"
    except ImportError:
        cuda, torch_note = False, "torch not installed"
    rows: list[Row] = [Row("CPU cores", cores()), Row("CUDA", "yes: " + torch.cuda.get_device_name() if cuda else "NO")]
    if not cuda:
        print(f"gpu_check: CUDA is not available ({torch_note}): the GPU rows are skipped", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="mmsearch-gpu-check-"))
    folder = work / "images"
    made = synthetic_images(folder, args.images)
    rows.append(Row(f"synthetic 640x480 JPEGs written ({args.images})", round(made, 1), "s"))
    rows.append(Row("decode on every core (read, hash, reduced-size decode)", round(decode_rate(folder)), "images/s"))
    for device in ("cpu", "cuda"):
        rows.append(
            Row(
                f"defaults on {device}: batch size / decode workers",
                f"{default_batch_size(device)} / {default_workers(device)}",
            )
        )
    skipped = "skipped (no CUDA)"
    if cuda:
        raw = raw_encoder(args.batch)
        e2e = end_to_end(folder, work)
        rows += [
            Row(f"ViT-B-32 raw encoder fp16, batch {args.batch}", round(raw["fp16"]), "images/s"),
            Row(f"ViT-B-32 raw encoder bf16, batch {args.batch}", round(raw["bf16"]), "images/s"),
            Row(
                "ViT-B-32 ingest, embedding phase",
                round(e2e["embed_images_per_s"]),
                "images/s",
                f">= {E2E_TARGET:.0f}",
                e2e["embed_images_per_s"] >= E2E_TARGET,
            ),
            Row("ViT-B-32 ingest, end to end (model load included)", round(e2e["end_to_end_images_per_s"]), "images/s"),
            Row("ingest / raw encoder (bf16)", round(e2e["embed_images_per_s"] / raw["bf16"], 3), "x"),
            Row(
                "ingest chose: batch size / decode workers / precision",
                f"{e2e['batch_size']} / {e2e['workers']} / {e2e['precision']}",
            ),
        ]
    else:
        rows += [Row(name, skipped) for name in ("ViT-B-32 raw encoder fp16/bf16", "ViT-B-32 ingest images/s")]
    try:
        agreement = fixture_agreement(cuda)
    except Exception as exc:  # the fixture model missing (not carried): say so, keep the rest
        rows.append(Row("fixture model CUDA vs CPU fp32", f"not run: {type(exc).__name__}: {exc}"[:160]))
    else:
        if cuda:
            for kind in ("image", "text"):
                value = agreement[f"{kind}_min_cosine"]
                rows.append(
                    Row(
                        f"fixture model {kind} embeddings, CUDA vs CPU fp32 (lowest cosine)",
                        round(value, 5),
                        "",
                        f">= {COSINE_TARGET}",
                        value >= COSINE_TARGET,
                    )
                )
        else:
            rows.append(Row("fixture model on CPU fp32 (reference embeddings computed)", agreement["images"], "images"))
            rows.append(Row("fixture model CUDA vs CPU fp32", skipped))
    table = format_table(rows)
    print(table)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(table + "\n", encoding="utf-8")
    print(f"gpu_check: table written to {args.out}", file=sys.stderr)
    return 0 if cuda and all(row.passed is not False for row in rows) else 2 if not cuda else 1


if __name__ == "__main__":
    raise SystemExit(main())
