#!/usr/bin/env python3
"""The most of the raw encoder any ingest can keep on this machine: ideal pipelines against raw (issue 13, target A).

Issue 13 asks that the ingest (without the model load) run at >= 0.9 x the fastest raw encoder. This benchmark
measures what a perfect ingest would reach: no database, no thread hand-offs, no queue, no Python glue between
the steps. Each pipeline runs on the engine's encoder streams (one thread each, as the ingest runs them); every
thread takes the next batch of photos, does the pipeline's per-photo work for it on that same thread, then encodes
the batch, so every core is busy from the first batch to the last:

* ``raw``: ``encode_prepared`` on photos prepared beforehand (what ``bench/ingest.py`` calls raw), at every size
  of ``--raw-batch-sizes``; the fastest of them is the reference;
* ``+decode``: each photo is also JPEG-decoded from its bytes in memory (``mmsearch.imageio.decode_image``, as the
  ingest decodes: orientation, draft); the decoded image is thrown away and the prepared copy encoded;
* ``+decode+resize``: each photo is prepared from its bytes in memory (decode, then the engine's own fast
  resize and crop) and encoded: the least work any ingest must do for a photo it has not seen;
* ``+ingest work``: the ingest's own per-photo function (``mmsearch.ingest.reading.prepare_file``: read the file,
  hash it, decode, read the header's captions and date, prepare), still on the encoder's threads;
* ``ingest``: the real ``Engine.ingest`` of the folder into a fresh home (with the loaded encoder), as
  ``bench/ingest.py`` times it: embedded / ``IngestReport.elapsed_s``.

All run at the engine's own batch size (``--batch-size`` overrides). Rounds alternate the pipelines in turn (the
order rotates each round); each ratio divides a pipeline's images/s by the fastest raw of the same round, and the
table gives the median and best over the rounds. If even ``+decode+resize`` stays under 0.9 x raw, no ingest can
meet the target on this machine with this model: what is left over is the cost of the pixels themselves.

Run from the repository root (the fixture's ONNX export in the shared cache: any ingest leaves it there)::

    source scripts/venv.sh && source scripts/fixture-env.sh && python bench/ceiling.py --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import DEV_IMAGES, FIXTURE_MODEL, Row, emit, log, machine_facts, repo_path, sqlite_url, use_offline_fixture

use_offline_fixture()

from mmsearch import Engine  # noqa: E402
from mmsearch.encoders import create_encoder  # noqa: E402
from mmsearch.encoders.base import Encoder  # noqa: E402
from mmsearch.errors import MmsearchError  # noqa: E402
from mmsearch.imageio import decode_image  # noqa: E402
from mmsearch.ingest.pipeline import balanced_size, batched  # noqa: E402
from mmsearch.ingest.reading import MAX_IMAGE_FILE_BYTES, prepare_file, read_whole  # noqa: E402
from mmsearch.ingest.scanner import scan_folder  # noqa: E402

MAX_PIXELS = 89_478_485
TARGET = 0.9
PIPELINES = ("+decode", "+decode+resize", "+ingest work", "ingest")


class Photo:
    """One photo: its path, its bytes (read once, untimed) and its prepared pixels (for raw and ``+decode``)."""

    def __init__(self, path: str, data: bytes, prepared: Any) -> None:
        self.path, self.data, self.prepared = path, data, prepared


def load_photos(encoder: Encoder, folder: Path) -> list[Photo]:
    """The folder's images the ingest would embed (a file that does not decode is left out, as the ingest fails it)."""
    photos = []
    for file in scan_folder(folder).files:
        try:
            data = read_whole(file.path, MAX_IMAGE_FILE_BYTES)
            image, _ = decode_image(data, MAX_PIXELS, encoder.min_decode_size)
        except MmsearchError as exc:
            log(f"left out {file.path}: {exc}")
            continue
        photos.append(Photo(file.path, data, encoder.prepare_image(image)))
    return photos


def per_photo_work(encoder: Encoder) -> dict[str, Callable[[Photo], Any]]:
    """Each pipeline's work for one photo on an encoder thread; returns what is encoded."""
    min_size = encoder.min_decode_size

    def decode_only(photo: Photo) -> Any:
        decode_image(photo.data, MAX_PIXELS, min_size)
        return photo.prepared

    def decode_resize(photo: Photo) -> Any:
        return encoder.prepare_image(decode_image(photo.data, MAX_PIXELS, min_size)[0])

    def ingest_work(photo: Photo) -> Any:  # what IngestRun._prepare runs
        return prepare_file(encoder, photo.path, MAX_IMAGE_FILE_BYTES, MAX_PIXELS).tensor

    return {"raw": lambda photo: photo.prepared, "+decode": decode_only, "+decode+resize": decode_resize,
            "+ingest work": ingest_work}  # fmt: skip


def threaded_pass(encoder: Encoder, photos: Sequence[Photo], size: int, work: Callable[[Photo], Any]) -> float:
    """Images/s of ``work`` + encode per batch, the engine's streams at once, each batch on one thread."""

    def one_batch(batch: list[Photo]) -> Any:
        return encoder.encode_prepared([work(photo) for photo in batch])

    with encoder.parallel_batches(0) as used, ThreadPoolExecutor(max_workers=used) as pool:
        batches = list(batched(photos, balanced_size(len(photos), size, used)))
        started = time.perf_counter()
        list(pool.map(one_batch, batches))
        return len(photos) / (time.perf_counter() - started)


def ingest_pass(encoder: Encoder, folder: Path, model: str, batch_size: int | None) -> float:
    """Images/s of a real first ingest into a fresh home, without the model load (as ``bench/ingest.py``)."""
    with tempfile.TemporaryDirectory(prefix="mmsearch-bench-ceiling-") as tmp:
        home = Path(tmp) / "home"
        factory = lambda name, device: encoder  # noqa: E731
        url = sqlite_url(home)
        with Engine.open(home, model=model, db_url=url, encoder_factory=factory, batch_size=batch_size) as engine:
            report = engine.ingest(folder)
    return report.embedded / report.elapsed_s


class Rounds:
    """Images/s per (pipeline, round), the fastest raw per round and the CPU each pipeline used per photo."""

    def __init__(self) -> None:
        self.rates: dict[str, list[float]] = {}
        self.raw_by_size: dict[int, list[float]] = {}
        self.cpu_ms: dict[str, list[float]] = {}

    def fastest_raw(self, index: int) -> float:
        return max(rates[index] for rates in self.raw_by_size.values())

    def ratios(self, name: str) -> list[float]:
        return [rate / self.fastest_raw(index) for index, rate in enumerate(self.rates[name])]


def timed(rounds: Rounds, name: str, images: int, run: Callable[..., float], *args: Any) -> float:
    """``run(*args)`` (images/s), keeping the process's CPU per photo it took under ``name``."""
    before = os.times()
    rate = run(*args)
    after = os.times()
    cpu = (after.user - before.user) + (after.system - before.system)
    rounds.cpu_ms.setdefault(name, []).append(cpu / images * 1000)
    return rate


def one_round(index: int, encoder: Encoder, photos: list[Photo], args: argparse.Namespace, rounds: Rounds) -> None:
    works = per_photo_work(encoder)
    for size in args.raw_batch_sizes:
        rate = timed(rounds, f"raw@{size}", len(photos), threaded_pass, encoder, photos, size, works["raw"])
        rounds.raw_by_size.setdefault(size, []).append(rate)
    order = PIPELINES[index % len(PIPELINES) :] + PIPELINES[: index % len(PIPELINES)]
    for name in order:
        if name == "ingest":
            given = args.batch_size_given
            rate = timed(rounds, name, len(photos), ingest_pass, encoder, args.folder, args.model, given)
        else:
            rate = timed(rounds, name, len(photos), threaded_pass, encoder, photos, args.batch_size, works[name])
        rounds.rates.setdefault(name, []).append(rate)


def table(rounds: Rounds, batch_size: int) -> list[Row]:
    rows = [Row("batch size of the pipelines (the engine's own unless --batch-size)", batch_size)]
    for size, rates in rounds.raw_by_size.items():
        rows.append(Row(f"raw at batch {size}, median", statistics.median(rates), "img/s"))
    rows.append(Row("fastest raw per round, median", statistics.median(map(rounds.fastest_raw, range(len(
        rounds.rates["ingest"])))), "img/s"))  # fmt: skip
    for name in PIPELINES:
        ratios = rounds.ratios(name)
        rows.append(Row(f"{name}: images/s, median", statistics.median(rounds.rates[name]), "img/s"))
        rows.append(Row(f"{name}: CPU per photo, median", statistics.median(rounds.cpu_ms[name]), "ms"))
        rows.append(Row(f"{name} / fastest raw, median", statistics.median(ratios), "", f">= {TARGET}",
                        statistics.median(ratios) >= TARGET))  # fmt: skip
        rows.append(Row(f"{name} / fastest raw, best round", max(ratios), "", f">= {TARGET}", max(ratios) >= TARGET))
    return rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default=DEV_IMAGES, help=f"photos (default {DEV_IMAGES})")
    parser.add_argument("--model", default=FIXTURE_MODEL, help=f"encoder (default {FIXTURE_MODEL})")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the engine's own (its calibration)")
    parser.add_argument("--raw-batch-sizes", default="1,2,4,8,32", help="raw is timed at each; the fastest counts")
    parser.add_argument("--rounds", type=int, default=5, help="alternated rounds (default 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)
    args.folder = repo_path(args.folder)
    args.raw_batch_sizes = [int(item) for item in args.raw_batch_sizes.split(",") if item]
    if args.rounds < 1 or not args.raw_batch_sizes or (args.batch_size is not None and args.batch_size < 1):
        parser.error("--rounds, --batch-size and every raw batch size must be at least 1")
    if not args.folder.is_dir():
        parser.error(f"folder not found: {args.folder}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    log(f"loading {args.model} on the CPU ...")
    encoder = create_encoder(args.model, "cpu", "auto", "auto")
    args.batch_size_given = args.batch_size
    args.batch_size = args.batch_size or encoder.batch_size or 32
    photos = load_photos(encoder, args.folder)
    if not photos:
        raise SystemExit(f"no images to time under {args.folder}")
    works = per_photo_work(encoder)
    for name in ("raw", "+decode+resize"):  # warm-up: sessions, the resizer's scratch buffers, the file cache
        threaded_pass(encoder, photos[: 8 * args.batch_size], args.batch_size, works[name])
    rounds = Rounds()
    for index in range(args.rounds):
        log(f"round {index + 1}/{args.rounds} ...")
        one_round(index, encoder, photos, args, rounds)
    payload = {
        "benchmark": "ceiling",
        "config": {"folder": str(args.folder), "model": args.model, "photos": len(photos),
                   "batch_size": args.batch_size, "rounds": args.rounds, "precision": dict(encoder.precision)},
        "machine": machine_facts("cpu"),
        "results": {"rates": rounds.rates, "raw_by_size": rounds.raw_by_size, "cpu_ms_per_photo": rounds.cpu_ms},
        "notes": ["each ratio: a pipeline's images/s over the fastest raw batch size of the same round"],
    }  # fmt: skip
    emit(table(rounds, args.batch_size), payload, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
