"""Transcripts of audio files: a sidecar (.srt, .vtt, .txt) when there is one, else speech-to-text."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from mmsearch.audio.probe import audio_duration
from mmsearch.audio.subtitles import read_transcript_sidecar, source_of
from mmsearch.audio.transcribe import Transcriber
from mmsearch.errors import ConfigError, MissingDependencyError, UnreadableMediaError
from mmsearch.ingest.scanner import ScannedFile
from mmsearch.kinds import TRANSCRIPT
from mmsearch.reasons import BAD_SIDECAR, EMPTY_FILE, UNREADABLE, VANISHED
from mmsearch.textitems import TextItem

TranscriberSource = Callable[[], Transcriber]
"""The speech-to-text model, loaded when first called (``Models.speech_to_text``)."""


@dataclass(frozen=True)
class TranscriptResult:
    """The transcript items of one audio file; ``transcribed`` when speech-to-text produced them."""

    items: list[TextItem]
    transcribed: bool
    duration: float | None = None


def hash_file(path: str, chunk_size: int = 1 << 20) -> str:
    """Hex BLAKE2b-256 of a file's bytes, read in chunks (audio files can be large); a 0-byte file is an error."""
    digest = hashlib.blake2b(digest_size=32)
    size = 0
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(chunk_size):
                digest.update(chunk)
                size += len(chunk)
    except FileNotFoundError:
        raise UnreadableMediaError("cannot read file: it is gone (deleted during the run?)", VANISHED) from None
    except OSError as exc:
        raise UnreadableMediaError(f"cannot read file: {exc.strerror or exc}", UNREADABLE) from exc
    if size == 0:
        raise UnreadableMediaError("the file is empty (0 bytes)", EMPTY_FILE)
    return digest.hexdigest()


def read_transcript(file: ScannedFile, transcriber: TranscriberSource | None) -> TranscriptResult:
    """The timed transcript segments of an audio file, from its sidecar or from speech-to-text."""
    if file.sidecars:
        duration = _checked_duration(file.path)
        path = file.sidecars[0].path
        source = source_of(path)
        try:
            segments = read_transcript_sidecar(path)
        except UnreadableMediaError as exc:
            raise UnreadableMediaError(str(exc), BAD_SIDECAR) from exc
        items = [TextItem(TRANSCRIPT, source, s.text, path, s.start, s.end) for s in segments]
        return TranscriptResult(items, transcribed=False, duration=duration)
    if transcriber is None:
        raise ConfigError("no speech-to-text model is configured and the file has no .srt/.vtt/.txt transcript")
    transcript = transcriber().transcribe(file.path)
    items = [TextItem(TRANSCRIPT, "speech", s.text, None, s.start, s.end) for s in transcript.segments]
    return TranscriptResult(items, transcribed=True, duration=transcript.duration)


def _checked_duration(path: str) -> float | None:
    """The audio's duration, read to make sure a file indexed by its sidecar is audio at all (a corrupt file is
    an error, even with a good transcript next to it); None where PyAV is not installed to check."""
    try:
        return audio_duration(path)
    except MissingDependencyError:
        return None
