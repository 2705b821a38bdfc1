#!/usr/bin/env python3
"""The ingest decoder thread's CPU per photo, per way of preparing a photo, and (``--agreement``) each way's vectors
against open_clip's own transform + fp32 model (issue 13, fourth round).

Run from the repository root (the fixture's ONNX export must be in the shared cache: any ingest or
``bench/ingest.py`` run leaves it there)::

    source scripts/venv.sh && source scripts/fixture-env.sh && python bench/decode_cpu.py
    python bench/decode_cpu.py --agreement --extra-photos 100   # + agreement on DEV and 100 train photos

The timed function is the decoder thread's work for one photo, as ``IngestRun._prepare`` does it: read the file,
hash it, decode (EXIF orientation, reduced-scale draft), read the header's captions and date, and prepare the
model's pixels. The ways, alternated ``--rounds`` times over the 300 DEV photos (CPU time of this thread, best and
median per photo): ``exact`` (open_clip's pixels), ``fast-pillow`` (the crop region, Pillow's passes),
``fast-simd`` (the same passes on cykooz-resizer: the engine's default) and, where ``simplejpeg`` is installed
(not a dependency), ``sj-scaled`` (libjpeg-turbo decoding at the smallest M/8 scale keeping the short side >= the
model's input, then the SIMD passes), ``sj-fastdct`` and ``sj-fastupsample`` (full size, libjpeg-turbo's faster
IDCT or chroma upsampling). The agreement bar is issue 13's: worst cosine >= 0.995, mean >= 0.999.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from _common import DEV_IMAGES, FIXTURE_MODEL, Row, emit, log, machine_facts, repo_path, use_offline_fixture

use_offline_fixture()

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from mmsearch.encoders.onnx_image import load_image_encoder  # noqa: E402
from mmsearch.encoders.preprocess import ImagePreprocess  # noqa: E402
from mmsearch.encoders.selection import known_identity  # noqa: E402
from mmsearch.imageio import hash_bytes  # noqa: E402
from mmsearch.ingest.reading import decode_whole, read_whole  # noqa: E402

MAX_PIXELS = 89_478_485
Way = Callable[[str], np.ndarray]


def pillow_way(preprocess: ImagePreprocess, min_size: tuple[int, int]) -> Way:
    def prepare(path: str) -> np.ndarray:
        image, _ = decode_whole(read_whole(path, 512 << 20), MAX_PIXELS, min_size)
        return preprocess.prepare(image)

    return prepare


def simplejpeg_way(preprocess: ImagePreprocess, scaled: bool, **options: bool) -> Way:
    """libjpeg-turbo through simplejpeg (header-only size first, as the ingest checks sizes before decoding)."""
    import simplejpeg

    side = min(preprocess.size) if scaled else 0

    def prepare(path: str) -> np.ndarray:
        data = read_whole(path, 512 << 20)
        hash_bytes(data)
        height, width, _, _ = simplejpeg.decode_jpeg_header(data)
        wide = width >= height
        pixels = simplejpeg.decode_jpeg(
            data, "RGB", min_height=side if wide else 0, min_width=0 if wide else side, **options
        )
        image = Image.frombuffer("RGB", (pixels.shape[1], pixels.shape[0]), pixels, "raw", "RGB", 0, 1)
        return preprocess.prepare(image)

    return prepare


def ways(identity: Any, min_size: tuple[int, int]) -> dict[str, Way]:
    cfg = identity.preprocess
    simd = ImagePreprocess.from_config(cfg, fast=True, resizer="simd")
    found = {
        "exact": pillow_way(ImagePreprocess.from_config(cfg), min_size),
        "fast-pillow": pillow_way(ImagePreprocess.from_config(cfg, fast=True), min_size),
        "fast-simd": pillow_way(simd, min_size),
    }
    try:
        import simplejpeg  # noqa: F401
    except ImportError:
        log("simplejpeg is not installed: its ways are left out (pip install simplejpeg to measure them)")
        return found
    found["sj-scaled"] = simplejpeg_way(simd, scaled=True)
    found["sj-fastdct"] = simplejpeg_way(simd, scaled=False, fastdct=True)
    found["sj-fastupsample"] = simplejpeg_way(simd, scaled=False, fastupsample=True)
    return found


def cpu_per_photo(found: dict[str, Way], paths: Sequence[str], rounds: int) -> dict[str, list[float]]:
    """Milliseconds of this thread's CPU per photo, each way once per round, alternated."""
    for way in found.values():
        for path in paths[:10]:
            way(path)  # warm-up: imports, first-call buffers
    times: dict[str, list[float]] = {name: [] for name in found}
    for _ in range(rounds):
        for name, way in found.items():
            started = time.thread_time()
            for path in paths:
                way(path)
            times[name].append((time.thread_time() - started) * 1e3 / len(paths))
    return times


def agreement_rows(found: dict[str, Way], paths: Sequence[str], encoder: Any, dev: int) -> list[Row]:
    """Each way's vectors (the ONNX image tower) against open_clip's own transform + fp32 model."""
    from mmsearch.encoders import create_encoder
    from mmsearch.encoders.precision import agreement
    from mmsearch.imageio import load_image

    reference = create_encoder(FIXTURE_MODEL, "cpu", "fp32", "torch")
    full = [load_image(path, MAX_PIXELS) for path in paths]
    theirs = np.concatenate([reference.encode_images(full[i : i + 50]) for i in range(0, len(full), 50)])
    rows = []
    for name, way in found.items():
        prepared = [way(path) for path in paths]
        ours = np.concatenate([encoder.encode_prepared(prepared[i : i + 50]) for i in range(0, len(paths), 50)])
        for label, part in (("DEV", slice(0, dev)), ("train", slice(dev, None))):
            if part.start == len(paths):
                continue
            result = agreement(theirs[part], ours[part])
            ok = result.worst_cosine >= 0.995 and result.mean_cosine >= 0.999
            value = f"worst {result.worst_cosine:.7f}, mean {result.mean_cosine:.7f}"
            rows.append(Row(f"{name}: agreement on {label} ({len(ours[part])} photos)", value, "", "0.995/0.999", ok))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds, each way once per round (default 5)")
    parser.add_argument("--agreement", action="store_true", help="also check each way's vectors (loads open_clip)")
    parser.add_argument("--extra-photos", type=int, default=0, help="train photos added to the agreement check")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    identity = known_identity(FIXTURE_MODEL)
    encoder = load_image_encoder(identity, fast=True) if identity is not None else None
    if encoder is None:
        raise SystemExit("no verified ONNX export of the fixture in the shared cache: run bench/ingest.py once")
    paths = [str(path) for path in sorted(repo_path(DEV_IMAGES).iterdir())]
    found = ways(identity, encoder.min_decode_size)
    log(f"timing {len(found)} ways over {len(paths)} photos, {args.rounds} rounds ...")
    times = cpu_per_photo(found, paths, args.rounds)
    rows = [
        Row(f"{name}: decoder CPU per photo (best / median)", f"{min(v):.3f} / {statistics.median(v):.3f}", "ms")
        for name, v in times.items()
    ]
    if args.agreement:
        extra = sorted(repo_path(DEV_IMAGES).parents[1].glob("train/images/*"))[: args.extra_photos]
        log("agreement with open_clip fp32 ...")
        rows += agreement_rows(found, paths + [str(path) for path in extra], encoder, len(paths))
    payload = {"benchmark": "decode_cpu", "machine": machine_facts("cpu"), "cpu_ms_per_photo": times}
    emit(rows, payload, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
