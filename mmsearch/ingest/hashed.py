"""Hash the recordings and videos of a plan and sort them: unchanged (touch their stored times), unchanged but
with changed sidecars (to re-sync), new or changed (to process). Shared by the audio and video steps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mmsearch.errors import MmsearchError
from mmsearch.ingest.audio import hash_file
from mmsearch.ingest.commit import Probe
from mmsearch.ingest.report import ProgressFn
from mmsearch.ingest.scanner import ScannedFile
from mmsearch.store.records import KnownFile

FailFn = Callable[[str, BaseException, dict[str, KnownFile]], None]


@dataclass(frozen=True)
class Fresh:
    """A new or changed file with its content hash."""

    file: ScannedFile
    probe: Probe


@dataclass
class Hashed:
    touch: list[tuple[int, int, int]] = field(default_factory=list)
    """(id, size, mtime_ns) of unchanged files."""
    resync: list[ScannedFile] = field(default_factory=list)
    """Unchanged files whose sidecars changed."""
    fresh: list[Fresh] = field(default_factory=list)


def hash_and_sort(files: list[ScannedFile], known: dict[str, KnownFile], fail: FailFn, progress: ProgressFn) -> Hashed:
    """Hash ``files`` (a file that cannot be read is reported through ``fail``) and sort them against ``known``."""
    hashed = Hashed()
    for done, file in enumerate(files, 1):
        try:
            probe = Probe(hash_file(file.path))
        except MmsearchError as exc:
            fail(file.path, exc, known)
            continue
        previous = known.get(file.path)
        if previous is not None and previous.content_hash == probe.content_hash:
            hashed.touch.append((previous.id, file.size, file.mtime_ns))
            if previous.sidecar_sig != file.sidecar_sig:
                hashed.resync.append(file)
        else:
            hashed.fresh.append(Fresh(file, probe))
        progress("hashing", done, len(files))
    return hashed
