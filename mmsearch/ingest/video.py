"""The video step of an ingest: hash, reuse (unchanged, renamed or copied videos), one decoding pass for shots
and keyframes, keyframes embedded with the image tower, the transcript (sidecar, subtitle stream, speech), and a
commit every few videos. The next video is decoded on a worker thread while the model encodes this one."""

from __future__ import annotations

import hashlib
import time

import numpy as np

from mmsearch.errors import MmsearchError, UnreadableMediaError
from mmsearch.ingest.audio import TranscriberSource
from mmsearch.ingest.commit import AssetChange, BatchWriter, ModelSession, Probe
from mmsearch.ingest.hashed import FailFn, Fresh, hash_and_sort
from mmsearch.ingest.pipeline import batched, map_ahead
from mmsearch.ingest.report import IngestReport, ProgressFn
from mmsearch.ingest.scanner import ScannedFile
from mmsearch.ingest.texts import TRANSCRIPT_GROUP
from mmsearch.kinds import FRAME, TRANSCRIPT, VIDEO
from mmsearch.store.records import KnownFile
from mmsearch.store.repository import MetadataStore
from mmsearch.store.text_items import TextRecord
from mmsearch.store.video import items_of_content
from mmsearch.video.extract import ExtractSettings, VideoFrames, extract_keyframes
from mmsearch.video.probe import open_video, probe_container
from mmsearch.video.speech import SPEECH_SOURCE, STREAM_SOURCE, video_transcript

FRAMES_GROUP = "frames"
VIDEO_BATCH = 4
"""Videos per commit: each is slow to process, so a crash should lose little."""


def frame_hash(video_hash: str, time_s: float) -> str:
    """The content key of a keyframe's vector: the video's bytes and the frame's time (never equal to a file or
    text hash: the input is prefixed)."""
    return hashlib.blake2b(f"frame\0{video_hash}\0{time_s:.3f}".encode(), digest_size=32).hexdigest()


def keyframe_records(video_hash: str, frames: VideoFrames) -> list[TextRecord]:
    """One item per keyframe: its shot's span as start/end, its own time as ``at``."""
    return [
        TextRecord(
            FRAME,
            FRAMES_GROUP,
            "keyframe",
            None,
            i,
            "",
            k.shot_start,
            k.shot_end,
            frame_hash(video_hash, k.time),
            k.time,
        )
        for i, k in enumerate(frames.keyframes)
    ]


class VideoStep:
    """Runs the video part of an ingest plan against one store and model session."""

    def __init__(
        self,
        store: MetadataStore,
        models: ModelSession,
        writer: BatchWriter,
        report: IngestReport,
        settings: ExtractSettings,
        transcriber: TranscriberSource | None,
        fail: FailFn,
        progress: ProgressFn,
    ) -> None:
        self.store, self.models, self.writer, self.report = store, models, writer, report
        self.settings, self.transcriber, self.fail, self.progress = settings, transcriber, fail, progress
        self._departed: dict[str, dict[str, list[TextRecord]]] = {}

    def remember(self, deleted: list[KnownFile]) -> None:
        """Keep the items of videos about to be removed (gone from disk), so that a video renamed in the same
        run takes them over (call before the removal)."""
        for file in deleted:
            if file.kind == VIDEO and file.content_hash not in self._departed:
                groups = items_of_content(self.store, file.content_hash, VIDEO)
                if groups:
                    self._departed[file.content_hash] = groups

    def run(self, files: list[ScannedFile], known: dict[str, KnownFile]) -> list[ScannedFile]:
        """Ingest new and changed videos; return the unchanged ones whose sidecars changed (to re-sync)."""
        if not files:
            return []
        started = time.perf_counter()
        hashed = hash_and_sort(files, known, self.fail, self.progress)
        touch, resync, fresh = hashed.touch, hashed.resync, hashed.fresh
        self.store.touch_files(touch)
        self.report.skipped += len(touch) - len(resync)
        self._extract(self._reuse(fresh, known), known)
        self.report.video_wall_s += time.perf_counter() - started
        return resync

    def resync(self, files: list[ScannedFile], known: dict[str, KnownFile]) -> None:
        """Videos whose bytes did not change but whose subtitle sidecar did: read the transcript again."""
        for batch in batched(files, VIDEO_BATCH):
            changes = []
            for file in batch:
                previous = known[file.path]
                probe = Probe(previous.content_hash, previous.width, previous.height, taken_at=previous.taken_at)
                items = self._transcript(file, known)
                if items is not None:
                    changes.append(AssetChange(file, probe, texts={TRANSCRIPT_GROUP: items}))
            self.writer.commit(changes, known)

    # -- reuse ----------------------------------------------------------------------------
    def _reuse(self, fresh: list[Fresh], known: dict[str, KnownFile]) -> list[Fresh]:
        """Videos whose bytes are stored under another path (renamed, copied) take its keyframes, and its transcript
        when it came from inside the video; the rest must be extracted."""
        to_extract: list[Fresh] = []
        changes: list[AssetChange] = []
        for entry in fresh:
            groups = self._departed.get(entry.probe.content_hash) or items_of_content(
                self.store, entry.probe.content_hash, VIDEO
            )
            if groups is None or FRAMES_GROUP not in groups:
                to_extract.append(entry)
                continue
            items: dict[str, list[TextRecord]] = {FRAMES_GROUP: groups[FRAMES_GROUP]}
            texts = {}
            transcript = groups.get(TRANSCRIPT_GROUP, [])
            if not entry.file.sidecars and all(r.source in (STREAM_SOURCE, SPEECH_SOURCE) for r in transcript):
                items[TRANSCRIPT_GROUP] = transcript
            else:
                read = self._transcript(entry.file, known)
                if read is None:
                    continue
                texts[TRANSCRIPT_GROUP] = read
            stored = known.get(entry.file.path)
            probe = entry.probe if stored is None else Probe(entry.probe.content_hash)
            changes.append(AssetChange(entry.file, probe, texts=texts, items=items))
        for batch in batched(changes, 256):
            self.writer.commit(batch, known)
            self.report.reused += len(batch)
        return to_extract

    # -- extraction -----------------------------------------------------------------------
    def _extract(self, fresh: list[Fresh], known: dict[str, KnownFile]) -> None:
        if not fresh:
            return
        encoder = self.models.encoder()
        outcomes = map_ahead(lambda entry: extract_keyframes(entry.file.path, self.settings), fresh, 1, 2)
        done = 0
        for batch in batched(outcomes, VIDEO_BATCH):
            changes = []
            for outcome in batch:
                entry = outcome.item
                done += 1
                self.progress("video", done, len(fresh))
                if outcome.error is not None or outcome.value is None:
                    self.fail(entry.file.path, outcome.error or UnreadableMediaError("nothing decoded"), known)
                    continue
                change = self._change(entry, outcome.value, encoder, known)
                if change is not None:
                    changes.append(change)
            self.writer.commit(changes, known)

    def _change(self, entry: Fresh, frames: VideoFrames, encoder, known: dict[str, KnownFile]) -> AssetChange | None:
        started = time.perf_counter()
        records = keyframe_records(entry.probe.content_hash, frames)
        pictures = [k.image for k in frames.keyframes]
        vectors = encoder.encode_images(pictures) if pictures else np.zeros((0, 1), dtype=np.float32)
        self.report.video_encode_s += time.perf_counter() - started
        transcript = self._transcript(entry.file, known, frames.info.has_audio)
        if transcript is None:
            return None
        width, height = frames.display_size
        probe = Probe(entry.probe.content_hash, width, height, taken_at=frames.info.created_at)
        self.report.videos += 1
        self.report.video_s += frames.info.duration
        self.report.video_decode_s += frames.decode_s
        self.report.keyframes += len(records)
        return AssetChange(
            entry.file,
            probe,
            texts={TRANSCRIPT_GROUP: transcript},
            items={FRAMES_GROUP: records},
            item_vectors={r.content_hash: v for r, v in zip(records, vectors, strict=True)},
        )

    def _transcript(self, file: ScannedFile, known: dict[str, KnownFile], has_audio: bool | None = None):
        """The transcript items (possibly none), or None when the file failed (reported)."""
        started = time.perf_counter()
        try:
            if has_audio is None:
                with open_video(file.path) as container:
                    has_audio = probe_container(container).has_audio
            sidecar = file.sidecars[0].path if file.sidecars else None
            result = video_transcript(file.path, sidecar, has_audio, self.transcriber)
        except MmsearchError as exc:
            self.fail(file.path, exc, known)
            return None
        if result.transcribed:
            self.report.count_transcription(time.perf_counter() - started, result.audio_s)
        return [item for item in result.items if item.kind == TRANSCRIPT]
