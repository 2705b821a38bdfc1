"""Decide what an ingest run must do by comparing the folder with the database."""

from __future__ import annotations

from dataclasses import dataclass, field

from mmsearch.ingest.scanner import ScannedFile
from mmsearch.store.records import KnownFile


@dataclass
class IngestPlan:
    """What to do with each file.

    ``unchanged``: same size, mtime and sidecars; ``resync``: same size and mtime but its sidecars changed
    (only its texts are read again); ``to_check``: new, or stat changed; ``deleted``: gone from disk.
    """

    unchanged: list[ScannedFile] = field(default_factory=list)
    resync: list[ScannedFile] = field(default_factory=list)
    to_check: list[ScannedFile] = field(default_factory=list)
    deleted: list[KnownFile] = field(default_factory=list)


def plan_ingest(scanned: list[ScannedFile], known: dict[str, KnownFile]) -> IngestPlan:
    """Split scanned files by what the database knows of them."""
    plan = IngestPlan()
    seen: set[str] = set()
    for file in scanned:
        seen.add(file.path)
        previous = known.get(file.path)
        if previous is None or previous.size != file.size or previous.mtime_ns != file.mtime_ns:
            plan.to_check.append(file)
        elif previous.sidecar_sig != file.sidecar_sig:
            plan.resync.append(file)
        else:
            plan.unchanged.append(file)
    plan.deleted = [entry for path, entry in known.items() if path not in seen]
    return plan
