"""Audio files: which suffixes count as audio, and their duration (PyAV, imported lazily)."""

from __future__ import annotations

from typing import Any

from mmsearch.errors import MissingDependencyError, UnreadableMediaError
from mmsearch.hints import install_hint

AUDIO_EXTENSIONS = frozenset({".wav", ".mp3", ".flac", ".m4a", ".ogg", ".opus"})


def import_av() -> Any:
    """The ``av`` module, or MissingDependencyError with the install hint."""
    try:
        import av
    except ImportError as exc:
        raise MissingDependencyError(f"reading audio needs PyAV: {install_hint('audio')} ({exc})") from exc
    return av


def audio_duration(path: str) -> float:
    """Seconds of audio in the file's first audio stream.

    From the container's header when it records a duration; otherwise (raw streams, some MP3 and Ogg files) by
    summing the packets' durations, which reads the file but decodes nothing. A readable file with no audio frames
    gives 0.0. Raises UnreadableMediaError for a missing file, one FFmpeg cannot read, or one with no audio stream.
    """
    av = import_av()
    try:
        with av.open(path, mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise UnreadableMediaError("no audio stream")
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return max(float(stream.duration * stream.time_base), 0.0)
            if container.duration is not None:
                return max(container.duration / av.time_base, 0.0)
            return _packet_seconds(container, stream)
    except av.error.FFmpegError as exc:
        raise UnreadableMediaError(f"cannot read audio: {describe_av_error(exc)}") from exc
    except OSError as exc:
        raise UnreadableMediaError(f"cannot read audio: {exc.strerror or exc}") from exc


def _packet_seconds(container: Any, stream: Any) -> float:
    total = 0
    for packet in container.demux(stream):
        if packet.duration:
            total += packet.duration
    return float(total * stream.time_base) if stream.time_base is not None else 0.0


def describe_av_error(exc: Exception) -> str:
    """A one-line reason from a PyAV error, without the errno and the repeated file name."""
    reason = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(reason).split()) or type(exc).__name__
