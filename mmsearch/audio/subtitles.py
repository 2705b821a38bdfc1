"""Transcript sidecars of audio files: ``talk.mp3`` + ``talk.srt`` / ``talk.vtt`` / ``talk.txt``.

SubRip and WebVTT are parsed by ``webvtt-py``; cue text is cleaned of markup (``<i>``, ``<v Speaker>``,
``{\\an8}``, HTML entities) and whitespace. A ``.txt`` sidecar is the whole transcript, untimed.
"""

from __future__ import annotations

import codecs
import html
import io
import re
from collections.abc import Collection
from pathlib import Path

from mmsearch.errors import UnreadableMediaError
from mmsearch.textitems import Segment

TRANSCRIPT_SIDECAR_SUFFIXES = (".srt", ".vtt", ".txt")
_SOURCES = {".srt": "srt", ".vtt": "vtt", ".txt": "txt"}
# Sidecars larger than this are not transcripts; refuse rather than read them into memory.
MAX_SIDECAR_BYTES = 32 * 1024 * 1024
# Tried in order; cp1252 is what most non-UTF-8 subtitle files in the wild are written in.
_ENCODINGS = ("utf-8", "cp1252")
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_CUE_TAG = re.compile(r"<[^<>]*>")
_ASS_OVERRIDE = re.compile(r"\{\\[^{}]*\}")


def source_of(path: str) -> str:
    """The transcript source a sidecar path names: ``srt``, ``vtt`` or ``txt`` (by suffix, any case)."""
    suffix = Path(path).suffix.lower()
    try:
        return _SOURCES[suffix]
    except KeyError:
        raise UnreadableMediaError(
            f"{Path(path).name}: not a transcript sidecar (expected .srt, .vtt or .txt)"
        ) from None


def transcript_sidecar(audio_path: str, names_in_folder: Collection[str]) -> str | None:
    """The sidecar to use for ``audio_path``: same folder, same stem, ``.srt`` before ``.vtt`` before ``.txt``.

    ``names_in_folder`` are the file names (not paths) in the audio file's folder, so a scan lists each folder
    once. The stem matches exactly; the suffix in any case (``talk.SRT``). Returns the sidecar's path or None.
    """
    audio = Path(audio_path)
    stem = audio.stem
    by_suffix: dict[str, str] = {}
    for name in sorted(names_in_folder):  # sorted: the same choice whatever order the folder lists in
        candidate = Path(name)
        suffix = candidate.suffix.lower()
        if candidate.stem == stem and suffix in _SOURCES and name != audio.name:
            by_suffix.setdefault(suffix, name)
    for suffix in TRANSCRIPT_SIDECAR_SUFFIXES:
        if suffix in by_suffix:
            return str(audio.with_name(by_suffix[suffix]))
    return None


def read_transcript_sidecar(path: str) -> list[Segment]:
    """The segments of a ``.srt``, ``.vtt`` or ``.txt`` transcript, in order of start time.

    Times are seconds. Cues whose text is empty once cleaned are dropped; a ``.txt`` file is one untimed
    segment ``Segment(0.0, None, text)``. A file holding only whitespace (or a WebVTT header alone) gives ``[]``.
    Raises UnreadableMediaError with a one-line reason for a missing, undecodable or malformed file.
    """
    source = source_of(path)
    text = _read_text(path)
    if not text.strip():
        return []
    if source == "txt":
        return [Segment(0.0, None, clean)] if (clean := clean_cue_text(text)) else []
    captions = _parse_captions(path, text, source)
    segments = []
    for caption in captions:
        clean = clean_cue_text(caption.raw_text)
        if not clean:
            continue
        start = caption.start_time.in_milliseconds() / 1000
        end = max(caption.end_time.in_milliseconds() / 1000, start)
        segments.append(Segment(start, end, clean))
    segments.sort(key=lambda segment: segment.start)
    return segments


def clean_cue_text(text: str) -> str:
    """Cue text without markup (``<i>``, ``<v Bob>``, ``<00:01.000>``, ``{\\an8}``), entities decoded, one line."""
    text = _CUE_TAG.sub("", text)
    text = _ASS_OVERRIDE.sub("", text)
    return " ".join(html.unescape(text).split())


def _read_text(path: str) -> str:
    name = Path(path).name
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SIDECAR_BYTES + 1)
    except OSError as exc:
        raise UnreadableMediaError(f"cannot read transcript {name}: {exc.strerror or exc}") from exc
    if len(data) > MAX_SIDECAR_BYTES:
        raise UnreadableMediaError(f"transcript {name} is larger than {MAX_SIDECAR_BYTES // (1024 * 1024)} MiB")
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding)
            except UnicodeDecodeError as exc:
                raise UnreadableMediaError(f"transcript {name} is not valid {encoding} text ({exc.reason})") from exc
    if b"\x00" in data:
        raise UnreadableMediaError(f"transcript {name} is not a text file (binary data)")
    for encoding in _ENCODINGS:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise UnreadableMediaError(f"transcript {name} is in an unknown encoding (not UTF-8 or Windows-1252)")


def _parse_captions(path: str, text: str, source: str) -> list:
    """webvtt-py's captions of the decoded text (leading blank lines, which its SRT check rejects, removed)."""
    name = Path(path).name
    import webvtt
    from webvtt.errors import MalformedCaptionError, MalformedFileError

    try:
        captions = webvtt.from_buffer(io.StringIO(text.lstrip()), format=source).captions
    except (MalformedFileError, MalformedCaptionError) as exc:
        kind = "SubRip (.srt)" if source == "srt" else "WebVTT (.vtt)"
        raise UnreadableMediaError(f"transcript {name} is a malformed {kind} file ({exc})") from exc
    if source == "srt" and not captions:
        raise UnreadableMediaError(f"transcript {name} is a malformed SubRip (.srt) file (no cue with valid timings)")
    return captions
