"""Shot boundaries from a frame-difference measure on small greyscale frames, and the frame-quality measures
keyframe selection uses (black, blank, blurred). Pure numpy; fed one frame at a time (online, bounded memory).

A cut is a frame whose mean absolute luma difference from the frame before is both large in absolute terms
(``threshold``, on 0-255) and large against the recent motion (``ratio`` times the median difference of the last
frames), so camera motion and noise do not cut while a change of picture does. Gradual transitions (dissolves,
fades) are not detected as cuts; long shots still get a keyframe every ``interval`` seconds (see
:mod:`mmsearch.video.select`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

ANALYSIS_WIDTH = 128
"""Width (pixels) of the greyscale frames cuts and quality are measured on."""


@dataclass(frozen=True)
class FrameStats:
    """Mean and standard deviation of luma (0-255), and sharpness (variance of the Laplacian) of a small frame."""

    mean: float
    std: float
    sharpness: float


def frame_stats(gray: np.ndarray) -> FrameStats:
    """:class:`FrameStats` of a 2-D uint8 greyscale frame."""
    g = gray.astype(np.float32)
    if g.shape[0] < 3 or g.shape[1] < 3:
        return FrameStats(float(g.mean()), float(g.std()), 0.0)
    laplacian = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return FrameStats(float(g.mean()), float(g.std()), float(laplacian.var()))


def frame_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two greyscale frames of the same size (0-255)."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@dataclass(frozen=True)
class CutSettings:
    threshold: float = 12.0
    """Minimum mean absolute luma difference (0-255) for a cut."""
    ratio: float = 3.0
    """A cut's difference must also exceed this many times the recent median difference."""
    min_shot: float = 0.4
    """Seconds: no cut closer than this to the previous one (flashes, flicker)."""
    history: int = 12
    """Frame differences remembered for the recent median."""


class CutDetector:
    """Online cut detection: :meth:`push` each analysed frame in time order; True when it starts a new shot."""

    def __init__(self, settings: CutSettings | None = None) -> None:
        self.settings = settings or CutSettings()
        self._previous: np.ndarray | None = None
        self._recent: deque[float] = deque(maxlen=self.settings.history)
        self._last_cut = 0.0

    def push(self, time: float, gray: np.ndarray) -> bool:
        previous, self._previous = self._previous, gray
        if previous is None or previous.shape != gray.shape:
            return False
        difference = frame_difference(previous, gray)
        settings = self.settings
        typical = float(np.median(self._recent)) if self._recent else 0.0
        cut = (
            difference >= settings.threshold
            and difference >= settings.ratio * typical
            and time - self._last_cut >= settings.min_shot
        )
        if cut:
            self._last_cut = time
            self._recent.clear()
        else:
            self._recent.append(difference)
        return cut
