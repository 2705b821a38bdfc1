"""The Engine: the one object the CLI and other programs use — a facade over the model side
(:mod:`mmsearch.models`), ingest (:mod:`mmsearch.ingest`) and search (:mod:`mmsearch.search`)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmsearch.assets import Asset
from mmsearch.config import Settings, resolve_settings
from mmsearch.errors import NoIndexError, NotIndexedError
from mmsearch.identity import ModelIdentity
from mmsearch.kinds import COLLECTIONS, IMAGE, MODES, VIDEO
from mmsearch.models import Models, default_transcriber
from mmsearch.reports import IndexRebuilt, ReindexReport
from mmsearch.search.encode import QueryEncoder
from mmsearch.search.filters import Filters
from mmsearch.search.hits import Asked, Hit, Hits, excluded_note
from mmsearch.search.hybrid import HybridSearcher
from mmsearch.search.options import SearchOptions, Target
from mmsearch.search.query import Query
from mmsearch.store.assets import asset_by_id, assets_in
from mmsearch.store.faults import database_faults, faults_as_errors
from mmsearch.store.opening import database_present, open_store
from mmsearch.store.sql_reads import QueryStore

# The query path imports only what a search needs (``tests/unit/test_import_diet.py``): ingest, checks,
# evaluation and status are imported by the methods that use them.
if TYPE_CHECKING:
    from mmsearch.audio.transcribe import TranscriberFactory
    from mmsearch.check import IntegrityReport
    from mmsearch.encoders import Encoder, EncoderFactory
    from mmsearch.evaluation import EvalQuery, EvalReport
    from mmsearch.ingest.report import IngestReport, ProgressFn
    from mmsearch.status import StatusReport
    from mmsearch.store.keyword_tantivy import KeywordChanges, TantivyKeywords
    from mmsearch.store.lock import WaitFn
    from mmsearch.store.repository import MetadataStore
    from mmsearch.textaside import TextAside
    from mmsearch.video.storyboard import Storyboard


class Engine:
    """Ingest folders and search them. Open with :meth:`Engine.open`; use as a context manager.

    The encoder is loaded on first need (torch is not imported before), and
    the model an index was built with is remembered in the database. Searches read it through ``query_store``
    (on a SQLite home at the schema's head: the standard library's sqlite3, no SQLAlchemy); everything else goes
    through :attr:`store`, the SQLAlchemy store, opened on first need.
    """

    def __init__(
        self,
        settings: Settings,
        store: QueryStore,
        encoder_factory: EncoderFactory | None = None,
        transcriber_factory: TranscriberFactory = default_transcriber,
        text_aside: TextAside | None = None,
    ) -> None:
        self.settings = settings
        self.query_store = store
        self.models = Models(settings, store, encoder_factory, transcriber_factory, text_aside)
        self.queries = QueryEncoder(self.models)
        self._keywords: TantivyKeywords | bool | None = None  # opened on first need; False: the database's

    @classmethod
    def open(
        cls,
        home: str | os.PathLike[str] | None = None,
        *,
        model: str | None = None,
        device: str | None = None,
        db_url: str | None = None,
        encoder_factory: EncoderFactory | None = None,
        transcriber_factory: TranscriberFactory = default_transcriber,
        create: bool = True,
        text_aside: TextAside | None = None,
        **options: Any,
    ) -> Engine:
        """Open (creating or upgrading) the database in ``home``; arguments override env and config file.

        ``create=False`` opens an existing database only: where there is none, :class:`NoIndexError` is raised and
        nothing is created (for commands that only read, like ``status``). ``options`` are further settings
        (``batch_size``, ``workers``, ``speech_model``, ...). ``text_aside``: a query's text being encoded
        speculatively (:func:`mmsearch.textaside.start`), taken if it is of this home's model.
        """
        settings = resolve_settings(home, model=model, device=device, db_url=db_url, **options)
        if not create and not database_present(settings.database_url):
            raise NoIndexError(f"nothing is indexed in {settings.home} yet; run `mmsearch ingest FOLDER` first")
        with database_faults(settings.database_url):
            store = open_store(settings.database_url)
        return cls(settings, store, encoder_factory, transcriber_factory, text_aside)

    def close(self) -> None:
        """Persist cached query vectors and release the database connections."""
        self.models.drop_text_aside()
        self.queries.close()
        self.query_store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def database_url(self) -> str:
        return self.settings.database_url

    @property
    def store(self) -> MetadataStore:
        """The SQLAlchemy store (writes, maintenance, status), opened on first need."""
        with database_faults(self.database_url):
            return self.query_store.full

    @property
    def encoder(self) -> Encoder:
        """The encoder, loaded on first use."""
        return self.models.encoder

    def check_model(self, requested: str | None) -> None:
        """Refuse a model other than the one the index was built with (None: no model asked for)."""
        self.models.check_model(requested)

    @faults_as_errors
    def warm_up(self, *, images: bool = False) -> bool:
        """Load what text queries need now (the query text encoder and every index), not on the first query;
        with ``images`` the image tower too (the whole model), for image queries.

        False when nothing is indexed yet (there is nothing to load; searches fail until an ingest).
        """
        if self.query_store.active_model() is None:
            return False
        model_id, identity = self.models.active()
        self.models.text_encoder(identity)
        if images:
            self.models.checked_encoder(identity)
        searcher = self._searcher(model_id, identity)
        for collection in COLLECTIONS:
            searcher.index_for(collection)
        return True

    # -- ingest ---------------------------------------------------------------------------
    @faults_as_errors
    def ingest(
        self,
        folder: str | os.PathLike[str],
        progress: ProgressFn | None = None,
        *,
        captions: Sequence[str | os.PathLike[str]] = (),
        retry_failed: bool = False,
        wait: bool = True,
        on_wait: WaitFn | None = None,
    ) -> IngestReport:
        """Index every image and audio file under ``folder`` with their captions and transcripts.

        New and changed files are embedded, deleted ones removed, files whose sidecars changed have their
        texts read again. ``captions`` names caption manifests (tsv, csv, jsonl, json/COCO) to apply.
        Files that failed before and have not changed are skipped unless ``retry_failed``.
        One ingest or reindex writes to a database at a time (``mmsearch.store.lock``): another one waits
        (``on_wait`` is told why, once), or with ``wait=False`` raises :class:`LockBusyError`.
        """
        from mmsearch.store.lock import database_lock

        with database_lock(self.store.engine, purpose="ingest", wait=wait, on_wait=on_wait):
            return self._ingest(folder, progress, captions, retry_failed)

    def _ingest(
        self,
        folder: str | os.PathLike[str],
        progress: ProgressFn | None,
        captions: Sequence[str | os.PathLike[str]],
        retry_failed: bool,
    ) -> IngestReport:
        from mmsearch.ingest.job import ingest_folder

        return ingest_folder(self.store, self.models, folder, progress, captions, retry_failed, self._refresh_keywords)

    # -- search ---------------------------------------------------------------------------
    @faults_as_errors
    def search(
        self,
        text: str | None = None,
        *,
        image: str | os.PathLike[str] | None = None,
        k: int = 10,
        kind: str = IMAGE,
        **options: Any,
    ) -> Hits:
        """Top-``k`` hits for a text query, an image query, or both mixed, best first.

        ``text`` may use query arithmetic (``"beach" + "sunset" - "people"``, ``2:"dog"``, ``image:x.jpg``).
        ``kind`` picks what to look for: ``image`` (the default), ``caption``, ``transcript`` (segments, with
        times), ``audio`` (files) or ``any`` (every asset). ``options`` are :class:`SearchOptions` fields:
        ``mode`` (``hybrid``, ``dense``, ``keyword``), ``fusion``, ``weights``, ``filters``, ``min_score``,
        ``cutoff``, ``diverse``, ``explain``.
        """
        target, search_options = Target(k, kind), SearchOptions.from_keywords(options)
        query = Query.parse(text, image)
        model_id, identity = self.models.active()
        return self._search(query, model_id, identity, target, search_options)

    @faults_as_errors
    def search_many(self, texts: Sequence[str], k: int = 10, kind: str = IMAGE, **options: Any) -> list[Hits]:
        """Top-``k`` hits for each text; the model is loaded once, and not at all for cached queries."""
        target, search_options = Target(k, kind), SearchOptions.from_keywords(options)
        model_id, identity = self.models.active()
        queries = [Query.parse(text) for text in texts]
        self._encode_plain(model_id, identity, queries)
        searcher = self._searcher(model_id, identity)
        return [
            self._noted(
                searcher.search(self.queries.encode(query, model_id, identity), target.k, target.kind, search_options),
                query,
                target,
                search_options,
            )
            for query in queries
        ]

    @faults_as_errors
    def evaluate(
        self,
        queries: str | os.PathLike[str] | Sequence[EvalQuery],
        *,
        modes: Sequence[str] = MODES,
        k: int = 10,
        kind: str = IMAGE,
        **options: Any,
    ) -> EvalReport:
        """Run labelled queries (a ``query<TAB>relevant...`` file, or :class:`EvalQuery` items) in each mode.

        Reports Recall@1/5/10, MRR and nDCG@10 per mode, and latency (query vectors are encoded once,
        before timing, so latency is the search itself).
        """
        from mmsearch.evaluation import evaluate, load_queries

        if isinstance(queries, (str, os.PathLike)):
            queries = load_queries(queries)
        target = replace(Target(k, kind), k=max(k, 10))  # checked as given; every query fetches at least 10
        per_mode = {mode: SearchOptions.from_keywords({**options, "mode": mode}) for mode in modes}
        model_id, identity = self.models.active()
        parsed = {query.text: Query.parse(query.text) for query in queries}
        self._encode_plain(model_id, identity, list(parsed.values()))
        return evaluate(
            lambda text, mode: self._search(parsed[text], model_id, identity, target, per_mode[mode]),
            queries,
            modes,
            k,
            kind,
        )

    def _search(
        self, query: Query, model_id: int, identity: ModelIdentity, target: Target, options: SearchOptions
    ) -> Hits:
        # A cold process encodes the text in a second thread while this one opens the indexes (encode_aside).
        pending = self.queries.encode_aside(query, model_id, identity)
        searcher = self._searcher(model_id, identity)
        # Database reads first, model second: right after the encoder ran, the same reads cost several times more
        # (its weights have pushed everything else out of the CPU caches; measured 0.2 vs 0.7 ms on 2 vCPUs).
        searcher.prefetch(query.keywords, target.k, target.kind, options, image_only=query.image_only)
        spec = pending.result() if pending is not None else self.queries.encode(query, model_id, identity)
        hits = searcher.search(spec, target.k, target.kind, options)
        return self._noted(hits, query, target, options)

    def _noted(self, hits: list[Hit], query: Query, target: Target, options: SearchOptions) -> Hits:
        """The hits with what was asked, and a note when there are none because the filters let no indexed
        file through."""
        asked = Asked(query.text, query.image, target.kind, options.mode, target.k)
        filters = options.filters
        if hits or filters == Filters() or self.query_store.any_file(filters.accepts):
            return Hits(hits, asked=asked)
        return Hits(hits, excluded_note(filters), asked)

    def _encode_plain(self, model_id: int, identity: ModelIdentity, queries: Sequence[Query]) -> None:
        """Encode the plain text queries in one batch (into the query cache) before searching them one by one."""
        plain = [query.plain_text for query in queries if query.plain_text is not None]
        self.queries.text_vectors(model_id, identity, plain)

    def _searcher(self, model_id: int, identity: ModelIdentity) -> HybridSearcher:
        """A searcher over the indexes as of now."""
        keywords = self._tantivy()
        store = self.query_store
        source = keywords.source(lambda: store.generations(COLLECTIONS)) if keywords is not None else None
        return HybridSearcher(store, model_id, self.models.indexes_now(model_id, identity), source)

    def _tantivy(self) -> TantivyKeywords | None:
        """The Tantivy keyword index when it is the keyword engine (``keyword_engine``), else None."""
        from mmsearch.store.keyword_tantivy import TantivyKeywords, open_keywords

        if self._keywords is None:
            self._keywords = open_keywords(self.settings, self.query_store) or False
        return self._keywords if isinstance(self._keywords, TantivyKeywords) else None

    def _refresh_keywords(self, before: dict[str, int], changes: KeywordChanges) -> None:
        """Bring the Tantivy keyword index up to the database now (after an ingest), not on the next query: only
        what the ingest changed when the index was current as it began (``before``), else rebuilt whole."""
        keywords = self._tantivy()
        if keywords is not None:
            keywords.update(before, self.store.generations(COLLECTIONS), changes)

    def describe(self, path: str | os.PathLike[str]) -> Storyboard:
        """The storyboard of an indexed video: its shots (times, keyframe times) and the transcript lines of each."""
        from mmsearch.store.video import file_by_path, items_of_file
        from mmsearch.video.storyboard import build_storyboard

        resolved = str(Path(path).expanduser().resolve())
        stored = file_by_path(self.store, resolved)
        if stored is None:
            raise NotIndexedError(f"not in the index: {resolved} (run `mmsearch ingest` on its folder)")
        if stored.kind != VIDEO:
            raise NotIndexedError(f"not a video: {resolved} is indexed as {stored.kind}")
        return build_storyboard(stored.path, items_of_file(self.store, stored.id))

    # -- maintenance ----------------------------------------------------------------------
    @faults_as_errors
    def status(self) -> StatusReport:
        """What is indexed, with which model, where, and how big; loads no model and no FAISS."""
        from mmsearch.status import home_status

        return home_status(self.settings, self.store, self.models)

    def asset(self, asset_id: int) -> Asset | None:
        """An indexed file by its id, with its captions and transcript segments; None when there is no such asset."""
        return asset_by_id(self.store, asset_id)

    def assets_under(self, folder: str | os.PathLike[str]) -> list[Asset]:
        """The indexed files under ``folder`` (without their texts), e.g. to make their thumbnails."""
        return assets_in(self.store, str(Path(folder).expanduser().resolve()))

    def existing_assets(self, ids: Sequence[int]) -> set[int]:
        """Which of ``ids`` are indexed assets."""
        return set(self.query_store.get_files(ids))

    @faults_as_errors
    def check(self, *, repair: bool = False, wait: bool = True, on_wait: WaitFn | None = None) -> IntegrityReport:
        """Files ↔ vectors ↔ index files ↔ keyword index: what drifted (see :mod:`mmsearch.check`); loads no
        model. ``repair``: fix it under the writer lock (``wait``, ``on_wait`` as for :meth:`ingest`) and report
        the check made after the repair, with what was done in ``repaired``."""
        from mmsearch.check import check_integrity
        from mmsearch.check import repair as fix_integrity
        from mmsearch.store.lock import database_lock

        report = check_integrity(self.store, self.settings.index_dir, self.settings.database_url)
        if not repair:
            return report
        with database_lock(self.store.engine, purpose="check --repair", wait=wait, on_wait=on_wait):
            done = fix_integrity(self.store, report, self._rebuild_index)
        after = check_integrity(self.store, self.settings.index_dir, self.settings.database_url)
        return replace(after, repaired=done)

    def _rebuild_index(self, collection: str) -> None:
        model_id, identity = self.models.active()
        self.models.index_cache(model_id, identity, collection).rebuild()

    @faults_as_errors
    def reindex(self, *, wait: bool = True, on_wait: WaitFn | None = None) -> ReindexReport:
        """Rebuild every vector index (image, caption, transcript) from the vectors in the database.

        Takes the writer lock as :meth:`ingest` does (``wait``, ``on_wait``)."""
        from mmsearch.store.lock import database_lock

        with database_lock(self.store.engine, purpose="reindex", wait=wait, on_wait=on_wait):
            return self._reindex()

    def _reindex(self) -> ReindexReport:
        model_id, identity = self.models.active()
        started = time.perf_counter()
        rebuilt = {}
        for collection in COLLECTIONS:
            cache = self.models.index_cache(model_id, identity, collection)
            rebuilt[collection] = IndexRebuilt(len(cache.rebuild()), str(cache.path))
        keywords = self._tantivy()
        if keywords is not None:
            keywords.rebuild(self.store.generations(COLLECTIONS))
        return ReindexReport(identity.spec, rebuilt, round(time.perf_counter() - started, 3))
