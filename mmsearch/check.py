"""Integrity of a home: files ↔ vectors ↔ index files ↔ keyword index, as a typed report, and its repair.

For each collection (image, caption, transcript) the ids the database says the index must hold are compared with
the saved index file: ids missing from the file, entries in it the database does not know (or duplicates), and
whether the file claims the database's generation. Image files whose content has no stored vector are lost
vectors; a path stored twice is a duplicate; the keyword index (SQLite FTS5) must hold every caption, transcript
segment and file name once. ``ok`` is True when there is no drift at all.

Repair (:func:`plan_repair`, run by ``Engine.check(repair=True)`` / ``mmsearch check --repair`` under the writer
lock): files whose vectors were lost are marked so that the **next ingest** re-embeds them (their stored time is
cleared: the ingest hashes them again and embeds what has no vector; nothing is deleted, captions stay); vectors
no file or text uses any more are dropped; every vector index that differs from the database is rebuilt from it;
a drifted keyword index is refilled from the rows. Duplicate paths are reported only (the schema forbids them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mmsearch.errors import IndexCorruptError
from mmsearch.index import load_index
from mmsearch.index.cache import index_path
from mmsearch.kinds import COLLECTIONS, IMAGE
from mmsearch.store.integrity import (
    collection_ids,
    duplicate_paths,
    images_without_vector,
    keyword_drift,
    mark_for_embedding,
    rebuild_keyword_index,
)
from mmsearch.store.repository import MetadataStore

SAMPLE = 20
"""How many ids or paths of each kind of drift a report lists (the counts are complete)."""


@dataclass(frozen=True)
class CollectionCheck:
    """One collection's database ids against its saved index file."""

    collection: str
    path: str
    database: int
    """Vectors the index must hold."""
    index: int | None
    """Entries in the saved file; None when it is missing or unreadable."""
    missing: int = 0
    """Database ids absent from the file."""
    extra: int = 0
    """Entries of the file the database does not have (unknown ids or duplicates)."""
    stamped_generation: int | None = None
    database_generation: int = 0
    missing_sample: list[int] = field(default_factory=list)

    @property
    def claims_current(self) -> bool:
        return self.stamped_generation == self.database_generation

    @property
    def matches(self) -> bool:
        """The file holds exactly the database's ids."""
        return self.index is not None and self.missing == 0 and self.extra == 0

    @property
    def ok(self) -> bool:
        """No file claims to be current while it differs (a missing or stale file is rebuilt on use)."""
        return self.matches or not (self.index is not None and self.claims_current)


SCHEMA_VERSION = 1
"""Of the check document (``mmsearch/schemas/check.json``)."""


@dataclass(frozen=True)
class KeywordCheck:
    """The keyword index against the rows it must hold: entries missing, entries left over."""

    missing: int = 0
    extra: int = 0

    @property
    def ok(self) -> bool:
        return not self.missing and not self.extra


@dataclass(frozen=True)
class Repair:
    """What a repair did: files marked to be re-embedded by the next ingest, vectors dropped, indexes rebuilt."""

    reembed_next_ingest: list[str] = field(default_factory=list)
    vectors_dropped: int = 0
    indexes_rebuilt: list[str] = field(default_factory=list)
    keyword_rebuilt: bool = False


@dataclass(frozen=True)
class IntegrityReport:
    files: int
    files_without_vector: int
    duplicate_paths: list[str]
    collections: dict[str, CollectionCheck]
    lost_sample: list[str] = field(default_factory=list)
    keyword: KeywordCheck | None = None
    """None where the database keeps the keyword index itself (PostgreSQL)."""
    repaired: Repair | None = None
    """With ``repair``: what was done (this report is the check made after it)."""

    @property
    def ok(self) -> bool:
        return (
            not self.files_without_vector
            and not self.duplicate_paths
            and all(check.ok for check in self.collections.values())
            and (self.keyword is None or self.keyword.ok)
        )

    @property
    def pending(self) -> int:
        """Files a repair marked that still wait for their vectors (the next ingest embeds them)."""
        return len(self.repaired.reembed_next_ingest) if self.repaired else 0

    @property
    def needs_attention(self) -> bool:
        """Drift is left that no repair has taken care of (files a repair marked for the next ingest do not
        count: that ingest embeds them)."""
        if self.ok:
            return False
        pending_only = replace(self, files_without_vector=self.files_without_vector - self.pending, repaired=None)
        return not (self.repaired is not None and pending_only.ok)

    def to_dict(self) -> dict[str, Any]:
        """The check document (``mmsearch/schemas/check.json``)."""
        data = {"schema_version": SCHEMA_VERSION, **asdict(self)}
        data["ok"] = self.ok
        data["needs_attention"] = self.needs_attention
        for name, check in self.collections.items():
            data["collections"][name].update(matches=check.matches, claims_current=check.claims_current, ok=check.ok)
        return data


def check_integrity(store: MetadataStore, index_dir: Path, database_url: str) -> IntegrityReport:
    """Compare the database with the saved index files of its active model (nothing indexed: nothing to compare)."""
    lost = []
    collections: dict[str, CollectionCheck] = {}
    active = store.active_model()
    if active is not None:
        model_id, identity = active
        lost = images_without_vector(store, model_id)
        generations = store.generations(COLLECTIONS)
        for collection in COLLECTIONS:
            path = index_path(index_dir, database_url, identity, collection)
            ids = collection_ids(store, model_id, collection)
            collections[collection] = _check_collection(collection, path, ids, generations[collection])
    files = int(store.counts()["files_by_kind"].get(IMAGE, 0))
    drift = keyword_drift(store)
    keyword = None if drift is None else KeywordCheck(*drift)
    return IntegrityReport(files, len(lost), duplicate_paths(store), collections, lost[:SAMPLE], keyword)


def repair(store: MetadataStore, report: IntegrityReport, rebuild: Callable[[str], None]) -> Repair:
    """Fix what ``report`` found (see the module docs); ``rebuild(collection)`` rebuilds one vector index from
    the database."""
    active = store.active_model()
    lost: list[str] = []
    dropped = 0
    if active is not None:
        model_id, _ = active
        lost = images_without_vector(store, model_id)
        mark_for_embedding(store, lost)
        dropped = store.collect_garbage(model_id)
    stale = [name for name, check in report.collections.items() if not check.matches]
    for collection in stale:
        rebuild(collection)
    keyword = report.keyword is not None and not report.keyword.ok
    if keyword:
        rebuild_keyword_index(store)
    return Repair(lost, dropped, stale, keyword)


def _check_collection(collection: str, path: Path, ids: np.ndarray, generation: int) -> CollectionCheck:
    try:
        index, header = load_index(path)
    except (IndexCorruptError, OSError, KeyError, ValueError):
        return CollectionCheck(collection, str(path), len(ids), None, database_generation=generation)
    present = index.vectors(ids.tolist()) if len(ids) else {}
    missing = [int(key) for key in ids.tolist() if key not in present]
    stamped = header.get("generation")
    return CollectionCheck(
        collection,
        str(path),
        len(ids),
        len(index),
        missing=len(missing),
        extra=len(index) - len(present),
        stamped_generation=int(stamped) if isinstance(stamped, int) else None,
        database_generation=generation,
        missing_sample=missing[:SAMPLE],
    )
