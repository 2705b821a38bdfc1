"""Keyframe selection: one frame per window of at most ``interval`` seconds of each shot, never a black, blank or
blurred one, at most ``max_frames`` per video. Online: frames are offered in time order, and only the candidates
of the current window are held (with their pictures), so memory stays bounded on long videos."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmsearch.video.shots import FrameStats

DEFAULT_INTERVAL = 5.0
DEFAULT_MAX_FRAMES = 48


@dataclass(frozen=True)
class SelectionSettings:
    """How keyframes are chosen (all settings validate themselves)."""

    interval: float = DEFAULT_INTERVAL
    """At least one keyframe every this many seconds inside a long shot."""
    max_frames: int = DEFAULT_MAX_FRAMES
    """At most this many keyframes per video (evenly thinned by time beyond it)."""
    black_level: float = 16.0
    """Mean luma (0-255) below which a frame is black."""
    blank_std: float = 4.0
    """Luma standard deviation below which a frame is blank (one flat colour)."""
    blur_ratio: float = 0.25
    """A frame less sharp than this fraction of the recent frames' sharpness (90th percentile of the last 64
    analysed frames, so a blurry stretch does not become the norm) is blurred."""
    min_window: float = 1.0
    """A shot's last window shorter than this (seconds) gets no frame of its own, unless it is the shot's only one."""
    picture_rate: float = 2.0
    """Candidate pictures kept per second (the others are measured, not converted)."""

    def __post_init__(self) -> None:
        if not self.interval > 0:
            raise ValueError(f"keyframe interval must be above 0 seconds, not {self.interval}")
        if self.max_frames < 1:
            raise ValueError(f"max keyframes per video must be at least 1, not {self.max_frames}")
        if not 0 <= self.blur_ratio < 1:
            raise ValueError(f"blur ratio must be in [0, 1), not {self.blur_ratio}")
        if not self.picture_rate > 0:
            raise ValueError(f"picture rate must be above 0, not {self.picture_rate}")


@dataclass(frozen=True)
class Candidate:
    """A usable frame of the current window, with its picture."""

    time: float
    image: Any = None


@dataclass(frozen=True)
class Keyframe:
    """A chosen frame: its time, the span of its shot (seconds) and its picture."""

    time: float
    shot_start: float
    shot_end: float
    image: Any = None


@dataclass
class _Window:
    start: float
    end: float
    shot_start: float
    candidates: list[Candidate] = field(default_factory=list)


def rejection(stats: FrameStats, reference_sharpness: float, settings: SelectionSettings) -> str | None:
    """Why a frame must not be a keyframe (``black``, ``blank``, ``blurred``), or None when it may."""
    if stats.mean < settings.black_level:
        return "black"
    if stats.std < settings.blank_std:
        return "blank"
    if stats.sharpness < settings.blur_ratio * reference_sharpness:
        return "blurred"
    return None


class KeyframeSelector:
    """Feed :meth:`cut` at shot boundaries and :meth:`offer` for every analysed frame, then :meth:`finish`."""

    def __init__(self, settings: SelectionSettings, duration: float | None = None) -> None:
        self.settings = settings
        # A long video gets a longer interval so that time windows alone stay within max_frames.
        self.interval = max(settings.interval, (duration or 0.0) / settings.max_frames)
        self.keyframes: list[Keyframe] = []
        self.rejected: dict[str, int] = {}
        self._sharpness: deque[float] = deque(maxlen=64)
        self._window: _Window | None = None
        self._shot_start = 0.0
        self._shot_frames: list[int] = []

    def cut(self, time: float) -> None:
        """A new shot starts at ``time``."""
        self._close_window(time)
        self._close_shot(time)
        self._shot_start = time

    def offer(self, time: float, stats: FrameStats, picture: Callable[[], Any]) -> None:
        """An analysed frame at ``time``; ``picture()`` converts it, called only if it may be chosen."""
        window = self._window
        if window is None or time >= window.end:
            start = self._shot_start
            if window is not None:
                self._close_window(time)
                skipped = int((time - window.end) // self.interval)  # windows without any frame
                start = window.end + skipped * self.interval
            self._window = window = _Window(start, start + self.interval, self._shot_start)
        reference = float(np.percentile(self._sharpness, 90)) if self._sharpness else 0.0
        self._sharpness.append(stats.sharpness)
        reason = rejection(stats, reference, self.settings)
        if reason is not None:
            self.rejected[reason] = self.rejected.get(reason, 0) + 1
            return
        last = window.candidates[-1].time if window.candidates else None
        if last is None or time - last >= 1.0 / self.settings.picture_rate:
            window.candidates.append(Candidate(time, picture()))

    def finish(self, end: float) -> list[Keyframe]:
        """The keyframes of the whole video, in time order, thinned to ``max_frames``."""
        self._close_window(end)
        self._close_shot(end)
        return thin(self.keyframes, self.settings.max_frames)

    def _close_window(self, end: float) -> None:
        window, self._window = self._window, None
        if window is None or not window.candidates:
            return
        stop = min(window.end, end)
        if stop - window.start < self.settings.min_window and window.start > window.shot_start:
            return  # a short tail of a shot that already has a frame
        middle = (window.start + stop) / 2
        best = min(window.candidates, key=lambda c: (abs(c.time - middle), c.time))
        self._shot_frames.append(len(self.keyframes))
        self.keyframes.append(Keyframe(best.time, window.shot_start, window.shot_start, best.image))

    def _close_shot(self, end: float) -> None:
        for index in self._shot_frames:
            frame = self.keyframes[index]
            self.keyframes[index] = Keyframe(frame.time, frame.shot_start, end, frame.image)
        self._shot_frames = []


def thin(keyframes: list[Keyframe], limit: int) -> list[Keyframe]:
    """At most ``limit`` keyframes, evenly spread over the list (first and last kept)."""
    if len(keyframes) <= limit:
        return keyframes
    if limit == 1:
        return [keyframes[len(keyframes) // 2]]
    picks = np.linspace(0, len(keyframes) - 1, limit).round().astype(int)
    return [keyframes[i] for i in sorted(set(picks.tolist()))]
