"""Skip files that failed before and have not changed since; remember this run's failures.

Uses :class:`mmsearch.store.failures.FailureMemory`. Only failures of the file's own content are remembered
(:class:`~mmsearch.errors.UnreadableMediaError`: not an image, truncated, too many pixels, ...). A remembered file
is held back while its size and mtime are those recorded, or while its bytes hash the same (it was only touched);
one that could not be read at all (no hash) is tried each run, as a permission change leaves its mtime alone.
``retry`` holds nothing back.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace

from mmsearch.errors import MmsearchError
from mmsearch.ingest.audio import hash_file
from mmsearch.ingest.plan import IngestPlan
from mmsearch.ingest.report import IngestReport
from mmsearch.ingest.scanner import ScannedFile
from mmsearch.store.failures import FailureMemory, RememberedFailure


@dataclass
class HeldBack:
    """The plan without the files held back, and what is remembered under the folder."""

    plan: IngestPlan
    held: dict[str, RememberedFailure] = field(default_factory=dict)
    remembered: dict[str, RememberedFailure] = field(default_factory=dict)


def _hash_or_none(path: str) -> str | None:
    try:
        return hash_file(path)
    except MmsearchError:
        return None


def hold_back_failures(plan: IngestPlan, remembered: dict[str, RememberedFailure], retry: bool) -> HeldBack:
    """Take remembered, unchanged failures out of ``plan.to_check`` (nothing when ``retry``)."""
    result = HeldBack(plan, remembered=remembered)
    if retry or not remembered:
        return result
    to_check = []
    for file in plan.to_check:
        failure = remembered.get(file.path)
        if failure is None or failure.content_hash is None:  # unread (permissions?): trying again costs little
            to_check.append(file)
        elif failure.same_stat(file.size, file.mtime_ns):
            result.held[file.path] = failure
        elif _hash_or_none(file.path) == failure.content_hash:
            result.held[file.path] = replace(failure, size=file.size, mtime_ns=file.mtime_ns)  # only touched
        else:
            to_check.append(file)
    result.plan = replace(plan, to_check=to_check)
    return result


def update_failures(
    memory: FailureMemory,
    held: HeldBack,
    scanned: Sequence[ScannedFile],
    report: IngestReport,
    unreadable: Collection[str],
) -> None:
    """Remember the media files that failed in this run because of their content (``unreadable``: not a
    missing speech model, say); forget those that are fine now or gone."""
    by_path = {file.path: file for file in scanned}
    failed = {failure.path: failure.reason for failure in report.failed if failure.path in by_path}
    fresh = [
        RememberedFailure(path, by_path[path].size, by_path[path].mtime_ns, _hash_or_none(path), reason)
        for path, reason in failed.items()
        if path in unreadable
    ]
    touched = [failure for path, failure in held.held.items() if failure != held.remembered.get(path)]
    memory.remember(fresh + touched)
    memory.forget(path for path in held.remembered if path not in failed and path not in held.held)
