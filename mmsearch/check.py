"""Integrity of a home: files ↔ vectors ↔ index files, as a typed report (no repair here).

For each collection (image, caption, transcript) the ids the database says the index must hold are compared with
the saved index file: ids missing from the file, entries in it the database does not know (or duplicates), and
whether the file claims the database's generation. Image files whose content has no stored vector are lost
vectors; a path stored twice is a duplicate. ``ok`` is True when there is no drift at all.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmsearch.errors import IndexCorruptError
from mmsearch.index import load_index
from mmsearch.index.cache import index_path
from mmsearch.kinds import COLLECTIONS, IMAGE
from mmsearch.store.integrity import collection_ids, duplicate_paths, images_without_vector
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


@dataclass(frozen=True)
class IntegrityReport:
    files: int
    files_without_vector: int
    duplicate_paths: list[str]
    collections: dict[str, CollectionCheck]
    lost_sample: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not self.files_without_vector
            and not self.duplicate_paths
            and all(check.ok for check in self.collections.values())
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
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
    return IntegrityReport(files, len(lost), duplicate_paths(store), collections, lost[:SAMPLE])


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
