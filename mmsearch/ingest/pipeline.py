"""Ordered, bounded, threaded map: decode the next files while the model encodes these."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Outcome(Generic[T, R]):
    """The result of ``fn(item)``, or the exception it raised."""

    item: T
    value: R | None = None
    error: BaseException | None = None

    @property
    def result(self) -> R:
        """The value of a call that succeeded (``error`` is None); raises the error of one that failed."""
        if self.error is not None:
            raise self.error
        return cast(R, self.value)


def map_ahead(fn: Callable[[T], R], items: Iterable[T], workers: int, window: int) -> Iterator[Outcome[T, R]]:
    """Yield ``fn(item)`` for each item, in order, running up to ``window`` calls ahead on ``workers`` threads.

    Exceptions from ``fn`` are returned in the :class:`Outcome`, never raised, so
    one bad item does not stop the rest. Pending work is cancelled if the consumer stops early.
    """
    window = max(window, 1)
    pending: deque[tuple[T, Future[R]]] = deque()
    iterator = iter(items)
    with ThreadPoolExecutor(max_workers=max(workers, 1), thread_name_prefix="mmsearch-decode") as pool:
        try:
            for item in iterator:
                pending.append((item, pool.submit(fn, item)))
                if len(pending) >= window:
                    yield _outcome(*pending.popleft())
            while pending:
                yield _outcome(*pending.popleft())
        finally:
            for _, future in pending:
                future.cancel()


def _outcome(item: T, future: Future[R]) -> Outcome[T, R]:
    try:
        return Outcome(item, value=future.result())
    except Exception as exc:
        return Outcome(item, error=exc)


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of up to ``size`` items."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def balanced_size(count: int, size: int, streams: int = 1) -> int:
    """A batch size of at most ``size`` that cuts ``count`` items into batches of nearly equal size, as many as
    ``streams`` run at once (a multiple of it): the last round then keeps every stream busy instead of one
    running a short batch while the others wait (300 images, 32 at most, 2 streams: 10 batches of 30, not
    9 of 32 and one of 12)."""
    if count < 1 or size < 1:
        return max(size, 1)
    rounds = math.ceil(math.ceil(count / size) / max(streams, 1))
    return max(1, min(size, math.ceil(count / (rounds * max(streams, 1)))))
