"""Carry out an ingest plan: hash, reuse stored vectors, embed the rest, commit batch by batch."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from mmsearch.encoders.base import Encoder
from mmsearch.errors import UnreadableMediaError
from mmsearch.index.cache import IndexCache
from mmsearch.ingest.imageio import hash_bytes, load_image
from mmsearch.ingest.pipeline import batched, map_ahead
from mmsearch.ingest.plan import IngestPlan
from mmsearch.ingest.report import FailedFile, IngestReport, ProgressFn
from mmsearch.ingest.scanner import ScannedFile
from mmsearch.store.repository import FileRecord, KnownFile, MetadataStore


@dataclass(frozen=True)
class Probe:
    """Content hash and (header-only) pixel size of a file."""

    content_hash: str
    width: int | None
    height: int | None


@dataclass(frozen=True)
class PreparedImage:
    """A decoded, model-ready image and the hash of exactly the bytes it was decoded from."""

    probe: Probe
    tensor: Any


@dataclass(frozen=True)
class IngestOptions:
    batch_size: int = 32
    workers: int = 2
    max_pixels: int = 89_478_485


class ModelSession:
    """The model side of an ingest, resolved lazily: nothing is loaded unless something must be embedded."""

    def __init__(
        self,
        model_id: int | None,
        index_factory: Callable[[int], IndexCache],
        encoder_factory: Callable[[], tuple[int, Encoder]],
    ) -> None:
        self.model_id = model_id
        self._index_factory = index_factory
        self._encoder_factory = encoder_factory
        self._index: IndexCache | None = None
        self._encoder: Encoder | None = None

    def encoder(self) -> Encoder:
        if self._encoder is None:
            self.model_id, self._encoder = self._encoder_factory()
        return self._encoder

    def index(self) -> IndexCache:
        if self._index is None:
            if self.model_id is None:
                self.encoder()
            self._index = self._index_factory(self.model_id)
        return self._index

    def save(self) -> None:
        if self._index is not None:
            self._index.save()


def read_probe(path: str) -> Probe:
    """Hash the file and read its pixel size from the header (no full decode)."""
    data = _read(path)
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except UnidentifiedImageError:
        raise UnreadableMediaError("not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnreadableMediaError(f"cannot read image header: {exc}") from exc
    return Probe(hash_bytes(data), width, height)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise UnreadableMediaError(f"cannot read file: {exc.strerror or exc}") from exc


class IngestRun:
    """One pass over a plan. Every database write is one batch; the index mirrors each one."""

    def __init__(
        self,
        store: MetadataStore,
        models: ModelSession,
        options: IngestOptions,
        report: IngestReport,
        progress: ProgressFn | None = None,
    ) -> None:
        self.store = store
        self.models = models
        self.options = options
        self.report = report
        self.progress = progress or (lambda phase, done, total: None)

    def execute(self, plan: IngestPlan, known: dict[str, KnownFile]) -> None:
        """Remove, check, reuse and embed, in that order; the index is saved even if a step fails."""
        try:
            self.report.skipped += len(plan.unchanged)
            self._remove(plan.deleted)
            probed = self._probe(plan.to_check, known)
            to_embed = self._commit_known_content(probed, known)
            self._embed(to_embed, known)
            if self.models.model_id is not None:
                self.store.collect_garbage(self.models.model_id)
        finally:
            self.models.save()

    def _remove(self, files: Sequence[KnownFile]) -> None:
        if not files:
            return
        ids = np.array([file.id for file in files], dtype=np.int64)
        generation = self.store.delete_files(ids.tolist())
        self.models.index().apply(generation, remove_ids=ids)
        self.report.removed += len(files)

    def _probe(self, files: list[ScannedFile], known: dict[str, KnownFile]) -> list[tuple[ScannedFile, Probe]]:
        probed: list[tuple[ScannedFile, Probe]] = []
        failed_known: list[KnownFile] = []
        for done, outcome in enumerate(
            map_ahead(lambda f: read_probe(f.path), files, self.options.workers, 4 * self.options.workers), 1
        ):
            if outcome.error is None:
                probed.append((outcome.item, outcome.value))
            else:
                self._fail(outcome.item.path, outcome.error, known, failed_known)
            self.progress("hashing", done, len(files))
        self._forget_failed(failed_known)
        return probed

    def _commit_known_content(
        self, probed: list[tuple[ScannedFile, Probe]], known: dict[str, KnownFile]
    ) -> list[ScannedFile]:
        """Touch files whose bytes did not change, reuse vectors of known content; return the rest."""
        touch: list[tuple[int, int, int]] = []
        reuse: list[tuple[ScannedFile, Probe]] = []
        to_embed: list[ScannedFile] = []
        have = set()
        if self.models.model_id is not None:
            have = self.store.hashes_with_vectors(self.models.model_id, [probe.content_hash for _, probe in probed])
        for file, probe in probed:
            previous = known.get(file.path)
            if previous is not None and previous.content_hash == probe.content_hash:
                touch.append((previous.id, file.size, file.mtime_ns))
            elif probe.content_hash in have:
                reuse.append((file, probe))
            else:
                to_embed.append(file)
        self.store.touch_files(touch)
        self.report.skipped += len(touch)
        for batch in batched(reuse, 512):
            vectors = self.store.vectors_for_hashes(self.models.model_id, [p.content_hash for _, p in batch])
            self._commit(batch, {}, [vectors[p.content_hash] for _, p in batch], known)
            self.report.reused += len(batch)
        return to_embed

    def _embed(self, files: list[ScannedFile], known: dict[str, KnownFile]) -> None:
        if not files:
            return
        encoder = self.models.encoder()
        size, workers = self.options.batch_size, self.options.workers
        outcomes = map_ahead(lambda f: self._prepare(encoder, f), files, workers, 2 * size + workers)
        done = 0
        failed_known: list[KnownFile] = []
        started = time.perf_counter()
        for batch in batched(outcomes, size):
            ready = []
            for outcome in batch:
                if outcome.error is None:
                    ready.append((outcome.item, outcome.value))
                else:
                    self._fail(outcome.item.path, outcome.error, known, failed_known)
            if ready:
                vectors = encoder.encode_prepared([prepared.tensor for _, prepared in ready])
                pairs = [(file, prepared.probe) for file, prepared in ready]
                new_vectors = {probe.content_hash: vector for (_, probe), vector in zip(pairs, vectors, strict=True)}
                self._commit(pairs, new_vectors, list(vectors), known)
                self.report.embedded += len(ready)
            done += len(batch)
            self.progress("embedding", done, len(files))
        self.report.embed_s += time.perf_counter() - started
        self._forget_failed(failed_known)

    def _prepare(self, encoder: Encoder, file: ScannedFile) -> PreparedImage:
        data = _read(file.path)
        image = load_image(data, self.options.max_pixels)
        probe = Probe(hash_bytes(data), image.width, image.height)
        return PreparedImage(probe, encoder.prepare_image(image))

    def _commit(
        self,
        pairs: Sequence[tuple[ScannedFile, Probe]],
        new_vectors: dict[str, np.ndarray],
        vectors: Sequence[np.ndarray],
        known: dict[str, KnownFile],
    ) -> None:
        records = [
            FileRecord(file.path, file.kind, file.size, file.mtime_ns, probe.content_hash, probe.width, probe.height)
            for file, probe in pairs
        ]
        ids, generation = self.store.write_files(self.models.model_id, records, new_vectors)
        self.models.index().apply(generation, np.array(ids, dtype=np.int64), np.stack(vectors))
        for file, _ in pairs:
            if file.path in known:
                self.report.updated += 1
            else:
                self.report.added += 1

    def _fail(
        self, path: str, error: BaseException, known: dict[str, KnownFile], failed_known: list[KnownFile]
    ) -> None:
        reason = str(error) if isinstance(error, UnreadableMediaError) else f"{type(error).__name__}: {error}"
        self.report.failed.append(FailedFile(path, reason))
        if path in known:
            failed_known.append(known[path])

    def _forget_failed(self, files: list[KnownFile]) -> None:
        """A known file that no longer reads must not keep answering queries with its old vector."""
        if files:
            self._remove(files)
            self.report.removed -= len(files)
