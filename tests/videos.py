"""Slideshow videos built at test time from the Flickr8k DEV photos (never committed): each photo on screen for
its slot, hard cuts between photos, and the photo's spoken caption (caption 0) on the AAC audio track inside its
slot. The ground truth is exact: photo *i* is on screen during ``slots[i]`` and its caption is said inside it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageOps

from mmsearch.evaluation import EvalQuery
from tests.mixed_library import read_captions

SAMPLE_RATE = 16_000
LEAD_IN = 0.3
"""Seconds of silence at the start of each slot before its caption is said."""


@dataclass(frozen=True)
class Slot:
    photo: str
    start: float
    end: float


@dataclass
class Slideshow:
    path: Path
    slots: list[Slot] = field(default_factory=list)

    @property
    def cuts(self) -> list[float]:
        return [slot.start for slot in self.slots[1:]]


def spoken_captions(dev: Path) -> dict[str, Path]:
    with (dev / "audio.tsv").open(encoding="utf-8") as handle:
        return {row["image"]: dev / row["file"] for row in csv.DictReader(handle, delimiter="\t")}


def read_audio(path: Path) -> np.ndarray:
    """Mono float32 samples at :data:`SAMPLE_RATE`."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
        chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def fit(photo: Path, size: tuple[int, int]) -> np.ndarray:
    """The photo scaled (up or down) to fit ``size`` on a dark grey background (letterboxed), RGB uint8."""
    with Image.open(photo) as image:
        image = ImageOps.contain(image.convert("RGB"), size)
        canvas = Image.new("RGB", size, (40, 40, 40))
        canvas.paste(image, ((size[0] - image.width) // 2, (size[1] - image.height) // 2))
        return np.asarray(canvas)


def build_slideshow(
    path: Path,
    photos: list[Path],
    speech: dict[str, Path] | None,
    size: tuple[int, int] = (320, 240),
    fps: int = 8,
    min_slot: float = 3.0,
    rotation: int = 0,
    b_frames: int = 0,
) -> Slideshow:
    """Write an H.264 (+ AAC when ``speech`` is given) slideshow; slots are whole frames long."""
    voices = {p.name: read_audio(speech[p.name]) for p in photos} if speech is not None else {}
    show = Slideshow(path)
    start = 0.0
    for photo in photos:
        spoken = len(voices[photo.name]) / SAMPLE_RATE if voices else 0.0
        frames = int(np.ceil(max(min_slot, spoken + LEAD_IN + 0.7) * fps))
        show.slots.append(Slot(photo.name, start, start + frames / fps))
        start += frames / fps
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        video.options = {"preset": "veryfast" if b_frames else "ultrafast", "g": str(4 * fps), "bf": str(b_frames)}
        if rotation:
            video.set_display_rotation(rotation)
        audio = out.add_stream("aac", rate=SAMPLE_RATE, layout="mono") if voices else None
        index = 0
        for photo, slot in zip(photos, show.slots, strict=True):
            picture = av.VideoFrame.from_ndarray(fit(photo, size), format="rgb24")
            for _ in range(round((slot.end - slot.start) * fps)):
                picture.pts = index
                index += 1
                out.mux(video.encode(picture))
        out.mux(video.encode(None))
        if audio is not None:
            _write_audio(out, audio, _track(show, voices))
    return show


def _track(show: Slideshow, voices: dict[str, np.ndarray]) -> np.ndarray:
    track = np.zeros(int(np.ceil(show.slots[-1].end * SAMPLE_RATE)), np.float32)
    for slot in show.slots:
        at = int((slot.start + LEAD_IN) * SAMPLE_RATE)
        voice = voices[slot.photo]
        track[at : at + len(voice)] = voice[: len(track) - at]
    return track


def _write_audio(out: av.container.OutputContainer, stream: av.audio.stream.AudioStream, track: np.ndarray) -> None:
    chunk = 1024
    for offset in range(0, len(track), chunk):
        frame = av.AudioFrame.from_ndarray(track[None, offset : offset + chunk].copy(), format="flt", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = offset
        frame.time_base = Fraction(1, SAMPLE_RATE)
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def build_library(
    dev: Path, folder: Path, videos: int, per_video: int, first: int = 0, speech: bool = True
) -> list[Slideshow]:
    """``videos`` slideshows of ``per_video`` consecutive DEV photos each (from photo number ``first``)."""
    photos = sorted((dev / "images").glob("*.jpg"))[first : first + videos * per_video]
    voices = spoken_captions(dev) if speech else None
    folder.mkdir(parents=True, exist_ok=True)
    return [
        build_slideshow(folder / f"show{n:02d}.mp4", photos[n * per_video : (n + 1) * per_video], voices)
        for n in range(videos)
    ]


SYNTHETIC_FPS = 8
SIZE = (96, 64)


def _scene(number: int, t: int) -> np.ndarray:
    """A smooth, slowly moving pattern, distinct per scene; scene 0 has a bright top-left corner marker."""
    y, x = np.mgrid[0 : SIZE[1], 0 : SIZE[0]]
    freq = 0.08 + 0.07 * number
    grey = 127 + 110 * np.sin(freq * x + 0.05 * t) * np.cos((0.05 + 0.03 * number) * y)
    rgb = np.stack([grey, np.roll(grey, 7 * number, axis=1), 255 - grey], axis=-1).astype(np.uint8)
    rgb[:8, :8] = 255
    return rgb


def write_video(
    path: Path,
    shots: list[float],
    rotation: int = 0,
    srt: str | None = None,
    pix_fmt: str = "yuv420p",
    jitter: bool = False,
    b_frames: int = 0,
) -> Path:
    """Shots of the given lengths (seconds), H.264, no audio; an .srt text muxed in as a subtitle stream;
    ``pix_fmt`` ``yuv420p10le`` for 10-bit; ``jitter``: variable frame rate (frame durations of 1/16 to 3/16 s)."""
    subtitles = None
    if srt is not None:
        source = path.with_suffix(".in.srt")
        source.write_text(srt, encoding="utf-8")
        subtitles = av.open(str(source))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=SYNTHETIC_FPS)
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], pix_fmt
        stream.options = {"preset": "veryfast", "bf": str(b_frames)} if b_frames else {"preset": "ultrafast"}
        if jitter:
            stream.codec_context.time_base = Fraction(1, 16)
        if rotation:
            stream.set_display_rotation(rotation)
        sub_stream = out.add_stream_from_template(subtitles.streams.subtitles[0]) if subtitles else None
        index, at = 0, 0
        for number, length in enumerate(shots):
            end = at + round(length * 16) if jitter else 0
            for t in range(round(length * SYNTHETIC_FPS)):
                if jitter and at >= end:
                    break
                frame = av.VideoFrame.from_ndarray(_scene(number, t), format="rgb24").reformat(format=pix_fmt)
                frame.pts = at if jitter else index
                index += 1
                at += 1 + t % 3 if jitter else 0
                out.mux(stream.encode(frame))
            if jitter:
                at = end
        out.mux(stream.encode(None))
        if subtitles is not None:
            for packet in subtitles.demux(subtitles.streams.subtitles[0]):
                if packet.dts is not None:
                    packet.stream = sub_stream
                    out.mux(packet)
    if subtitles is not None:
        subtitles.close()
        path.with_suffix(".in.srt").unlink()
    return path


MARGIN = 0.5
"""Seconds trimmed from each end of a slot in the ground truth, so a moment that only grazes a neighbouring slot
(a cut detected a frame late, a speech segment ending just after the cut) does not count."""


def moment_queries(dev: Path, shows: list[Slideshow], captions: range = range(1, 5)) -> list[EvalQuery]:
    """Captions ``captions`` of every photo (caption 0 is the one spoken), each answered by its slot."""
    by_image = read_captions(dev)
    queries = []
    for show in shows:
        for slot in show.slots:
            fragment = f"{show.path.name}#t={slot.start + MARGIN:.3f},{slot.end - MARGIN:.3f}"
            queries.extend(EvalQuery(by_image[slot.photo][n], (fragment,)) for n in captions)
    return queries


def image_queries(dev: Path, shows: list[Slideshow]) -> list[tuple[Path, str]]:
    """(photo, its slot as a fragment) for every photo of every show."""
    return [
        (dev / "images" / slot.photo, f"{show.path.name}#t={slot.start + MARGIN:.3f},{slot.end - MARGIN:.3f}")
        for show in shows
        for slot in show.slots
    ]


def cut_precision_recall(found: list[float], truth: list[float], tolerance: float) -> tuple[float, float]:
    """Precision and recall of detected cut times against the true ones (each true cut matched at most once)."""
    unmatched = list(truth)
    hits = 0
    for time in found:
        near = [t for t in unmatched if abs(t - time) <= tolerance]
        if near:
            unmatched.remove(near[0])
            hits += 1
    precision = hits / len(found) if found else 1.0
    recall = hits / len(truth) if truth else 1.0
    return precision, recall
