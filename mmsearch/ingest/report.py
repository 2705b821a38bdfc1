"""What an ingest run did, for people (summary line) and programs (``to_dict``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

ProgressFn = Callable[[str, int, int], None]
"""``progress(phase, done, total)``; phases are ``"hashing"``, ``"embedding"``, ``"transcribing"``,
``"captions"`` and ``"manifest"``."""


@dataclass(frozen=True)
class FailedFile:
    path: str
    reason: str


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

    @property
    def images_per_s(self) -> float:
        """Images embedded per second of the whole run."""
        return self.embedded / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["failed_count"] = len(self.failed)
        data["images_per_s"] = round(self.images_per_s, 2)
        return data
