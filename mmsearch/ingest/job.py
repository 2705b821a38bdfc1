"""One ingest of a folder, from the scan to the report: what :meth:`mmsearch.engine.Engine.ingest` runs under the
writer lock (the engine keeps the lock and the keyword index; this module keeps the steps)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from mmsearch.captions.manifest import load_manifest
from mmsearch.errors import EmptyFolderError, FolderNotFoundError
from mmsearch.ingest.failure_memory import hold_back_failures, update_failures
from mmsearch.ingest.plan import plan_ingest
from mmsearch.ingest.report import IngestReport, ProgressFn
from mmsearch.ingest.runner import IngestOptions, IngestRun, ModelSession
from mmsearch.ingest.scanner import ScanResult, scan_folder
from mmsearch.kinds import COLLECTIONS
from mmsearch.store.failures import FailureMemory
from mmsearch.video.extract import video_settings

if TYPE_CHECKING:
    from mmsearch.config import Settings
    from mmsearch.ingest.ray_executor import RayExecutor
    from mmsearch.models import Models
    from mmsearch.store.keyword_tantivy import KeywordChanges
    from mmsearch.store.records import KnownFile
    from mmsearch.store.repository import MetadataStore

KeywordRefresh = Callable[[dict[str, int], "KeywordChanges"], None]
"""Told the collections' generations before the ingest and what it changed (the keyword index's update)."""


def ingest_folder(
    store: MetadataStore,
    models: Models,
    folder: str | os.PathLike[str],
    progress: ProgressFn | None,
    captions: Sequence[str | os.PathLike[str]],
    retry_failed: bool,
    refresh_keywords: KeywordRefresh,
) -> IngestReport:
    """Scan ``folder``, plan against what ``store`` knows, run the plan, remember the failures; the report."""
    started = time.perf_counter()
    root = existing_folder(folder)
    report = IngestReport(folder=str(root), model=models.model_name())
    manifests = [load_manifest(path, base=str(root)) for path in captions]
    scan, known = _scan(store, root)
    before = store.generations(COLLECTIONS)  # what the keyword index reflects, when it is current
    report.failed.extend(scan.errors)
    report.ignored.extend(scan.ignored)
    models.repair_indexes()
    run = IngestRun(store, ModelSession(models), _options(models), report, progress, models.speech_to_text, manifests)
    memory = FailureMemory(store)
    held = hold_back_failures(plan_ingest(scan.files, known), memory.under(str(root)), retry_failed)
    report.failed_before = len(held.held)
    run.execute(held.plan, known, scan.files)
    refresh_keywords(before, run.writer.keyword_changes)
    update_failures(memory, held, scan.files, report, run.unreadable)
    report.elapsed_s = time.perf_counter() - started
    encoder = models.loaded_encoder
    if encoder is not None:
        report.precision = dict(encoder.precision)
    return report


def _options(models: Models) -> IngestOptions:
    given = models.settings
    video = video_settings(given.video_interval, given.video_max_frames)
    options = IngestOptions(given.batch_size, given.workers, given.max_image_pixels, given.encode_streams, video=video)
    return replace(options, executor=_executor(models, given))


def _executor(models: Models, settings: Settings) -> RayExecutor | None:
    """The Ray executor when ``executor = "ray"`` (its actors load the model the way the engine does)."""
    if settings.executor != "ray":
        return None
    from mmsearch.ingest.ray_executor import RayExecutor

    return RayExecutor(models.encoder_recipe, models.model_name(), settings.device, settings.ray_address)


def _scan(store: MetadataStore, root: Path) -> tuple[ScanResult, dict[str, KnownFile]]:
    """The media under ``root`` and what the database knows there; EmptyFolderError when both are empty."""
    scan = scan_folder(root)
    known = store.files_under(str(root))
    if not scan.files and not known:
        raise EmptyFolderError(
            f"no supported media under {root} (looked for jpg, png, webp, gif, bmp, tiff images and "
            "wav, mp3, flac, m4a, ogg, opus audio and mp4, mov, m4v, mkv, webm, avi, 3gp video)"
        )
    return scan, known


def existing_folder(folder: str | os.PathLike[str]) -> Path:
    """``folder``, resolved; FolderNotFoundError where it is missing or not a folder."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FolderNotFoundError(f"folder not found: {root}" if not root.exists() else f"not a folder: {root}")
    return root.resolve()
