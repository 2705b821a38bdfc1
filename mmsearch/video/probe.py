"""What a video file holds, read from its header (PyAV): duration, size, rotation, audio and subtitle streams."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mmsearch.audio.probe import describe_av_error, import_av
from mmsearch.errors import UnreadableMediaError
from mmsearch.reasons import EMPTY_FILE

MAX_VIDEO_PIXELS = 8192 * 8192
"""Frames larger than this are refused (a decompression bomb, or nothing a phone records)."""


@dataclass(frozen=True)
class VideoInfo:
    """The facts of a video's header used by ingest. ``width``/``height`` are as coded; the rotation to display
    it is read from the decoded frames (PyAV exposes the display matrix there)."""

    duration: float
    width: int
    height: int
    fps: float | None
    codec: str
    has_audio: bool
    subtitle_streams: int
    created_at: float | None = None


def open_video(path: str) -> Any:
    """A PyAV input container, or UnreadableMediaError with a one-line reason."""
    av = import_av()
    try:
        if os.path.getsize(path) == 0:
            raise UnreadableMediaError("empty file", EMPTY_FILE)
        return av.open(path, mode="r", metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise UnreadableMediaError(f"cannot read video: {describe_av_error(exc)}") from exc
    except OSError as exc:
        raise UnreadableMediaError(f"cannot read video: {exc.strerror or exc}") from exc


def probe_container(container: Any, max_pixels: int = MAX_VIDEO_PIXELS) -> VideoInfo:
    """Check and describe an open container; raises UnreadableMediaError for what cannot be ingested."""
    if not container.streams.video:
        raise UnreadableMediaError("no video stream")
    stream = container.streams.video[0]
    context = stream.codec_context
    width, height = int(context.width or 0), int(context.height or 0)
    if width <= 0 or height <= 0:
        raise UnreadableMediaError("video stream has no frame size (unsupported codec or damaged header)")
    if width * height > max_pixels:
        raise UnreadableMediaError(f"frame size {width}x{height} is over the limit of {max_pixels} pixels")
    duration = _duration(container, stream)
    if not duration > 0:
        raise UnreadableMediaError("empty video (zero duration)")
    rate = stream.average_rate or stream.guessed_rate
    return VideoInfo(
        duration,
        width,
        height,
        float(rate) if rate else None,
        str(context.name),
        bool(container.streams.audio),
        len(container.streams.subtitles),
        _created_at(container.metadata),
    )


def _duration(container: Any, stream: Any) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return 0.0


def normalise_rotation(angle: float) -> int:
    """An angle in degrees as 0, 90, 180 or 270 (counter-clockwise; NaN counts as 0)."""
    if math.isnan(angle):
        return 0
    return round(angle / 90.0) * 90 % 360


def _created_at(metadata: dict[str, str]) -> float | None:
    """The recording time a camera writes (``creation_time``, ISO 8601), as Unix seconds."""
    value = metadata.get("creation_time")
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
