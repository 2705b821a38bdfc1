"""Commit a batch of asset changes: files, image vectors and text items in one transaction, then the indexes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mmsearch.encoders.base import Encoder
from mmsearch.index.cache import IndexCache
from mmsearch.ingest.report import IngestReport
from mmsearch.ingest.scanner import ScannedFile
from mmsearch.ingest.texts import to_records
from mmsearch.kinds import IMAGE, ITEM_KINDS
from mmsearch.models import Models
from mmsearch.store.keyword_tantivy import KeywordChanges
from mmsearch.store.records import FileRecord, KnownFile
from mmsearch.store.repository import MetadataStore
from mmsearch.store.text_items import TextRecord
from mmsearch.textitems import TextItem


@dataclass(frozen=True)
class Probe:
    """Content hash and pixel size of a file, and the captions found inside it (images)."""

    content_hash: str
    width: int | None = None
    height: int | None = None
    embedded: tuple[TextItem, ...] | None = None
    taken_at: float | None = None


@dataclass
class AssetChange:
    """What to write for one file: its row, maybe its image vector, and the text groups to set."""

    file: ScannedFile
    probe: Probe
    vector: np.ndarray | None = None
    vector_is_new: bool = False
    texts: dict[str, list[TextItem]] = field(default_factory=dict)
    items: dict[str, list[TextRecord]] = field(default_factory=dict)
    """Item groups given as ready records (video keyframes), set like ``texts``."""
    item_vectors: dict[str, np.ndarray] = field(default_factory=dict)
    """Vectors of ``items`` not stored yet, by content hash."""


class ModelSession:
    """The model side of an ingest, resolved lazily: nothing is loaded unless something must be embedded."""

    def __init__(self, models: Models) -> None:
        self.models = models
        self.model_id = models.active_id()
        self._indexes: dict[str, IndexCache] = {}
        self._encoder: Encoder | None = None

    def encoder(self) -> Encoder:
        if self._encoder is None:
            self.model_id, self._encoder = self.models.adopt_encoder()
        return self._encoder

    def ensure_model(self) -> int:
        """The model id, loading the model if none was ever adopted."""
        if self.model_id is None:
            self.encoder()
        assert self.model_id is not None
        return self.model_id

    def index(self, collection: str = IMAGE) -> IndexCache:
        """The collection's index, loaded (or rebuilt) before the first change is written."""
        if collection not in self._indexes:
            cache = self.models.active_index_cache(self.ensure_model(), collection)
            cache.get()
            self._indexes[collection] = cache
        return self._indexes[collection]

    def save(self) -> None:
        for cache in self._indexes.values():
            cache.save()


class BatchWriter:
    """Writes batches of :class:`AssetChange` and mirrors them in the vector indexes."""

    def __init__(self, store: MetadataStore, models: ModelSession, report: IngestReport) -> None:
        self.store = store
        self.models = models
        self.report = report
        self.committed: set[str] = set()
        """Paths of every file written by this writer."""
        self.keyword_changes = KeywordChanges()
        """The text items and files written or removed, for the keyword index (``TantivyKeywords.update``)."""

    def commit(self, changes: Sequence[AssetChange], known: dict[str, KnownFile]) -> None:
        """Write one batch in one transaction; a crash loses at most this batch."""
        if not changes:
            return
        model_id = self.models.ensure_model()
        records_by_path = self._text_records({change.file.path: change.texts for change in changes if change.texts})
        text_vectors = self._text_vectors(model_id, records_by_path)
        for change in changes:  # ready records (keyframes) come with their own vectors
            if change.items:
                records_by_path.setdefault(change.file.path, {}).update(change.items)
                text_vectors.update(change.item_vectors)
        image_changes = [change for change in changes if change.vector is not None]
        if image_changes:
            self.models.index(IMAGE)
        if records_by_path:
            for kind in ITEM_KINDS:
                self.models.index(kind)
        new_vectors = {
            c.probe.content_hash: c.vector for c in image_changes if c.vector_is_new and c.vector is not None
        }
        new_vectors.update(text_vectors)
        written = self.store.write_assets(
            model_id,
            [_file_record(change) for change in changes],
            new_vectors,
            records_by_path,
            image_changed=bool(image_changes),
        )
        self.keyword_changes.record(written)
        if image_changes:
            ids_by_path = dict(zip((c.file.path for c in changes), written.file_ids, strict=True))
            self.models.index(IMAGE).apply(
                written.generations[IMAGE],
                np.array([ids_by_path[c.file.path] for c in image_changes], dtype=np.int64),
                np.stack([c.vector for c in image_changes if c.vector is not None]),
            )
        self._mirror_texts(model_id, written, text_vectors)
        self._count(changes, known)
        self.committed.update(change.file.path for change in changes)

    def commit_texts(self, texts: dict[str, dict[str, list[TextItem]]]) -> None:
        """Set text groups of files already stored (paths not stored are ignored)."""
        if not texts:
            return
        model_id = self.models.ensure_model()
        records_by_path = self._text_records(texts)
        text_vectors = self._text_vectors(model_id, records_by_path)
        for kind in ITEM_KINDS:
            self.models.index(kind)
        written = self.store.write_assets(model_id, [], text_vectors, records_by_path, image_changed=False)
        self.keyword_changes.record(written)
        self._mirror_texts(model_id, written, text_vectors)

    def _text_records(self, texts: dict[str, dict[str, list[TextItem]]]) -> dict[str, dict[str, list[TextRecord]]]:
        if not texts:
            return {}
        if not any(items for groups in texts.values() for items in groups.values()):
            # photos without captions: their groups are set empty, and nothing is counted (no tokenizer loaded)
            return {path: {group: [] for group in groups} for path, groups in texts.items()}
        encoder = self.models.encoder()
        return {
            path: to_records(groups, encoder.count_tokens, encoder.context_length) for path, groups in texts.items()
        }

    def _text_vectors(self, model_id: int, records_by_path: dict) -> dict[str, np.ndarray]:
        """Vectors of texts not stored yet, embedded with the text tower (identical texts share one)."""
        texts = {r.content_hash: r.text for groups in records_by_path.values() for rs in groups.values() for r in rs}
        if not texts:
            return {}
        have = self.store.hashes_with_vectors(model_id, texts)
        missing = [content_hash for content_hash in texts if content_hash not in have]
        if not missing:
            return {}
        vectors = self.models.encoder().encode_texts([texts[content_hash] for content_hash in missing])
        self.report.texts_embedded += len(missing)
        return dict(zip(missing, vectors, strict=True))

    def _mirror_texts(self, model_id: int, written, fresh: dict[str, np.ndarray]) -> None:
        for kind in ITEM_KINDS:
            added = written.added_texts.get(kind, [])
            removed = written.removed_texts.get(kind, [])
            if not added and not removed:
                continue
            hashes = [content_hash for _, content_hash in added]
            stored = self.store.vectors_for_hashes(model_id, [h for h in hashes if h not in fresh])
            vectors = [fresh[h] if h in fresh else stored[h] for h in hashes]
            self.models.index(kind).apply(
                written.generations[kind],
                np.array([item_id for item_id, _ in added], dtype=np.int64),
                np.stack(vectors) if vectors else None,
                np.array(removed, dtype=np.int64),
            )
            self.report.texts_added[kind] = self.report.texts_added.get(kind, 0) + len(added)
            self.report.texts_removed[kind] = self.report.texts_removed.get(kind, 0) + len(removed)

    def _count(self, changes: Sequence[AssetChange], known: dict[str, KnownFile]) -> None:
        for change in changes:
            previous = known.get(change.file.path)
            if previous is None:
                self.report.added += 1
            elif previous.content_hash != change.probe.content_hash:
                self.report.updated += 1
            else:
                self.report.resynced += 1


def _file_record(change: AssetChange) -> FileRecord:
    file, probe = change.file, change.probe
    return FileRecord(
        file.path,
        file.kind,
        file.size,
        file.mtime_ns,
        probe.content_hash,
        probe.width,
        probe.height,
        file.sidecar_sig,
        probe.taken_at,
    )
