"""Carry out an ingest plan: hash, reuse stored vectors, embed images, read captions and transcripts,
commit batch by batch."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from mmsearch.captions.manifest import CaptionManifest
from mmsearch.captions.sidecar import read_caption_sidecar
from mmsearch.config import default_batch_size, default_workers
from mmsearch.encoders.base import Encoder
from mmsearch.errors import MmsearchError, UnreadableMediaError
from mmsearch.imageio import reused_pixel_blocks
from mmsearch.ingest.audio import TranscriberSource
from mmsearch.ingest.audio_step import AudioStep
from mmsearch.ingest.commit import AssetChange, BatchWriter, ModelSession, Probe
from mmsearch.ingest.decodewarnings import collecting, routed
from mmsearch.ingest.encoding import COMMIT_IMAGES, EncodeAndWrite
from mmsearch.ingest.pipeline import Outcome, balanced_size, batched, map_ahead
from mmsearch.ingest.plan import IngestPlan
from mmsearch.ingest.reading import MAX_IMAGE_FILE_BYTES, PreparedImage, file_signature, prepare_file, read_probe
from mmsearch.ingest.report import FailedFile, FileWarning, IngestReport, ProgressFn, reason_class
from mmsearch.ingest.scanner import ScannedFile
from mmsearch.ingest.texts import EMBEDDED_GROUP, SIDECAR_GROUP, TRANSCRIPT_GROUP, manifest_group
from mmsearch.ingest.video import VideoStep
from mmsearch.kinds import AUDIO, IMAGE, VIDEO
from mmsearch.reasons import BAD_SIDECAR
from mmsearch.store.records import KnownFile
from mmsearch.store.repository import MetadataStore
from mmsearch.textitems import TextItem
from mmsearch.video.extract import ExtractSettings

if TYPE_CHECKING:
    from mmsearch.ingest.ray_executor import RayExecutor

__all__ = ["IngestOptions", "IngestRun", "ModelSession", "read_probe"]

T = TypeVar("T")

PROGRESS_STEP = 16
"""Images between two "embedding" progress calls (an encoder batch can be two photos)."""


@dataclass(frozen=True)
class IngestOptions:
    batch_size: int | None = None
    """Images per model call; None: the encoder's measured ``batch_size``, else ``default_batch_size`` of its
    device."""
    workers: int | None = None
    """Decoding threads; None: ``default_workers`` of the encoder's device."""
    max_pixels: int = 89_478_485
    encode_streams: int = 0
    """Batches encoded at once (0: the encoder's choice, see ``parallel_batches``)."""
    max_file_bytes: int = MAX_IMAGE_FILE_BYTES
    """The largest image file read (each is read whole, once, to be hashed and decoded)."""
    video: ExtractSettings = field(default_factory=ExtractSettings)
    """Shot detection and keyframe selection for videos."""
    executor: RayExecutor | None = None
    """Decode and encode on a Ray cluster instead of local threads (``mmsearch.ingest.ray_executor``)."""


def parallel_batches(encoder: Encoder, requested: int = 0) -> AbstractContextManager[int]:
    """The encoder's :meth:`parallel_batches` (one batch at a time unless it says otherwise)."""
    return encoder.parallel_batches(requested)


class IngestRun:
    """One pass over a plan. Every database write is one batch; the indexes mirror each one."""

    def __init__(
        self,
        store: MetadataStore,
        models: ModelSession,
        options: IngestOptions,
        report: IngestReport,
        progress: ProgressFn | None = None,
        transcriber: TranscriberSource | None = None,
        manifests: Sequence[CaptionManifest] = (),
    ) -> None:
        self.store = store
        self.models = models
        self.options = options
        self.report = report
        self.progress = progress or (lambda phase, done, total: None)
        self.transcriber = transcriber
        self.manifests = manifests
        self.writer = BatchWriter(store, models, report)
        self._failed_known: list[KnownFile] = []
        self._warned: dict[str, dict[str, None]] = {}
        """Decoder warnings per file path (an ordered set of messages), filled by the decoding threads."""
        self.unreadable: set[str] = set()
        """Paths that failed because of their own content (see ``mmsearch.ingest.failure_memory``)."""
        self.audio = AudioStep(store, self.writer, report, transcriber, self._fail, self.progress)
        self.videos = VideoStep(
            store, models, self.writer, report, options.video, transcriber, self._fail, self.progress
        )

    def execute(self, plan: IngestPlan, known: dict[str, KnownFile], scanned: Sequence[ScannedFile] = ()) -> None:
        """Remove, check, reuse, embed, transcribe, re-sync, in that order; indexes are saved even on failure.
        Decoder warnings are attached to their files in the report, never printed."""
        try:
            with routed():
                self._execute(plan, known, scanned)
        finally:
            self.report.file_warnings.extend(
                FileWarning(path, message) for path, messages in self._warned.items() for message in messages
            )

    def _execute(self, plan: IngestPlan, known: dict[str, KnownFile], scanned: Sequence[ScannedFile]) -> None:
        try:
            self.report.skipped += len(plan.unchanged)
            self.videos.remember(plan.deleted)
            self._remove(plan.deleted)
            images = [file for file in plan.to_check if file.kind == IMAGE]
            sounds = [file for file in plan.to_check if file.kind == AUDIO]
            to_probe, unprobed = self._needing_probe(images, known)
            to_embed, resync = self._commit_known_images(self._probe_images(to_probe, known), known)
            self._embed(unprobed + to_embed, known)
            resync += self.audio.run(sounds, known)
            resync += self.videos.run([file for file in plan.to_check if file.kind == VIDEO], known)
            self._resync([file for file in plan.resync + resync if file.kind != VIDEO], known)
            self.videos.resync([file for file in plan.resync + resync if file.kind == VIDEO], known)
            self._apply_manifests([file for file in scanned if file.kind == IMAGE])
            self._remove(self._failed_known, count=False)
            if self.models.model_id is not None:
                self.store.collect_garbage(self.models.model_id)
        finally:
            self.models.save()

    # -- removal --------------------------------------------------------------------------
    def _remove(self, files: Sequence[KnownFile], count: bool = True) -> None:
        if not files:
            return
        written = self.store.delete_files([file.id for file in files])
        self.writer.keyword_changes.record(written)
        ids = np.array([file.id for file in files], dtype=np.int64)
        if self.models.model_id is not None:
            for collection, generation in written.generations.items():
                removed = ids if collection == IMAGE else np.array(written.removed_texts.get(collection, []))
                self.models.index(collection).apply(generation, remove_ids=removed.astype(np.int64))
        if count:
            self.report.removed += len(files)

    def _fail(self, path: str, error: BaseException, known: dict[str, KnownFile]) -> None:
        """Report a bad file; a known file that no longer reads must not keep answering queries."""
        reason = str(error) if isinstance(error, MmsearchError) else f"{type(error).__name__}: {error}"
        self.report.failed.append(FailedFile(path, reason, reason_class(error)))
        if isinstance(error, UnreadableMediaError):  # the file's own fault, not the set-up's: worth remembering
            self.unreadable.add(path)
        if path in known:
            self._failed_known.append(known[path])

    # -- images ---------------------------------------------------------------------------
    def _needing_probe(
        self, files: list[ScannedFile], known: dict[str, KnownFile]
    ) -> tuple[list[ScannedFile], list[ScannedFile]]:
        """(to probe, to embed straight away). New files need no probe where no model was ever adopted: there are
        no stored vectors to reuse, so they all get embedded (which hashes them anyway)."""
        if self.models.model_id is not None:
            return files, []
        return [f for f in files if f.path in known], [f for f in files if f.path not in known]

    def _probe_images(self, files: list[ScannedFile], known: dict[str, KnownFile]) -> list[tuple[ScannedFile, Probe]]:
        """Hash and read the header of each file: changed bytes or not, and stored vectors to reuse."""
        probed: list[tuple[ScannedFile, Probe]] = []
        workers = self.options.workers or default_workers("cpu")
        outcomes = map_ahead(lambda f: self._decoding(f.path, read_probe, f.path), files, workers, 4 * workers)
        for done, outcome in enumerate(outcomes, 1):
            if outcome.error is None:
                probed.append((outcome.item, outcome.result))
            else:
                self._fail(outcome.item.path, outcome.error, known)
            self.progress("hashing", done, len(files))
        return probed

    def _commit_known_images(
        self, probed: list[tuple[ScannedFile, Probe]], known: dict[str, KnownFile]
    ) -> tuple[list[ScannedFile], list[ScannedFile]]:
        """Touch files whose bytes did not change (and whose vector is stored), reuse vectors of known content; return
        (to embed, to re-sync)."""
        touch: list[tuple[int, int, int]] = []
        resync: list[ScannedFile] = []
        reuse: list[tuple[ScannedFile, Probe]] = []
        to_embed: list[ScannedFile] = []
        have: set[str] = set()
        if self.models.model_id is not None:
            have = self.store.hashes_with_vectors(self.models.model_id, [probe.content_hash for _, probe in probed])
        vectors_known = self.models.model_id is not None
        for file, probe in probed:
            previous = known.get(file.path)
            lost = vectors_known and probe.content_hash not in have  # its vector is gone (`check --repair`)
            if previous is not None and previous.content_hash == probe.content_hash and not lost:
                touch.append((previous.id, file.size, file.mtime_ns))
                if previous.sidecar_sig != file.sidecar_sig:
                    resync.append(file)
            elif probe.content_hash in have:
                reuse.append((file, probe))
            else:
                to_embed.append(file)
        self.store.touch_files(touch)
        self.report.skipped += len(touch) - len(resync)
        for batch in batched(reuse, 512):
            vectors = self.store.vectors_for_hashes(self.models.ensure_model(), [p.content_hash for _, p in batch])
            changes = [
                AssetChange(file, probe, vectors[probe.content_hash], False, self._image_texts(file, probe, known))
                for file, probe in batch
            ]
            self.writer.commit(changes, known)
            self.report.reused += len(batch)
        return to_embed, resync

    def _embed(self, files: list[ScannedFile], known: dict[str, KnownFile]) -> None:
        if not files:
            return
        if self.options.executor is not None:
            self._embed_remote(self.options.executor, files, known)
            return
        encoder = self.models.encoder()
        device = str(encoder.device)
        workers = self.options.workers or default_workers(device)
        started = time.perf_counter()
        with (
            parallel_batches(encoder, self.options.encode_streams) as streams,
            ThreadPoolExecutor(max_workers=streams, thread_name_prefix="mmsearch-encode") as encoders,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmsearch-commit") as committer,
            reused_pixel_blocks(4 * workers),  # the decoders' images: a few live per thread
        ):
            most = self.options.batch_size or encoder.batch_size or default_batch_size(device)
            self.report.batch_size, self.report.workers = most, workers
            size = balanced_size(len(files), most, streams)  # the last round keeps every stream busy
            flow: EncodeAndWrite[tuple[ScannedFile, PreparedImage], AssetChange] = EncodeAndWrite(
                lambda ready: encoder.encode_prepared([image.tensor for _, image in ready]),
                lambda ready, vectors: self._embedded_changes(ready, vectors, known),
                lambda changes: self._commit_embedded(changes, known),
                (encoders, committer),
                depth=2 * streams,  # each encoder thread finds its next batch queued
                commit_size=self.options.batch_size or max(size, COMMIT_IMAGES),  # a given size: write each batch
            )
            window = (2 * streams + 1) * size + 4 * workers
            outcomes = map_ahead(lambda f: self._decoding(f.path, self._prepare, encoder, f), files, workers, window)
            try:
                self._feed(flow, batched(outcomes, size), len(files), known)
                flow.finish()
            except BaseException:
                flow.salvage()
                raise
            finally:
                self.report.embedded += flow.written
        self.report.embed_s += time.perf_counter() - started

    def _feed(
        self,
        flow: EncodeAndWrite[tuple[ScannedFile, PreparedImage], AssetChange],
        batches: Iterable[list[Outcome[ScannedFile, PreparedImage]]],
        total: int,
        known: dict[str, KnownFile],
    ) -> None:
        """Hand each batch's decoded images to ``flow``; a file that failed to decode is reported, not encoded."""
        done = reported = 0
        for batch in batches:
            ready: list[tuple[ScannedFile, PreparedImage]] = []
            for outcome in batch:
                if outcome.error is None:
                    ready.append((outcome.item, outcome.result))
                else:
                    self._fail(outcome.item.path, outcome.error, known)
            flow.add(ready)
            done += len(batch)
            if done - reported >= PROGRESS_STEP or done == total:
                self.progress("embedding", done, total)
                reported = done

    def _embed_remote(self, executor: RayExecutor, files: list[ScannedFile], known: dict[str, KnownFile]) -> None:
        """Decode and encode on the cluster; each batch comes back in order and is committed here, on the commit
        thread, as the local path does."""
        encoder = self.models.encoder()  # the model is adopted (identity checked) on the driver
        size = self.options.batch_size or default_batch_size(executor.device)
        self.report.batch_size, self.report.workers = size, self.options.workers or default_workers(executor.device)
        min_size = encoder.min_decode_size
        with (
            executor.session() as session,  # the actors load their models first, as the local path does above
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmsearch-commit") as committer,
        ):
            done, started = 0, time.perf_counter()
            committing: Future[int] | None = None
            for batch, result in session.embed(files, size, self.options.max_pixels, min_size):
                for path, reason in result.failed:
                    self._fail(path, UnreadableMediaError(reason), known)
                by_path = {file.path: file for file in batch}
                vectors = result.vectors if result.vectors is not None else np.zeros((0, 0), dtype=np.float32)
                changes = [
                    self._embedded_change(by_path[path], probe, vector, known)
                    for (path, probe), vector in zip(result.encoded, vectors, strict=True)
                ]
                self._wait_for(committing)
                committing = committer.submit(self._commit_embedded, changes, known)
                done += len(batch)
                self.progress("embedding", done, len(files))
            self._wait_for(committing)
            self.report.embed_s += time.perf_counter() - started

    def _embedded_changes(
        self, ready: list[tuple[ScannedFile, PreparedImage]], vectors: np.ndarray, known: dict[str, KnownFile]
    ) -> list[AssetChange]:
        return [
            self._embedded_change(file, prepared.probe, vector, known)
            for (file, prepared), vector in zip(ready, vectors, strict=True)
        ]

    def _embedded_change(
        self, file: ScannedFile, probe: Probe, vector: np.ndarray, known: dict[str, KnownFile]
    ) -> AssetChange:
        """A newly embedded image (locally or on the cluster), with its captions."""
        return AssetChange(file, probe, vector, True, self._image_texts(file, probe, known))

    def _commit_embedded(self, changes: list[AssetChange], known: dict[str, KnownFile]) -> int:
        """Runs on the commit thread, while the encoder works on the next batches."""
        self.writer.commit(changes, known)
        return len(changes)

    def _wait_for(self, committing: Future[int] | None) -> None:
        if committing is not None:
            self.report.embedded += committing.result()

    def _decoding(self, path: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``, in a decoding thread, with the decoder warnings it raises kept for ``path``."""
        sink: list[str] = []
        try:
            with collecting(sink):
                return fn(*args)
        finally:
            if sink:  # one thread per path at a time: the dict of that path is only touched here
                self._warned.setdefault(path, {}).update(dict.fromkeys(sink))

    def _prepare(self, encoder: Encoder, file: ScannedFile) -> PreparedImage:
        return prepare_file(encoder, file.path, self.options.max_file_bytes, self.options.max_pixels)

    def _image_texts(self, file: ScannedFile, probe: Probe, known: dict[str, KnownFile]) -> dict[str, list[TextItem]]:
        groups = {SIDECAR_GROUP: self._sidecar_captions(file, known)}
        if probe.embedded is not None:
            groups[EMBEDDED_GROUP] = list(probe.embedded)
        return groups

    def _sidecar_captions(self, file: ScannedFile, known: dict[str, KnownFile]) -> list[TextItem]:
        items: list[TextItem] = []
        for sidecar in file.sidecars:
            try:
                items.extend(read_caption_sidecar(sidecar.path))
            except MmsearchError as exc:
                self.report.failed.append(FailedFile(sidecar.path, str(exc), BAD_SIDECAR))
        return items

    # -- texts only -----------------------------------------------------------------------
    def _resync(self, files: list[ScannedFile], known: dict[str, KnownFile]) -> None:
        """Files whose content is unchanged but whose sidecars changed: read their texts again."""
        size = self.options.batch_size or default_batch_size("cpu")
        for done, batch in enumerate(batched(files, size), 1):
            changes = []
            for file in batch:
                previous = known[file.path]
                probe = Probe(previous.content_hash, previous.width, previous.height, taken_at=previous.taken_at)
                if file.kind == IMAGE:
                    changes.append(AssetChange(file, probe, texts={SIDECAR_GROUP: self._sidecar_captions(file, known)}))
                else:
                    items = self.audio.transcript(file, known)
                    if items is not None:
                        changes.append(AssetChange(file, probe, texts={TRANSCRIPT_GROUP: items}))
            self.writer.commit(changes, known)
            self.progress("captions", min(done * size, len(files)), len(files))

    def _apply_manifests(self, images: Sequence[ScannedFile]) -> None:
        """Set every image's captions from each manifest (an image a manifest no longer lists loses them)."""
        failed = {failure.path for failure in self.report.failed}
        every = [file.path for file in images if file.path not in failed]
        for manifest in self.manifests:
            group = manifest_group(manifest.path)
            key = f"manifest_signature:{manifest.path}"
            signature = file_signature(manifest.path)
            applied = self.store.setting(key) == signature
            # A manifest applied before unchanged only needs setting on the files this run wrote.
            paths = [path for path in every if path in self.writer.committed] if applied else every
            for done, batch in enumerate(batched(paths, 512), 1):
                self.writer.commit_texts({path: {group: manifest.captions_for(path)} for path in batch})
                self.progress("manifest", min(done * 512, len(paths)), len(paths))
            self.store.set_setting(key, signature)
            unmatched = manifest.unmatched(every)
            if unmatched:
                sample = ", ".join(unmatched[:3]) + (", ..." if len(unmatched) > 3 else "")
                self.report.warnings.append(
                    f"{manifest.path}: {len(unmatched)} entries match no image under the folder ({sample})"
                )
