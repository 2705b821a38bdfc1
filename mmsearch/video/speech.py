"""What is said in a video: subtitles next to it (``.srt``/``.vtt``/``.txt``) first, then a text subtitle stream
inside the container, else speech-to-text on its audio track. A video without an audio track (or with silence)
simply has no transcript."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mmsearch.audio.probe import describe_av_error, import_av
from mmsearch.audio.subtitles import clean_cue_text, read_transcript_sidecar, source_of
from mmsearch.audio.transcribe import EMPTY_AUDIO, NO_SPEECH, Transcriber
from mmsearch.errors import ConfigError, UnreadableMediaError
from mmsearch.kinds import TRANSCRIPT
from mmsearch.textitems import Segment, TextItem
from mmsearch.video.probe import open_video

STREAM_SOURCE = "stream"
"""The ``source`` of transcript items read from a subtitle stream inside the video."""
SPEECH_SOURCE = "speech"


@dataclass(frozen=True)
class VideoTranscript:
    """A video's timed transcript items; ``transcribed``: speech-to-text made them (seconds of audio heard)."""

    items: list[TextItem]
    transcribed: bool = False
    audio_s: float = 0.0


def subtitle_stream_segments(path: str) -> list[Segment]:
    """The cues of the first text subtitle stream in the container (SubRip, WebVTT, mov_text, ASS), in time
    order; empty when there is none (bitmap subtitles such as DVD or PGS carry no text)."""
    av = import_av()
    with open_video(path) as container:
        for stream in container.streams.subtitles:
            try:
                segments = _stream_cues(container, stream)
            except av.error.FFmpegError as exc:
                raise UnreadableMediaError(f"cannot read subtitle stream: {describe_av_error(exc)}") from exc
            if segments:
                return segments
    return []


def _stream_cues(container: Any, stream: Any) -> list[Segment]:
    segments = []
    for packet in container.demux(stream):
        if packet.pts is None or packet.time_base is None:
            continue
        start = float(packet.pts * packet.time_base)
        end = start + float(packet.duration * packet.time_base) if packet.duration else None
        texts = [ass_dialogue_text(_dialogue(subtitle)) for subtitle in packet.decode()]
        text = " ".join(t for t in texts if t)
        if text:
            segments.append(Segment(start, end, text))
    segments.sort(key=lambda s: s.start)
    return segments


def _dialogue(subtitle: Any) -> bytes:
    """The dialogue of one decoded subtitle rectangle; bitmap ones have none."""
    if subtitle.type != b"ass" and subtitle.type != "ass":
        return b""
    return bytes(subtitle.dialogue)


def ass_dialogue_text(dialogue: bytes) -> str:
    """Plain text of an ASS dialogue field (what FFmpeg decodes every text subtitle to): override tags such as
    ``{\\i1}`` removed, ``\\N`` line breaks as spaces."""
    text = dialogue.decode("utf-8", errors="replace").replace("\\N", " ").replace("\\n", " ").replace("\\h", " ")
    return clean_cue_text(text)


def video_transcript(
    path: str, sidecar: str | None, has_audio: bool, transcriber: Callable[[], Transcriber] | None
) -> VideoTranscript:
    """The transcript items of a video, from the first source that has any (see the module docstring)."""
    if sidecar is not None:
        items = [
            TextItem(TRANSCRIPT, source_of(sidecar), s.text, sidecar, s.start, s.end)
            for s in read_transcript_sidecar(sidecar)
        ]
        return VideoTranscript(items)
    cues = subtitle_stream_segments(path)
    if cues:
        return VideoTranscript([TextItem(TRANSCRIPT, STREAM_SOURCE, s.text, None, s.start, s.end) for s in cues])
    if not has_audio:
        return VideoTranscript([])
    if transcriber is None:
        raise ConfigError("no speech-to-text model is configured and the video has no subtitles")
    try:
        transcript = transcriber().transcribe(path)
    except UnreadableMediaError as exc:
        if str(exc) in (NO_SPEECH, EMPTY_AUDIO):
            return VideoTranscript([])
        raise
    items = [TextItem(TRANSCRIPT, SPEECH_SOURCE, s.text, None, s.start, s.end) for s in transcript.segments]
    return VideoTranscript(items, transcribed=True, audio_s=transcript.duration)
