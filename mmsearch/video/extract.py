"""One decoding pass over a video (PyAV): shot cuts and frame quality on small greyscale frames, and the chosen
keyframes converted once, at the size the image encoder needs, with the stream's rotation applied."""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from mmsearch.audio.probe import describe_av_error, import_av
from mmsearch.errors import UnreadableMediaError
from mmsearch.video.probe import MAX_VIDEO_PIXELS, VideoInfo, normalise_rotation, open_video, probe_container
from mmsearch.video.select import Keyframe, KeyframeSelector, SelectionSettings
from mmsearch.video.shots import ANALYSIS_WIDTH, CutDetector, CutSettings, frame_stats

DEFAULT_ANALYSIS_FPS = 10.0
"""Frames per second measured for cuts and quality (the others are decoded, not measured)."""
DEFAULT_PICTURE_SIDE = 320
"""Keyframes are kept with their shorter side this long (the encoder resizes to its input, 224 for CLIP)."""


@dataclass(frozen=True)
class ExtractSettings:
    selection: SelectionSettings = field(default_factory=SelectionSettings)
    cuts: CutSettings = field(default_factory=CutSettings)
    analysis_fps: float = DEFAULT_ANALYSIS_FPS
    picture_side: int = DEFAULT_PICTURE_SIDE
    max_pixels: int = MAX_VIDEO_PIXELS
    threads: int = 0
    """Decoder threads (0: FFmpeg's choice)."""
    skip_nonref: bool = True
    """In a stream with B-frames, leave non-reference frames undecoded: 2-4x less decoding, and cuts are still seen
    within a few frames (analysis samples at most ``analysis_fps`` anyway). Streams without B-frames are decoded
    whole (every frame is then a reference, nothing would be saved, cut times stay exact); a video whose frames are
    all non-reference is decoded again in full."""

    def __post_init__(self) -> None:
        if not self.analysis_fps > 0:
            raise ValueError(f"analysis fps must be above 0, not {self.analysis_fps}")
        if self.picture_side < 32:
            raise ValueError(f"keyframe picture side must be at least 32 pixels, not {self.picture_side}")


def video_settings(interval: float, max_frames: int) -> ExtractSettings:
    """Extraction settings with the user's keyframe interval and cap, the rest default."""
    return ExtractSettings(selection=SelectionSettings(interval=interval, max_frames=max_frames))


@dataclass
class VideoFrames:
    """What the decoding pass found: the header facts, shot starts, keyframes, and what it cost."""

    info: VideoInfo
    rotation: int
    cuts: list[float]
    keyframes: list[Keyframe]
    rejected: dict[str, int]
    decoded: int
    decode_s: float

    @property
    def display_size(self) -> tuple[int, int]:
        width, height = self.info.width, self.info.height
        return (height, width) if self.rotation % 180 else (width, height)


def extract_keyframes(path: str, settings: ExtractSettings | None = None) -> VideoFrames:
    """Decode ``path`` once; raises UnreadableMediaError for a file that is not a usable video."""
    settings = settings or ExtractSettings()
    av = import_av()
    started = time.perf_counter()
    with open_video(path) as container:
        info = probe_container(container, settings.max_pixels)
        try:
            frames = _decode(container, info, settings, started)
        except av.error.FFmpegError as exc:
            raise UnreadableMediaError(f"cannot decode video: {describe_av_error(exc)}") from exc
    if frames is None:  # nothing but non-reference frames: decode every frame
        return extract_keyframes(path, dataclasses.replace(settings, skip_nonref=False))
    return frames


def _video_stream(container: Any, settings: ExtractSettings) -> Any:
    """The first video stream, set up to decode: threads, and non-reference frames skipped where asked."""
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    if settings.skip_nonref and stream.codec_context.has_b_frames:
        stream.codec_context.skip_frame = "NONREF"
    if settings.threads:
        stream.codec_context.thread_count = settings.threads
    return stream


def _decode(container: Any, info: VideoInfo, settings: ExtractSettings, started: float) -> VideoFrames | None:
    stream = _video_stream(container, settings)
    # One scaler per output kept for the whole video: building one per frame (``frame.reformat``) costs ~10x more.
    from av.video.reformatter import VideoReformatter

    gray_scaler, picture_scaler = VideoReformatter(), VideoReformatter()
    detector = CutDetector(settings.cuts)
    selector = KeyframeSelector(settings.selection, info.duration)
    step = 1.0 / settings.analysis_fps
    gray_size = _scaled(info.width, info.height, ANALYSIS_WIDTH)
    cuts: list[float] = []
    rotation: int | None = None
    decoded, last_analysed, last_time = 0, float("-inf"), 0.0
    for frame in container.decode(stream):
        decoded += 1
        if frame.time is None or frame.time - last_analysed < step * 0.999:
            continue
        last_analysed = last_time = frame.time
        if rotation is None:
            rotation = normalise_rotation(frame.rotation)
        gray = gray_scaler.reformat(
            frame, width=gray_size[0], height=gray_size[1], format="gray", interpolation="AREA"
        ).to_ndarray()
        if detector.push(frame.time, gray) and frame.time > 0:
            cuts.append(frame.time)
            selector.cut(frame.time)
        selector.offer(
            frame.time, frame_stats(gray), functools.partial(_picture, picture_scaler, frame, rotation or 0, settings)
        )
    if decoded == 0 and settings.skip_nonref:
        return None
    if decoded == 0:
        raise UnreadableMediaError("no decodable video frame (truncated file or unsupported codec)")
    end = max(info.duration, last_time)
    keyframes = selector.finish(end)
    return VideoFrames(info, rotation or 0, cuts, keyframes, selector.rejected, decoded, time.perf_counter() - started)


def _picture(scaler: Any, frame: Any, rotation: int, settings: ExtractSettings) -> Image.Image:
    """The frame as an RGB picture with its shorter side ``picture_side`` (never enlarged), rotated for display."""
    width, height = frame.width, frame.height
    scale = min(1.0, settings.picture_side / min(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = scaler.reformat(frame, width=size[0], height=size[1], format="rgb24", interpolation="AREA").to_image()
    return rotate_for_display(image, rotation)


def rotate_for_display(image: Image.Image, rotation: int) -> Image.Image:
    """Turn a decoded picture by the stream's counter-clockwise display rotation (0, 90, 180 or 270)."""
    if rotation % 360 == 0:
        return image
    transpose = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}
    return image.transpose(transpose[normalise_rotation(rotation)])


def _scaled(width: int, height: int, target_width: int) -> tuple[int, int]:
    """A size ``target_width`` wide (never wider than the source) with the aspect ratio kept (even numbers)."""
    new_width = min(width, target_width)
    new_height = max(2, round(height * new_width / width))
    return new_width, new_height
