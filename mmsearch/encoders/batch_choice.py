"""How many images per encoder call run fastest on this machine: measured once, with the engine choice.

On a CPU, a convolutional tower on ONNX Runtime encodes one or two photos per call ~18 % faster per photo than
32 (the fixture on a 2-core EPYC: 180 against 152 images/s; the activations of a small batch stay in the core's
cache), so the batch is measured, not assumed: each size of :data:`BATCH_SIZES` runs on synthetic prepared photos
the way an ingest runs them (``streams`` calls at once), after one warm-up round at that shape. A timed *round* is
repeated until it lasts :data:`ROUND_SECONDS`; the sizes take turns over :data:`PASSES` passes and each keeps its
fastest round (a neighbour's load only ever slows a round down, so the best one is the machine's speed). A size
whose single round would take over :data:`MAX_ROUND_SECONDS` at the tower's rate is not timed, nor any larger (a
large model's first run stays short; if the largest size timed then wins, the device's default is kept). The
fastest size wins; a smaller one within :data:`TIE` of a larger one's rate yields to it (the noise of short
rounds is of that order, and an ingest pays a little per call beyond the encoder). ViT-B-32 (random weights,
same CPU): ONNX fp32 is flat (~20 images/s at 1-16, 17 at 32), torch bf16 rises to 32 (40 images/s), and both
sweeps are cut short at a size that wins, so both keep 32.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any

BATCH_SIZES = (1, 2, 4, 8, 16)
"""16 stands for the larger sizes: a 2-core CPU runs 32 no faster (measured: 152 against 155 images/s)."""
PASSES = 3
ROUND_SECONDS = 0.05
MAX_ROUND_SECONDS = 1.0
TIE = 1.05


def measure_batches(
    encode: Callable[[Sequence[Any]], Any],
    prepared: Sequence[Any],
    parallel: Callable[[], AbstractContextManager[int]],
    rate_hint: float,
) -> dict[int, float]:
    """Images per second of ``encode`` per batch size, ``streams`` batches at once (see the module docstring).

    ``prepared``: model-ready images, cycled to fill a batch; ``rate_hint``: the tower's rate as the engine race
    measured it (images/s; 0 when unknown: a warm-up round of the smallest size stands in for it)."""
    with parallel() as streams, ThreadPoolExecutor(max_workers=streams) as pool:
        rate_hint = rate_hint if rate_hint > 0 else _round_rate(pool, encode, _batch(prepared, 1), streams, 1)
        sizes = [s for s in BATCH_SIZES if s == BATCH_SIZES[0] or streams * s / rate_hint <= MAX_ROUND_SECONDS]
        repeats = {size: max(1, math.ceil(ROUND_SECONDS * rate_hint / (streams * size))) for size in sizes}
        for size in sizes:
            _round_rate(pool, encode, _batch(prepared, size), streams, 1)  # the warm-up at this shape
        rates = dict.fromkeys(sizes, 0.0)
        for _ in range(PASSES):
            for size in sizes:
                rate = _round_rate(pool, encode, _batch(prepared, size), streams, repeats[size])
                rates[size] = max(rates[size], rate)
    return rates


def best_batch(rates: dict[int, float]) -> int | None:
    """The fastest size; of sizes within :data:`TIE` of the fastest, the largest. None (the device's default) when
    nothing was timed, or when the sweep was cut short and the largest size it timed wins: the rate may still be
    rising past it (ViT-B-32 on torch bf16: 40 images/s at 32 against 35-40 at 16, where a round of 32 would take
    over :data:`MAX_ROUND_SECONDS`)."""
    if not rates:
        return None
    fastest = max(rates.values())
    best = max(size for size, rate in rates.items() if rate * TIE >= fastest)
    cut_short = max(rates) < BATCH_SIZES[-1]
    return None if cut_short and best == max(rates) else best


def _batch(prepared: Sequence[Any], size: int) -> list[Any]:
    return [prepared[index % len(prepared)] for index in range(size)]


def _round_rate(
    pool: Executor, encode: Callable[[Sequence[Any]], Any], batch: list[Any], streams: int, repeat: int
) -> float:
    """Images per second over ``repeat`` rounds of ``streams`` concurrent calls on ``batch``."""
    started = time.perf_counter()
    for _ in range(repeat):
        list(pool.map(encode, [batch] * streams))
    return repeat * streams * len(batch) / max(time.perf_counter() - started, 1e-9)
