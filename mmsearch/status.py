"""``status``: what is indexed, with which model, and how big, without loading a model or FAISS.

Each collection's index kind and vector count come from its file's header; the kind the policy wants for
that count (``mmsearch.index.policy.kind_for`` with the ``hnsw_threshold`` setting) is shown beside it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from mmsearch.config import Settings
from mmsearch.errors import IndexCorruptError
from mmsearch.identity import ModelIdentity
from mmsearch.index.faiss_index import read_header
from mmsearch.index.policy import MANAGED_KINDS, SHRINK_FRACTION, kind_for
from mmsearch.kinds import COLLECTIONS, FRAME, IMAGE
from mmsearch.store.failures import FailureMemory
from mmsearch.store.repository import MetadataStore

if TYPE_CHECKING:
    from mmsearch.models import Models

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class StatusReport:
    home: str
    database: str
    database_bytes: int | None
    model: dict[str, Any] | None
    files_by_kind: dict[str, int]
    texts_by_kind: dict[str, int]
    files_bytes: int
    vectors: int
    generation: int
    index: dict[str, Any] | None
    """The image index (kept for scripts written against earlier versions); all of them are in ``indexes``."""
    indexes: dict[str, dict[str, Any]]
    hnsw_threshold: int
    """The ``hnsw_threshold`` setting: a collection's index is flat below it, HNSW from it on."""
    hnsw_shrink_below: int
    """An HNSW index goes back to flat only below this many vectors (hysteresis)."""
    failed_files: int = 0
    """Files that failed to ingest and are skipped until they change (``ingest --retry-failed``)."""
    failures: list[dict[str, Any]] = field(default_factory=list)
    """Each remembered failure: path, size, mtime_ns, content_hash, reason, failed_at."""

    def to_dict(self) -> dict[str, Any]:
        """The status document (``mmsearch/schemas/status.json``): every field but ``index``, which repeats
        ``indexes["image"]``."""
        data = asdict(self)
        del data["index"]
        return {"schema_version": SCHEMA_VERSION, **data}


def build_status(
    settings: Settings, store: MetadataStore, identity: ModelIdentity | None, paths: dict[str, Path]
) -> StatusReport:
    """Collect the facts ``mmsearch status`` shows; ``paths`` are the index files by collection."""
    counts = store.counts()
    failures = FailureMemory(store).all()
    generation = store.generation()
    indexes = {
        collection: facts
        for collection, path in paths.items()
        if (facts := _index_facts(path, store.generation(collection), settings.hnsw_threshold)) is not None
    }
    url = make_url(settings.database_url)
    database_bytes = None
    if url.get_backend_name() == "sqlite" and url.database and Path(url.database).is_file():
        database_bytes = sum(p.stat().st_size for p in (Path(url.database), Path(url.database + "-wal")) if p.is_file())
    model = None
    if identity is not None:
        model = {**identity.to_dict(), "spec": identity.spec, "fingerprint": identity.fingerprint}
    return StatusReport(
        home=str(settings.home),
        database=url.render_as_string(hide_password=True),
        database_bytes=database_bytes,
        model=model,
        files_by_kind=counts["files_by_kind"],
        texts_by_kind=counts["texts_by_kind"],
        files_bytes=counts["files_bytes"],
        vectors=counts["vectors"],
        generation=generation,
        index=indexes.get(IMAGE),
        indexes=indexes,
        hnsw_threshold=settings.hnsw_threshold,
        hnsw_shrink_below=math.ceil(SHRINK_FRACTION * settings.hnsw_threshold),
        failed_files=len(failures),
        failures=[failure.to_dict() for failure in failures],
    )


def _index_facts(path: Path | None, generation: int, threshold: int) -> dict[str, Any] | None:
    if path is None:
        return None
    facts: dict[str, Any] = {"path": str(path), "exists": path.is_file()}
    if not path.is_file():
        facts["state"] = "missing (rebuilt from the database on next query)"
        return facts
    try:
        header = read_header(path)
    except IndexCorruptError as exc:
        facts["state"] = f"unreadable ({exc}); run `mmsearch reindex`"
        return facts
    kind, count = header.get("kind"), header.get("count")
    current = header.get("generation") == generation
    facts.update(
        kind=kind,
        vectors=count,
        bytes=path.stat().st_size,
        state="up to date" if current else "stale (rebuilt on next query)",
    )
    if isinstance(count, int) and kind in MANAGED_KINDS:
        facts["policy_kind"] = kind_for(count, kind, threshold)
        if current and facts["policy_kind"] != kind:
            facts["state"] += f"; becomes {facts['policy_kind']} on next use (hnsw_threshold {threshold})"
    return facts


def home_status(settings: Settings, store: MetadataStore, models: Models) -> StatusReport:
    """The status of a home: its index files by collection (a library without videos shows no keyframe index),
    or with vectors in Milvus the collections' facts; loads no model and no FAISS."""
    from mmsearch.index.cache import index_path

    active = store.active_model()
    paths = {}
    if active is not None:
        has_frames = bool(store.counts()["texts_by_kind"].get(FRAME))
        for collection in COLLECTIONS:
            if collection == FRAME and not has_frames:  # a library without videos shows no keyframe index
                continue
            paths[collection] = index_path(settings.index_dir, settings.database_url, active[1], collection)
    if active is None or not settings.vector_url:
        return build_status(settings, store, active[1] if active else None, paths)
    from mmsearch.index.milvus_index import MilvusIndexCache

    report = build_status(settings, store, active[1], {})  # vectors in Milvus: no index files
    for collection in COLLECTIONS:
        cache = models.index_cache(active[0], active[1], collection)
        if isinstance(cache, MilvusIndexCache):
            report.indexes[collection] = cache.facts()
    return replace(report, index=report.indexes[IMAGE])
