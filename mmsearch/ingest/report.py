"""What an ingest run did, for people (summary line) and programs (``to_dict``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from mmsearch import reasons
from mmsearch.errors import ConfigError, MissingDependencyError, UnreadableMediaError
from mmsearch.pathnames import UnrepresentableNameError
from mmsearch.reasons import ERROR


def reason_class(error: BaseException) -> str:
    """The reason class (:data:`mmsearch.reasons.FAIL_REASONS`) of an error that stopped one file."""
    if isinstance(error, UnreadableMediaError):
        return error.reason
    if isinstance(error, UnrepresentableNameError):
        return reasons.BAD_NAME
    if isinstance(error, (ConfigError, MissingDependencyError)):
        return reasons.NO_TRANSCRIBER
    if isinstance(error, FileNotFoundError):
        return reasons.VANISHED
    if isinstance(error, OSError):
        return reasons.UNREADABLE
    return ERROR


ProgressFn = Callable[[str, int, int], None]
"""``progress(phase, done, total)``; phases are ``"hashing"``, ``"embedding"``, ``"transcribing"``,
``"captions"``, ``"manifest"`` and ``"video"``."""


@dataclass(frozen=True)
class FailedFile:
    """A file that should have been indexed but was not: ``reason`` says why, ``code`` is its class
    (:data:`mmsearch.reasons.FAIL_REASONS`)."""

    path: str
    reason: str
    code: str = ERROR


@dataclass(frozen=True)
class IgnoredFile:
    """A file the run passed over on purpose (a video, a FIFO, a link out of the folder): ``code`` is one of
    :data:`mmsearch.reasons.SKIP_REASONS`, ``detail`` a few words for people."""

    path: str
    code: str
    detail: str = ""


@dataclass(frozen=True)
class FileWarning:
    """A warning a decoder gave while reading a file that was still indexed (corrupt EXIF, ...)."""

    path: str
    message: str


SCHEMA_VERSION = 1
"""Of the ingest document (``mmsearch/schemas/ingest.json``)."""


@dataclass(frozen=True)
class FailureGroup:
    """Files that failed for one and the same cause (``reason`` text and ``code`` class), reported once."""

    reason: str
    code: str
    paths: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.paths)

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "code": self.code, "count": self.count, "paths": list(self.paths)}


@dataclass
class IngestReport:
    """Counts of an ingest run.

    ``embedded`` images went through the model; ``reused`` got a stored vector; ``resynced`` files kept their
    content but had their captions or transcript read again (a sidecar changed). ``texts_added`` and
    ``texts_removed`` count caption and transcript items by kind; ``texts_embedded`` texts went through the
    text tower (the rest reused stored vectors); ``transcribed`` audio files went through speech-to-text.
    """

    folder: str
    model: str = ""
    added: int = 0
    updated: int = 0
    removed: int = 0
    skipped: int = 0
    resynced: int = 0
    embedded: int = 0
    reused: int = 0
    transcribed: int = 0
    texts_embedded: int = 0
    texts_added: dict[str, int] = field(default_factory=dict)
    texts_removed: dict[str, int] = field(default_factory=dict)
    failed: list[FailedFile] = field(default_factory=list)
    ignored: list[IgnoredFile] = field(default_factory=list)
    """Files passed over on purpose, with their reason class (counted per class in ``ignored_by_reason``)."""
    file_warnings: list[FileWarning] = field(default_factory=list)
    """Decoder warnings, per file (shown by ``mmsearch -v ingest``; never printed while decoding)."""
    failed_before: int = 0
    """Files skipped because they failed in an earlier run and have not changed (``retry_failed`` retries them)."""
    warnings: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    embed_s: float = 0.0
    transcribe_s: float = 0.0
    audio_s: float = 0.0
    precision: dict[str, dict[str, Any]] = field(default_factory=dict)
    """What each model tower ran in, and why (``{"image": {"dtype": "bf16", "reason": ...}}``); empty when the
    model was not loaded."""
    batch_size: int = 0
    """Images per model call, and decoding threads, when images were embedded (0: none were)."""
    workers: int = 0
    # -- video (mmsearch.ingest.video) --
    videos: int = 0
    """Videos decoded for keyframes; ``video_s`` their seconds; ``keyframes`` the frames embedded."""
    video_s: float = 0.0
    keyframes: int = 0
    video_decode_s: float = 0.0
    """Wall seconds of the decoding pass (shots, quality, keyframe pictures), and of embedding the keyframes."""
    video_encode_s: float = 0.0
    video_wall_s: float = 0.0
    """Wall seconds of the whole video step (hashing, decoding, embedding, transcripts, commits)."""

    def count_transcription(self, seconds: float, audio_s: float | None) -> None:
        """One file went through speech-to-text: ``seconds`` of wall time for ``audio_s`` seconds of audio."""
        self.transcribed += 1
        self.transcribe_s += seconds
        self.audio_s += audio_s or 0.0

    @property
    def images_per_s(self) -> float:
        """Images embedded per second of the whole run."""
        return self.embedded / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def video_s_per_s(self) -> float:
        """Seconds of video processed per second of the video step's wall time."""
        return self.video_s / self.video_wall_s if self.video_wall_s > 0 else 0.0

    def ignored_by_reason(self) -> dict[str, int]:
        """How many files were passed over, per reason class, most frequent first."""
        return dict(Counter(item.code for item in self.ignored).most_common())

    def failure_groups(self) -> list[FailureGroup]:
        """The failures grouped by cause (same reason text and class), the largest group first: one cause
        repeated for many files (the speech model cannot load offline) is one entry with its files."""
        groups: dict[tuple[str, str], list[str]] = {}
        for failure in self.failed:
            groups.setdefault((failure.reason, failure.code), []).append(failure.path)
        ordered = sorted(groups.items(), key=lambda item: -len(item[1]))
        return [FailureGroup(reason, code, tuple(paths)) for (reason, code), paths in ordered]

    def audio_blocked(self) -> FailureGroup | None:
        """The cause that stopped every audio file needing speech-to-text, when not one got transcribed: a run
        whose whole audio side failed for one reason (no speech model offline) says so first."""
        if self.transcribed:
            return None
        blocked = [group for group in self.failure_groups() if group.code == reasons.NO_TRANSCRIBER]
        others = [f for f in self.failed if f.code == reasons.NO_TRANSCRIBER]
        return blocked[0] if len(blocked) == 1 and blocked[0].count == len(others) else None

    def to_dict(self) -> dict[str, Any]:
        """The ingest document (``mmsearch/schemas/ingest.json``): ``unchanged`` (the files that needed no
        work; the attribute ``skipped``), ``failed`` one entry per file and ``failure_groups`` one per cause."""
        data = {"schema_version": SCHEMA_VERSION, **asdict(self)}
        data["unchanged"] = data.pop("skipped")
        data["failed_count"] = len(self.failed)
        data["failure_groups"] = [group.to_dict() for group in self.failure_groups()]
        data["failed_by_reason"] = dict(Counter(failure.code for failure in self.failed))
        data["ignored_by_reason"] = self.ignored_by_reason()
        data["images_per_s"] = round(self.images_per_s, 2)
        data["video_s_per_s"] = round(self.video_s_per_s, 2)
        return data
