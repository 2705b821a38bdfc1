"""Batch sizing for the encoder streams: nearly equal batches, whole rounds, never over the limit."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

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
