"""Ingest as a background job: start on a folder, follow its progress, cancel it, read its report.

A job runs in its own thread on its own :class:`~mmsearch.engine.Engine` (opened on the same home and database),
so searches go on while it works and see its batches as they are committed. One job runs at a time. Cancelling
stops the job at its next progress step; what was committed by then stays (a later ingest picks up the rest).
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmsearch.assets import Asset
from mmsearch.errors import MmsearchError, UnreadableMediaError

if TYPE_CHECKING:
    from mmsearch.engine import Engine

KEEP = 20
"""Finished jobs remembered (the oldest are forgotten first)."""


class JobError(MmsearchError):
    """An ingest job cannot be started or found."""

    exit_code = 2


class JobConflict(JobError):
    """Another ingest job is running."""


class JobCancelled(Exception):
    """Raised from the progress callback to stop a cancelled job."""


@dataclass
class Job:
    id: str
    folder: str
    captions: list[str]
    thumbnails: bool = False
    state: str = "running"
    phase: str | None = None
    done: int = 0
    total: int = 0
    started: float = field(default_factory=time.time)
    finished: float | None = None
    report: dict[str, Any] | None = None
    error: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "folder": self.folder,
            "thumbnails": self.thumbnails,
            "state": self.state,
            "phase": self.phase,
            "done": self.done,
            "total": self.total,
            "started": self.started,
            "finished": self.finished,
            "report": self.report,
            "error": self.error,
        }


class IngestJobs:
    """Runs ingest jobs with engines from ``open_engine``; ``after`` runs when one ends (e.g. thumbnail pruning);
    ``thumbnail`` makes an image asset's thumbnail, for jobs asked to make them at ingest."""

    def __init__(
        self,
        open_engine: Callable[[], Engine],
        after: Callable[[], object] = lambda: None,
        thumbnail: Callable[[Asset], object] = lambda asset: None,
    ) -> None:
        self._open_engine = open_engine
        self._after = after
        self._thumbnail = thumbnail
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, folder: str, captions: Sequence[str] = (), thumbnails: bool = False) -> Job:
        root = Path(folder).expanduser()
        if not root.is_dir():
            raise JobError(f"folder not found: {root}" if not root.exists() else f"not a folder: {root}")
        with self._lock:
            if any(job.state == "running" for job in self._jobs.values()):
                raise JobConflict("an ingest job is already running; wait for it or cancel it")
            job = Job(uuid.uuid4().hex[:12], str(root), list(captions), thumbnails)
            self._jobs[job.id] = job
            for old in [j for j in self._jobs.values() if j.state != "running"][:-KEEP]:
                del self._jobs[old.id]
        threading.Thread(target=self._run, args=(job,), name=f"ingest-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise JobError(f"no such ingest job: {job_id}")
        return job

    def all(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        job.cancel.set()
        return job

    def wait(self, job_id: str, timeout_s: float) -> Job:
        """The job once it ended (or after ``timeout_s``), for tests and scripts."""
        deadline = time.monotonic() + timeout_s
        job = self.get(job_id)
        while job.state == "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        return job

    def _run(self, job: Job) -> None:
        def progress(phase: str, done: int, total: int) -> None:
            if job.cancel.is_set():
                raise JobCancelled
            job.phase, job.done, job.total = phase, done, total

        try:
            with self._open_engine() as engine:
                report = engine.ingest(job.folder, progress, captions=job.captions)
                if job.thumbnails:
                    self._make_thumbnails(engine.assets_under(job.folder), progress)
            job.report = report.to_dict()
            job.state = "cancelled" if job.cancel.is_set() else "done"
        except JobCancelled:
            job.state = "cancelled"
        except MmsearchError as exc:
            job.state, job.error = "failed", str(exc)
        except Exception as exc:  # a bug: the job says so; the service goes on
            job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            job.finished = time.time()
            self._after()

    def _make_thumbnails(self, assets: list[Asset], progress: Callable[[str, int, int], None]) -> None:
        images = [asset for asset in assets if asset.kind == "image"]
        for done, asset in enumerate(images, 1):
            with contextlib.suppress(UnreadableMediaError):  # refused again, with the reason, on request
                self._thumbnail(asset)
            progress("thumbnails", done, len(images))
