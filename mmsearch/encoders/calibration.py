"""The short calibration that picks each tower's engine: agreement on probes first, then throughput on synthetic
batches, only as long as the answer is open.

Per tower and candidate (see :func:`mmsearch.encoders.engine_choice.candidates_for`):

1. **Agreement, once**: the probe images / texts against torch float32 (the open_clip reference, with open_clip's
   own transform). Torch fp32 *is* the reference (agreement 1 by construction, not re-encoded). A candidate that
   fails the bar cannot run the tower, so it is **not timed** at all.
2. **Throughput, in passes**: each pass times every candidate still in the race (images: :data:`ROUNDS` rounds of
   ``streams`` concurrent batches of :data:`IMAGE_BATCH` synthetic photos, prepared beforehand, run the way ingest
   runs them, ``parallel_batches`` included, after one warm-up round; texts: :data:`TEXT_BATCH` captions, one
   batch at a time as queries and captions are encoded). After each pass a candidate slower than the best by more
   than :data:`CLEAR_WIN` is out (its best rate is kept for the record); the calibration stops when one is left
   or after :data:`MAX_PASSES` passes (the best pass of each counts, so a burst of load elsewhere does not
   decide). A clear winner (ONNX Runtime at twice torch fp32, say) is decided in one pass.

3. **Batch size**, for the image tower's winner only: :mod:`mmsearch.encoders.batch_choice`.

About 3-10 s once per model and machine on a quiet 2-core CPU; the result is cached
(:func:`mmsearch.encoders.engine_choice.store_choice`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from mmsearch.encoders.batch_choice import best_batch, measure_batches
from mmsearch.encoders.engine_choice import TOWERS, Candidate, TowerChoice, pick
from mmsearch.encoders.precision import PROBE_TEXTS, Agreement, agreement, probe_images

log = logging.getLogger(__name__)

IMAGE_BATCH = 16
TEXT_BATCH = 64
ROUNDS = 2
MAX_PASSES = 2
CLEAR_WIN = 1.25
"""A candidate whose best rate is under the leader's divided by this is out of the race (a 25 % gap is far
above the pass-to-pass noise of a quiet machine, and a loaded one slows every candidate alike)."""
SYNTHETIC_SHAPE = (500, 375)
"""Synthetic photos the size of a Flickr8k photo: what the decoders hand over is resized to the input anyway."""
CAPTION_WORDS = "a dog runs on the beach while two children play football in a muddy field near the old harbour"
REFERENCE = ("torch", "fp32")

Pair = tuple[str, str]


def calibrate(
    torch_encoder: Any, onnx_image: Any, onnx_text: Any, pairs: Sequence[tuple[str, str]]
) -> dict[str, TowerChoice]:
    """Measure the (engine, precision) pairs on both towers and pick; ``onnx_*`` may be None (not available).

    ``torch_encoder`` is an :class:`~mmsearch.encoders.openclip.OpenClipEncoder` on the CPU; it is left running
    each tower in the precision chosen for it (fp32 where another engine won).
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
        race = _Race(tower, torch_encoder, runtimes[tower], inputs, reference[tower])
        choice[tower] = pick(tower, race.run(usable))
        if tower == "image":
            choice[tower] = race.with_batch(choice[tower])
        dtype = choice[tower].precision if choice[tower].engine == "torch" else "fp32"
        torch_encoder.set_precision(tower, dtype, choice[tower].reason)
        log.info("%s tower runs in %s %s (%s)", tower, choice[tower].engine, dtype, choice[tower].reason)
    return choice


def with_measured_batch(torch_encoder: Any, onnx_image: Any, chosen: TowerChoice) -> TowerChoice:
    """The image tower's ``chosen`` engine (no race: the only candidate) with its batch size measured."""
    inputs = {"image": probe_images(IMAGE_BATCH, SYNTHETIC_SHAPE)}
    return _Race("image", torch_encoder, onnx_image, inputs, None).with_batch(chosen)


class _Race:
    """One tower's candidates: agreement once, then timed passes while more than one is in the running."""

    def __init__(self, tower: str, torch_encoder: Any, runtime: Any, inputs: dict[str, Any], reference: Any) -> None:
        self.tower, self.torch, self.runtime = tower, torch_encoder, runtime
        self.inputs, self.reference = inputs, reference
        self.rates: dict[Pair, float] = {}
        self.agreements: dict[Pair, Agreement | str] = {}
        self.floor = 0.0
        """The rate under which a candidate is out (the leader's so far / :data:`CLEAR_WIN`): its timing stops there."""

    def run(self, pairs: Sequence[Pair]) -> list[Candidate]:
        """Every pair as a measured :class:`Candidate` (rate 0 for one never timed because it disagreed)."""
        for pair in pairs:
            self.agreements[pair] = self._attempt(pair, self._agreement)
        racing = [pair for pair in pairs if _agrees(self.agreements[pair])]
        for _ in range(MAX_PASSES):
            for pair in racing:
                self.floor = max((self.rates.get(other, 0.0) for other in racing if other != pair), default=0.0)
                self.floor /= CLEAR_WIN
                rate = self._attempt(pair, self._rate)
                if isinstance(rate, str):
                    self.agreements[pair] = rate
                else:
                    self.rates[pair] = max(self.rates.get(pair, 0.0), rate)
            racing = [pair for pair in racing if not isinstance(self.agreements[pair], str)]
            best = max((self.rates[pair] for pair in racing), default=0.0)
            racing = [pair for pair in racing if self.rates[pair] * CLEAR_WIN >= best]
            if len(racing) <= 1:
                break
        return [_candidate(pair, self.rates.get(pair, 0.0), self.agreements[pair]) for pair in pairs]

    def with_batch(self, chosen: TowerChoice) -> TowerChoice:
        """``chosen`` with the batch size its engine runs fastest at (none where the measurement failed)."""
        pair = (chosen.engine, chosen.precision)
        rates = self._attempt(pair, self._batch_rates)
        if isinstance(rates, str):
            log.info("image tower: batch sizes not measured (%s); the device's default", rates)
            return chosen
        return dataclasses.replace(chosen, batch=best_batch(rates), batch_rates=tuple(sorted(rates.items())))

    def _batch_rates(self, pair: Pair, runner: Any) -> dict[int, float]:
        prepared = [runner.prepare_image(picture) for picture in self.inputs["image"]]
        return measure_batches(runner.encode_prepared, prepared, runner.parallel_batches, self.rates.get(pair, 0.0))

    def _attempt(self, pair: Pair, measure: Callable[[Pair, Any], Any]) -> Any:
        """``measure(pair, runner)`` with the pair set up; an error (bf16 kernels missing, ...) as one line."""
        try:
            return measure(pair, self._runner(pair))
        except Exception as exc:  # a candidate that cannot run is out, whatever the kind of failure
            return f"{type(exc).__name__}: {exc}"[:300]

    def _runner(self, pair: Pair) -> Any:
        if pair[0] == "onnx":
            return self.runtime
        self.torch.set_precision(self.tower, pair[1], "calibration")
        return self.torch

    def _agreement(self, pair: Pair, runner: Any) -> Agreement:
        if pair == REFERENCE:
            return agreement(self.reference, self.reference)  # the reference itself: not encoded again
        if self.tower == "image":
            probes = runner.encode_prepared([runner.prepare_image(picture) for picture in probe_images()])
        else:
            probes = runner.encode_texts(list(PROBE_TEXTS))
        return agreement(self.reference, probes)

    def _rate(self, pair: Pair, runner: Any) -> float:
        if self.tower == "image":
            prepared = [runner.prepare_image(picture) for picture in self.inputs["image"]]
            return _rate(runner.encode_prepared, prepared, runner.parallel_batches, self.floor)
        return _rate(runner.encode_texts, self.inputs["text"], lambda: contextlib.nullcontext(1), self.floor)


def _agrees(agreed: Agreement | str) -> bool:
    return not isinstance(agreed, str) and _candidate(REFERENCE, 1.0, agreed).agrees


def _candidate(pair: tuple[str, str], rate: float, agreed: Any) -> Candidate:
    if isinstance(agreed, str):
        return Candidate(pair[0], pair[1], error=agreed)
    return Candidate(pair[0], pair[1], rate, agreed.worst_cosine, agreed.mean_cosine)


def _rate(encode: Callable[[Any], Any], batch: Sequence[Any], parallel: Callable[[], Any], floor: float = 0.0) -> float:
    """Items per second of ``encode`` on ``batch``, ``streams`` calls at a time, over up to :data:`ROUNDS` rounds
    after one warm-up round; stops after a round that leaves the rate under ``floor`` (it is out anyway)."""
    with parallel() as streams, ThreadPoolExecutor(max_workers=streams) as pool:
        list(pool.map(encode, [batch] * streams))
        started, done, rate = time.perf_counter(), 0, 0.0
        for _ in range(ROUNDS):
            list(pool.map(encode, [batch] * streams))
            done += len(batch) * streams
            rate = done / max(time.perf_counter() - started, 1e-9)
            if rate < floor:
                break
    return rate


def _captions(count: int) -> list[str]:
    """Caption-like texts of 8 to 20 words, distinct (deterministic)."""
    words = CAPTION_WORDS.split()
    rng = np.random.default_rng(13)
    return [" ".join(rng.choice(words, size=int(rng.integers(8, 21)))) for _ in range(count)]
