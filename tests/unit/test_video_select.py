"""Keyframe selection and cut detection on synthetic frames (pure logic, no decoding)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmsearch.video.select import Keyframe, KeyframeSelector, SelectionSettings, rejection, thin
from mmsearch.video.shots import CutDetector, FrameStats, frame_stats

SHARP = FrameStats(mean=120.0, std=50.0, sharpness=900.0)
BLACK = FrameStats(mean=3.0, std=1.0, sharpness=0.5)
BLANK = FrameStats(mean=200.0, std=1.0, sharpness=0.5)
BLURRED = FrameStats(mean=120.0, std=40.0, sharpness=20.0)


def _run(frames: list[tuple[float, FrameStats]], cuts: list[float], end: float, **kw) -> list[Keyframe]:
    selector = KeyframeSelector(SelectionSettings(**kw))
    pending = sorted(cuts)
    for time, stats in frames:
        while pending and pending[0] <= time:
            selector.cut(pending.pop(0))
        selector.offer(time, stats, lambda t=time: f"picture@{t}")
    return selector.finish(end)


def _steady(start: float, end: float, stats: FrameStats = SHARP, fps: float = 4.0) -> list[tuple[float, FrameStats]]:
    return [(t, stats) for t in np.arange(start, end, 1 / fps).tolist()]


def test_one_keyframe_per_short_shot_near_its_middle_with_the_shot_span() -> None:
    frames = _steady(0, 3) + _steady(3, 7)
    keys = _run(frames, cuts=[3.0], end=7.0)
    assert [(k.shot_start, k.shot_end) for k in keys] == [(0.0, 3.0), (3.0, 7.0)]
    assert abs(keys[0].time - 1.5) <= 0.5 and abs(keys[1].time - 5.0) <= 0.5
    assert keys[0].image == f"picture@{keys[0].time}"


def test_a_long_shot_gets_a_frame_every_interval() -> None:
    keys = _run(_steady(0, 30), cuts=[], end=30.0, interval=5.0)
    assert len(keys) == 6
    assert all(0 < b.time - a.time <= 5.0 + 0.5 for a, b in itertools.pairwise(keys))


def test_max_frames_caps_a_video_evenly() -> None:
    keys = _run(_steady(0, 100), cuts=[], end=100.0, interval=1.0, max_frames=7)
    assert len(keys) == 7
    assert keys[0].time < 10 and keys[-1].time > 90


@pytest.mark.parametrize(("bad", "reason"), [(BLACK, "black"), (BLANK, "blank"), (BLURRED, "blurred")])
def test_black_blank_and_blurred_frames_are_never_chosen(bad: FrameStats, reason: str) -> None:
    # The shot's middle is bad; a usable frame off-centre is chosen instead.
    frames = [(t, bad if 0.5 <= t <= 2.5 else SHARP) for t, _ in _steady(0, 3)]
    selector = KeyframeSelector(SelectionSettings())
    for time, stats in frames:
        selector.offer(time, stats, lambda t=time: t)
    keys = selector.finish(3.0)
    assert len(keys) == 1 and not 0.5 <= keys[0].time <= 2.5
    assert selector.rejected[reason] > 0
    assert rejection(bad, reference_sharpness=900.0, settings=SelectionSettings()) == reason


def test_a_shot_with_no_usable_frame_gets_none() -> None:
    keys = _run(_steady(0, 2, BLACK) + _steady(2, 5), cuts=[2.0], end=5.0)
    assert [(k.shot_start, k.shot_end) for k in keys] == [(2.0, 5.0)]


def test_settings_validate_themselves() -> None:
    with pytest.raises(ValueError, match="interval"):
        SelectionSettings(interval=0)
    with pytest.raises(ValueError, match="max keyframes"):
        SelectionSettings(max_frames=0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.5, 20.0), min_size=1, max_size=12),
    st.floats(1.0, 10.0),
    st.integers(1, 20),
)
def test_keyframes_lie_in_their_shot_in_order_within_the_cap(
    shot_lengths: list[float], interval: float, cap: int
) -> None:
    bounds = np.cumsum([0.0, *shot_lengths]).tolist()
    frames = _steady(0, bounds[-1])
    keys = _run(frames, cuts=bounds[1:-1], end=bounds[-1], interval=interval, max_frames=cap)
    assert 1 <= len(keys) <= cap
    assert [k.time for k in keys] == sorted(k.time for k in keys)
    for key in keys:
        assert key.shot_start <= key.time <= key.shot_end
        assert any(abs(key.shot_start - b) < 1e-9 for b in bounds[:-1])


def test_thin_keeps_first_and_last() -> None:
    frames = [Keyframe(float(i), 0, 1) for i in range(10)]
    assert [k.time for k in thin(frames, 3)] == [0.0, 4.0, 9.0] or [k.time for k in thin(frames, 3)] == [0.0, 5.0, 9.0]
    assert thin(frames, 20) == frames


def _picture(seed: int, shape: tuple[int, int] = (36, 64)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _scene(phase: float, frequency: float) -> np.ndarray:
    y, x = np.mgrid[0:36, 0:64]
    return (127 + 120 * np.sin(frequency * x + phase) * np.cos(0.2 * y)).astype(np.uint8)


def test_cuts_at_picture_changes_not_within_a_moving_shot() -> None:
    detector = CutDetector()
    found = []
    for n in range(40):  # a panning shot (the pattern moves a little every frame), then another one
        frame = _scene(0.15 * n, 0.1) if n < 20 else _scene(2.0 + 0.15 * n, 0.3)
        if detector.push(n / 10, frame):
            found.append(n / 10)
    assert found == [2.0]


def test_frame_stats_see_black_flat_and_sharp_frames() -> None:
    assert frame_stats(np.zeros((36, 64), np.uint8)).mean == 0
    flat = frame_stats(np.full((36, 64), 200, np.uint8))
    assert flat.std == 0 and flat.sharpness == 0
    assert frame_stats(_picture(3)).sharpness > 1000
