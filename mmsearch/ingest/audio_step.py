"""The audio part of an ingest: hash recordings, transcribe new and changed ones (or read their subtitles),
commit their transcripts in small batches."""

from __future__ import annotations

import time

from mmsearch.errors import MmsearchError
from mmsearch.ingest.audio import TranscriberSource, read_transcript
from mmsearch.ingest.commit import AssetChange, BatchWriter
from mmsearch.ingest.hashed import FailFn, Fresh, hash_and_sort
from mmsearch.ingest.pipeline import batched
from mmsearch.ingest.report import IngestReport, ProgressFn
from mmsearch.ingest.scanner import ScannedFile
from mmsearch.ingest.texts import TRANSCRIPT_GROUP
from mmsearch.store.records import KnownFile
from mmsearch.store.repository import MetadataStore
from mmsearch.textitems import TextItem

AUDIO_BATCH = 8
"""Audio files per commit: transcription is slow, so a crash should lose little."""


class AudioStep:
    """Runs the audio part of an ingest plan against one store and batch writer."""

    def __init__(
        self,
        store: MetadataStore,
        writer: BatchWriter,
        report: IngestReport,
        transcriber: TranscriberSource | None,
        fail: FailFn,
        progress: ProgressFn,
    ) -> None:
        self.store, self.writer, self.report = store, writer, report
        self.transcriber, self.fail, self.progress = transcriber, fail, progress

    def run(self, files: list[ScannedFile], known: dict[str, KnownFile]) -> list[ScannedFile]:
        """Hash audio files; commit transcripts of new and changed ones; return those only to re-sync."""
        hashed = hash_and_sort(files, known, self.fail, self.progress)
        touch, resync = hashed.touch, hashed.resync
        self.store.touch_files(touch)
        self.report.skipped += len(touch) - len(resync)
        self._transcribe(hashed.fresh, known)
        return resync

    def _transcribe(self, files: list[Fresh], known: dict[str, KnownFile]) -> None:
        done = 0
        for batch in batched(files, AUDIO_BATCH):
            changes = []
            for entry in batch:
                file, probe = entry.file, entry.probe
                items = self.transcript(file, known)
                if items is not None:
                    changes.append(AssetChange(file, probe, texts={TRANSCRIPT_GROUP: items}))
                done += 1
                self.progress("transcribing", done, len(files))
            self.writer.commit(changes, known)

    def transcript(self, file: ScannedFile, known: dict[str, KnownFile]) -> list[TextItem] | None:
        started = time.perf_counter()
        try:
            result = read_transcript(file, self.transcriber)
        except MmsearchError as exc:
            self.fail(file.path, exc, known)
            return None
        if result.transcribed:
            self.report.count_transcription(time.perf_counter() - started, result.duration)
        return result.items
