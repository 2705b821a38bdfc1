"""The short calibration that picks each tower's engine: throughput on synthetic batches, agreement on probes.

Per tower and candidate (see :func:`mmsearch.encoders.engine_choice.candidates_for`), in :data:`PASSES`
interleaved passes (the best pass counts): one warm-up round, then
:data:`ROUNDS` rounds of ``streams`` concurrent batches (images: :data:`IMAGE_BATCH` synthetic photos, prepared
beforehand, run the way ingest runs them, ``parallel_batches`` included; texts: :data:`TEXT_BATCH` captions, one
batch at a time as queries and captions are encoded); then the probe images / texts against torch float32 (the
open_clip reference, with open_clip's own transform). About 5-20 s once per model and machine; the result is
cached (:func:`mmsearch.encoders.engine_choice.store_choice`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from mmsearch.encoders.engine_choice import TOWERS, Candidate, TowerChoice, pick
from mmsearch.encoders.precision import PROBE_TEXTS, Agreement, agreement, probe_images

log = logging.getLogger(__name__)

IMAGE_BATCH = 16
TEXT_BATCH = 64
ROUNDS = 2
PASSES = 2
SYNTHETIC_SHAPE = (500, 375)
"""Synthetic photos the size of a Flickr8k photo: what the decoders hand over is resized to the input anyway."""
CAPTION_WORDS = "a dog runs on the beach while two children play football in a muddy field near the old harbour"


def calibrate(
    torch_encoder: Any, onnx_image: Any, onnx_text: Any, pairs: Sequence[tuple[str, str]]
) -> dict[str, TowerChoice]:
    """Measure every (engine, precision) pair on both towers and pick; ``onnx_*`` may be None (not available).

    ``torch_encoder`` is an :class:`~mmsearch.encoders.openclip.OpenClipEncoder` on the CPU; it is left running
    each tower in the precision chosen for it (fp32 where another engine won). Throughput is the best of
    :data:`PASSES` interleaved passes, so a burst of load elsewhere on the machine does not decide.
    """
    pictures = probe_images()
    torch_encoder.set_precision("image", "fp32", "calibration reference")
    torch_encoder.set_precision("text", "fp32", "calibration reference")
    reference = {"image": torch_encoder.encode_images(pictures), "text": torch_encoder.encode_texts(list(PROBE_TEXTS))}
    inputs = {"image": probe_images(IMAGE_BATCH, SYNTHETIC_SHAPE), "text": _captions(TEXT_BATCH)}
    runtimes = {"image": onnx_image, "text": onnx_text}
    choice: dict[str, TowerChoice] = {}
    for tower in TOWERS:
        usable = [(e, p) for e, p in pairs if e == "torch" or runtimes[tower] is not None]
        rates = {pair: 0.0 for pair in usable}
        agreements: dict[tuple[str, str], Any] = {}
        for _ in range(PASSES):
            for pair in usable:
                if isinstance(agreements.get(pair), str):
                    continue  # failed in an earlier pass
                try:
                    rate, agreed = _measure(tower, *pair, torch_encoder, runtimes[tower], inputs, reference)
                except Exception as exc:  # a candidate that cannot run (bf16 kernels missing, ...) is out
                    agreements[pair] = f"{type(exc).__name__}: {exc}"[:300]
                    continue
                rates[pair] = max(rates[pair], rate)
                agreements[pair] = agreed
        choice[tower] = pick(tower, [_candidate(pair, rates[pair], agreements[pair]) for pair in usable])
        dtype = choice[tower].precision if choice[tower].engine == "torch" else "fp32"
        torch_encoder.set_precision(tower, dtype, choice[tower].reason)
        log.info("%s tower runs in %s %s (%s)", tower, choice[tower].engine, dtype, choice[tower].reason)
    return choice


def _candidate(pair: tuple[str, str], rate: float, agreed: Any) -> Candidate:
    if isinstance(agreed, str):
        return Candidate(pair[0], pair[1], error=agreed)
    return Candidate(pair[0], pair[1], rate, agreed.worst_cosine, agreed.mean_cosine)


def _measure(
    tower: str,
    engine: str,
    precision: str,
    torch_encoder: Any,
    runtime: Any,
    inputs: dict[str, Any],
    reference: dict[str, np.ndarray],
) -> tuple[float, Agreement]:
    """(items/s, agreement with the reference) of one candidate."""
    runner = runtime if engine == "onnx" else torch_encoder
    if engine == "torch":
        torch_encoder.set_precision(tower, precision, "calibration")
    if tower == "image":
        probes = runner.encode_prepared([runner.prepare_image(picture) for picture in probe_images()])
        prepared = [runner.prepare_image(picture) for picture in inputs["image"]]
        rate = _rate(runner.encode_prepared, prepared, runner.parallel_batches)
    else:
        probes = runner.encode_texts(list(PROBE_TEXTS))
        rate = _rate(runner.encode_texts, inputs["text"], lambda: contextlib.nullcontext(1))
    return rate, agreement(reference[tower], probes)


def _rate(encode: Callable[[Any], Any], batch: Sequence[Any], parallel: Callable[[], Any]) -> float:
    """Items per second of ``encode`` on ``batch``, ``streams`` calls at a time, after one warm-up round."""
    with parallel() as streams, ThreadPoolExecutor(max_workers=streams) as pool:
        list(pool.map(encode, [batch] * streams))
        started = time.perf_counter()
        list(pool.map(encode, [batch] * (streams * ROUNDS)))
        elapsed = time.perf_counter() - started
    return len(batch) * streams * ROUNDS / max(elapsed, 1e-9)


def _captions(count: int) -> list[str]:
    """Caption-like texts of 8 to 20 words, distinct (deterministic)."""
    words = CAPTION_WORDS.split()
    rng = np.random.default_rng(13)
    return [" ".join(rng.choice(words, size=int(rng.integers(8, 21)))) for _ in range(count)]
