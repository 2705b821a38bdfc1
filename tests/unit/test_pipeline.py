"""Batch sizing for the encoder streams (nearly equal batches, whole rounds, never over the limit) and the ordered
encode-then-write of small batches in larger chunks."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmsearch.ingest.encoding import EncodeAndWrite
from mmsearch.ingest.pipeline import balanced_size, batched


def test_the_last_round_keeps_both_streams_busy() -> None:
    assert balanced_size(300, 32, 2) == 30  # 10 batches of 30, not 9 of 32 and one of 12
    assert [len(b) for b in batched(range(40), balanced_size(40, 32, 2))] == [20, 20]
    assert balanced_size(64, 32, 2) == 32  # already even: unchanged
    assert balanced_size(5, 32, 1) == 5


@given(count=st.integers(1, 5000), size=st.integers(1, 300), streams=st.integers(1, 8))
def test_balanced_sizes_stay_within_the_limit_and_the_fewest_rounds(count: int, size: int, streams: int) -> None:
    chosen = balanced_size(count, size, streams)
    assert 1 <= chosen <= size
    rounds = math.ceil(math.ceil(count / size) / streams)  # the rounds the largest batches would need
    sizes = [len(b) for b in batched(range(count), chosen)]
    assert sum(sizes) == count
    assert math.ceil(len(sizes) / streams) == rounds  # no extra round of stream calls
    if count >= rounds * streams:
        assert len(sizes) > (rounds - 1) * streams  # the last round is not left to one short batch


class Recorder:
    """Encodes a batch into one row per item (the item's value) and records every write, as the ingest's would."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.encoded: list[list[int]] = []
        self.writes: list[list[tuple[int, float]]] = []
        self.fail_on = fail_on

    def encode(self, batch) -> np.ndarray:
        self.encoded.append(list(batch))
        if self.fail_on in batch:
            raise RuntimeError(f"cannot encode {self.fail_on}")
        return np.array([[float(item)] for item in batch], dtype=np.float32)

    def changes(self, batch, vectors) -> list[tuple[int, float]]:
        return [(item, float(vector[0])) for item, vector in zip(batch, vectors, strict=True)]

    def write(self, changes) -> int:
        self.writes.append(list(changes))
        return len(changes)


def run_flow(recorder: Recorder, items: list[int], size: int, commit_size: int, streams: int = 2):
    with ThreadPoolExecutor(streams) as encoders, ThreadPoolExecutor(1) as committer:
        flow = EncodeAndWrite(
            recorder.encode, recorder.changes, recorder.write, (encoders, committer), 2 * streams, commit_size
        )
        try:
            for batch in batched(items, size):
                flow.add(batch)
            flow.finish()
        except RuntimeError:
            flow.salvage()
            raise
        return flow


@given(count=st.integers(0, 200), size=st.integers(1, 9), commit_size=st.integers(1, 70), streams=st.integers(1, 4))
def test_small_batches_are_written_in_order_in_chunks_of_the_commit_size(count, size, commit_size, streams) -> None:
    recorder = Recorder()
    flow = run_flow(recorder, list(range(count)), size, commit_size, streams)
    written = [item for write in recorder.writes for item, _ in write]
    assert written == list(range(count))  # every item once, in order, its own vector
    assert all(value == item for write in recorder.writes for item, value in write)
    # short writes: the one finish() makes before the last batches are collected, and the very last
    assert sum(len(write) < commit_size for write in recorder.writes) <= 2
    assert all(len(write) < commit_size + size for write in recorder.writes)
    if recorder.writes:  # what was collected is written before the last batches are: the tail is short
        assert len(recorder.writes[-1]) <= 2 * streams * size
    assert flow.written == count


def test_an_encoder_error_writes_what_was_collected_before_it_surfaces() -> None:
    recorder = Recorder(fail_on=20)
    with pytest.raises(RuntimeError, match="cannot encode 20"):
        run_flow(recorder, list(range(40)), size=2, commit_size=64, streams=1)
    written = [item for write in recorder.writes for item, _ in write]
    assert written == list(range(20))  # every batch collected before the failing one, once; nothing after it
