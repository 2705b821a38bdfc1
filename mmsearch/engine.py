"""The Engine: the one object the CLI and other programs use."""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmsearch.config import DEFAULT_MODEL, Settings, resolve_settings
from mmsearch.encoders import Encoder, ModelIdentity, canonical_model_name, create_encoder
from mmsearch.errors import (
    EmptyFolderError,
    FolderNotFoundError,
    ModelMismatchError,
    NoIndexError,
    UnreadableMediaError,
)
from mmsearch.evaluation import EvalQuery, EvalReport, evaluate, load_queries
from mmsearch.fusion import CUTOFF_METHODS, FUSION_METHODS
from mmsearch.hybrid import MODES, HybridSearcher, QuerySpec, SearchOptions
from mmsearch.index.base import VectorIndex
from mmsearch.index.cache import IndexCache, index_path
from mmsearch.ingest.imageio import load_image
from mmsearch.ingest.plan import plan_ingest
from mmsearch.ingest.report import FailedFile, IngestReport, ProgressFn
from mmsearch.ingest.runner import IngestOptions, IngestRun, ModelSession
from mmsearch.ingest.scanner import scan_folder
from mmsearch.query_cache import QueryVectorCache
from mmsearch.querylang import Term, combine, is_plain, parse_query
from mmsearch.search import SEARCH_KINDS, Hit
from mmsearch.status import StatusReport, build_status
from mmsearch.store.database import connect, upgrade_to_head
from mmsearch.store.repository import COLLECTIONS, IMAGE, MetadataStore

if TYPE_CHECKING:
    from mmsearch.audio.transcribe import Transcriber
    from mmsearch.store.keyword import KeywordSource
    from mmsearch.store.keyword_tantivy import TantivyKeywords

EncoderFactory = Callable[[str, str], Encoder]
"""``(model name, device) -> Encoder``; the default is the registry's, with ``Settings.precision``."""
TranscriberFactory = Callable[[str, str], "Transcriber"]
"""``(speech model, device) -> Transcriber``."""


def _default_transcriber(spec: str, device: str) -> Transcriber:
    from mmsearch.audio.transcribe import create_transcriber

    return create_transcriber(spec, device)


class Engine:
    """Ingest folders and search them. Open with :meth:`Engine.open`; use as a context manager.

    The encoder is loaded on first need (torch is not imported before), and
    the model an index was built with is remembered in the database.
    """

    def __init__(
        self,
        settings: Settings,
        store: MetadataStore,
        encoder_factory: EncoderFactory | None = None,
        transcriber_factory: TranscriberFactory = _default_transcriber,
    ) -> None:
        self.settings = settings
        self.store = store
        self._encoder_factory = encoder_factory or functools.partial(create_encoder, precision=settings.precision)
        self._transcriber_factory = transcriber_factory
        self._encoder: Encoder | None = None
        self._indexes: dict[str, IndexCache] = {}
        self._transcriber: Transcriber | None = None
        self._query_cache: QueryVectorCache | None = None
        self._query_encoders: dict[str, Any] = {}  # model fingerprint -> torch-free text encoder, or None
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
        transcriber_factory: TranscriberFactory = _default_transcriber,
        **options: Any,
    ) -> Engine:
        """Open (creating or upgrading) the database in ``home``; arguments override env and config file.

        ``options`` are further settings (``batch_size``, ``workers``, ``speech_model``, ...).
        """
        settings = resolve_settings(home, model=model, device=device, db_url=db_url, **options)
        engine = connect(settings.database_url)
        upgrade_to_head(engine)
        return cls(settings, MetadataStore(engine), encoder_factory, transcriber_factory)

    def close(self) -> None:
        """Persist cached query vectors and release the database connections."""
        if self._query_cache is not None:
            self._query_cache.close()
        self.store.engine.dispose()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- model ----------------------------------------------------------------------------
    def _model_name(self) -> str:
        """The model to use: the index's, after checking it against any explicitly requested one."""
        active = self.store.active_model()
        requested = self.settings.model
        if active is None:
            name = requested or DEFAULT_MODEL
            canonical_model_name(name)  # a malformed name fails here, before any work
            return name
        self.check_model(requested)
        return active[1].spec

    def check_model(self, requested: str | None) -> None:
        """Refuse a model other than the one the index was built with (None: no model asked for)."""
        active = self.store.active_model()
        if requested and active is not None and canonical_model_name(requested) != active[1].spec:
            raise ModelMismatchError(
                f"this index was built with {active[1].spec}; refusing to use {requested}. "
                "Leave --model out to use the index's model, or pick another --home."
            )

    def warm_up(self) -> bool:
        """Load what text queries need now (the query text encoder and every index), not on the first query.

        False when nothing is indexed yet (there is nothing to load; searches fail until an ingest).
        """
        if self.store.active_model() is None:
            return False
        model_id, identity = self._active()
        self._text_encoder(identity)
        searcher = self._searcher(model_id, identity)
        for collection in COLLECTIONS:
            searcher.index_for(collection)
        return True

    @property
    def encoder(self) -> Encoder:
        """The encoder, loaded on first use."""
        if self._encoder is None:
            self._encoder = self._encoder_factory(self._model_name(), self.settings.device)
            from mmsearch.encoders.onnx_export import ensure_text_export

            ensure_text_export(self._encoder, self.settings.index_dir)  # once per model; never raises
        return self._encoder

    def _adopt_encoder(self) -> tuple[int, Encoder]:
        encoder = self.encoder
        return self.store.adopt_model(encoder.identity), encoder

    def _index_cache(self, model_id: int, identity: ModelIdentity, collection: str = IMAGE) -> IndexCache:
        cache = self._indexes.get(collection)
        if cache is None or cache.identity.fingerprint != identity.fingerprint:
            if self.settings.vector_url:
                from mmsearch.index.milvus_index import MilvusIndexCache

                url, database_url = self.settings.vector_url, self.settings.database_url
                cache = MilvusIndexCache(self.store, model_id, identity, url, database_url, collection)
            else:
                path = index_path(self.settings.index_dir, self.settings.database_url, identity, collection)
                cache = IndexCache(
                    self.store, model_id, identity, path, collection, hnsw_threshold=self.settings.hnsw_threshold
                )
            self._indexes[collection] = cache
        return cache

    def _speech_to_text(self) -> Transcriber:
        """The speech-to-text model, loaded on first need."""
        if self._transcriber is None:
            self._transcriber = self._transcriber_factory(self.settings.speech_model, self.settings.device)
        return self._transcriber

    def _active(self) -> tuple[int, ModelIdentity]:
        active = self.store.active_model()
        if active is None:
            raise NoIndexError(f"nothing is indexed in {self.settings.home} yet; run `mmsearch ingest FOLDER` first")
        self._model_name()  # refuses a mismatching --model before anything is loaded
        return active

    # -- ingest ---------------------------------------------------------------------------
    def ingest(
        self,
        folder: str | os.PathLike[str],
        progress: ProgressFn | None = None,
        *,
        captions: Sequence[str | os.PathLike[str]] = (),
    ) -> IngestReport:
        """Index every image and audio file under ``folder`` with their captions and transcripts.

        New and changed files are embedded, deleted ones removed, files whose sidecars changed have their
        texts read again. ``captions`` names caption manifests (tsv, csv, jsonl, json/COCO) to apply.
        """
        from mmsearch.captions.manifest import load_manifest

        started = time.perf_counter()
        root = Path(folder).expanduser()
        if not root.is_dir():
            raise FolderNotFoundError(f"folder not found: {root}" if not root.exists() else f"not a folder: {root}")
        root = root.resolve()
        model_name = self._model_name()
        manifests = [load_manifest(path, base=str(root)) for path in captions]
        scan = scan_folder(root)
        known = self.store.files_under(str(root))
        if not scan.files and not known:
            raise EmptyFolderError(
                f"no supported media under {root} (looked for jpg, png, webp, gif, bmp, tiff images and "
                "wav, mp3, flac, m4a, ogg, opus audio)"
            )
        report = IngestReport(folder=str(root), model=model_name)
        report.failed.extend(FailedFile(path, reason) for path, reason in scan.errors)
        active = self.store.active_model()
        models = ModelSession(
            active[0] if active else None,
            index_factory=lambda model_id, collection: self._index_cache(model_id, self._active()[1], collection),
            encoder_factory=self._adopt_encoder,
        )
        settings = self.settings
        options = IngestOptions(
            settings.batch_size, settings.workers, settings.max_image_pixels, settings.encode_streams, self._executor()
        )
        run = IngestRun(self.store, models, options, report, progress, self._speech_to_text, manifests)
        run.execute(plan_ingest(scan.files, known), known, scan.files)
        self._refresh_keywords()
        report.elapsed_s = time.perf_counter() - started
        if self._encoder is not None:
            report.precision = dict(getattr(self._encoder, "precision", None) or {})
        return report

    def _executor(self) -> Any:
        """The Ray executor when ``executor = "ray"`` (its actors load the model the way this engine does)."""
        if self.settings.executor != "ray":
            return None
        from mmsearch.ingest.ray_executor import RayExecutor

        settings = self.settings
        return RayExecutor(self._encoder_factory, self._model_name(), settings.device, settings.ray_address)

    # -- search ---------------------------------------------------------------------------
    def search(
        self,
        text: str | None = None,
        *,
        image: str | os.PathLike[str] | None = None,
        k: int = 10,
        kind: str = "image",
        **options: Any,
    ) -> list[Hit]:
        """Top-``k`` hits for a text query, an image query, or both mixed, best first.

        ``text`` may use query arithmetic (``"beach" + "sunset" - "people"``, ``2:"dog"``, ``image:x.jpg``).
        ``kind`` picks what to look for: ``image`` (the default), ``caption``, ``transcript`` (segments, with
        times), ``audio`` (files) or ``any`` (every asset). ``options`` are :class:`SearchOptions` fields:
        ``mode`` (``hybrid``, ``dense``, ``keyword``), ``fusion``, ``weights``, ``filters``, ``min_score``,
        ``cutoff``, ``diverse``, ``explain``.
        """
        if text is None and image is None:
            raise ValueError("give a text, an image, or both")
        search_options = _search_options(k, kind, options)
        model_id, identity = self._active()
        terms = _terms(text, image)
        searcher = self._searcher(model_id, identity)
        # Database reads first, model second: right after the encoder ran, the same reads cost several times more
        # (its weights have pushed everything else out of the CPU caches; measured 0.2 vs 0.7 ms on 2 vCPUs).
        searcher.prefetch(_keywords(terms), k, kind, search_options)
        return searcher.search(self._query_of(model_id, identity, terms), k, kind, search_options)

    def search_many(self, texts: Sequence[str], k: int = 10, kind: str = "image", **options: Any) -> list[list[Hit]]:
        """Top-``k`` hits for each text; the model is loaded once, and not at all for cached queries."""
        search_options = _search_options(k, kind, options)
        model_id, identity = self._active()
        parsed = [parse_query(text) for text in texts]
        plain = [terms[0].text for terms in parsed if is_plain(terms)]
        self._text_vectors(model_id, identity, plain)  # one batch for every plain query
        searcher = self._searcher(model_id, identity)
        return [searcher.search(self._query(model_id, identity, text, None), k, kind, search_options) for text in texts]

    def evaluate(
        self,
        queries: str | os.PathLike[str] | Sequence[EvalQuery],
        *,
        modes: Sequence[str] = MODES,
        k: int = 10,
        kind: str = "image",
        **options: Any,
    ) -> EvalReport:
        """Run labelled queries (a ``query<TAB>relevant...`` file, or :class:`EvalQuery` items) in each mode.

        Reports Recall@1/5/10, MRR and nDCG@10 per mode, and latency (query vectors are encoded once,
        before timing, so latency is the search itself).
        """
        if isinstance(queries, (str, os.PathLike)):
            queries = load_queries(queries)
        for mode in modes:
            _search_options(k, kind, {**options, "mode": mode})
        model_id, identity = self._active()
        self._text_vectors(model_id, identity, [q.text for q in queries if is_plain(parse_query(q.text))])
        return evaluate(
            lambda text, mode: self.search(text, k=max(k, 10), kind=kind, **{**options, "mode": mode}),
            queries,
            modes,
            k,
            kind,
        )

    def _query(
        self, model_id: int, identity: ModelIdentity, text: str | None, image: str | os.PathLike[str] | None
    ) -> QuerySpec:
        """The query vector (terms combined) and the words for keyword search."""
        return self._query_of(model_id, identity, _terms(text, image))

    def _query_of(self, model_id: int, identity: ModelIdentity, terms: list[Term]) -> QuerySpec:
        texts = [term.text for term in terms if term.text is not None]
        text_vectors = dict(zip(texts, self._text_vectors(model_id, identity, texts), strict=True))
        vectors = []
        for term in terms:
            if term.text is not None:
                vectors.append(text_vectors[term.text])
            else:
                picture = self._load_query_image(Path(str(term.image)))
                vectors.append(self._checked_encoder(identity).encode_images([picture])[0])
        vector = vectors[0] if len(terms) == 1 and terms[0].weight == 1 else combine(vectors, [t.weight for t in terms])
        image_only = all(term.text is None for term in terms)
        return QuerySpec(np.asarray(vector, dtype=np.float32), _keywords(terms), image_only)

    def _searcher(self, model_id: int, identity: ModelIdentity) -> HybridSearcher:
        """A searcher over the indexes as of now (every collection's generation is read in one query)."""
        generations = self.store.generations(COLLECTIONS)

        def index_for(collection: str) -> VectorIndex:
            return self._index_cache(model_id, identity, collection).current(generations[collection])

        return HybridSearcher(self.store, model_id, index_for, self._keyword_source(generations))

    def _tantivy(self) -> TantivyKeywords | None:
        """The Tantivy keyword index when it is the keyword engine (``keyword_engine``), else None."""
        if self._keywords is None:
            from mmsearch.store.keyword_tantivy import open_keywords

            self._keywords = open_keywords(self.settings, self.store.engine) or False
        return self._keywords or None

    def _keyword_source(self, generations: dict[str, int]) -> KeywordSource | None:
        """Keyword search through Tantivy, brought up to ``generations`` on first use; None: the database's."""
        keywords = self._tantivy()
        return keywords.source(generations) if keywords is not None else None

    def _refresh_keywords(self) -> None:
        """Bring the Tantivy keyword index up to the database now (after an ingest), not on the next query."""
        keywords = self._tantivy()
        if keywords is not None:
            keywords.ensure(self.store.generations(COLLECTIONS))

    def _text_vectors(self, model_id: int, identity: ModelIdentity, texts: list[str]) -> np.ndarray:
        if self._query_cache is None or self._query_cache.model_id != model_id:
            if self._query_cache is not None:
                self._query_cache.close()
            self._query_cache = QueryVectorCache(self.store, model_id)
        known = self._query_cache.get(texts)
        missing = list(dict.fromkeys(text for text in texts if text not in known))
        if missing:
            fresh = dict(zip(missing, self._text_encoder(identity).encode_texts(missing), strict=True))
            self._query_cache.put(fresh)
            known.update(fresh)
        if not texts:
            return np.zeros((0, identity.dim), dtype=np.float32)
        return np.stack([known[text] for text in texts])

    def _text_encoder(self, identity: ModelIdentity) -> Any:
        """The loaded encoder if any; else the verified torch-free export of the index model's text tower
        (``mmsearch.encoders.onnx_text``) when there is one; else the encoder, loaded now."""
        if self._encoder is None:
            if identity.fingerprint not in self._query_encoders:
                from mmsearch.encoders.onnx_text import load_text_encoder

                self._query_encoders[identity.fingerprint] = load_text_encoder(self.settings.index_dir, identity)
            if self._query_encoders[identity.fingerprint] is not None:
                return self._query_encoders[identity.fingerprint]
        return self._checked_encoder(identity)

    def _checked_encoder(self, identity: ModelIdentity) -> Encoder:
        encoder = self.encoder
        if encoder.identity.fingerprint != identity.fingerprint:
            raise ModelMismatchError(
                f"the index was built with {identity.spec} {identity.preprocess} (dim {identity.dim}), but the "
                f"loaded model reports {encoder.identity.spec} {encoder.identity.preprocess} "
                f"(dim {encoder.identity.dim}); its vectors would not compare. Re-ingest into a new --home."
            )
        return encoder

    def _load_query_image(self, path: Path) -> Any:
        try:
            return load_image(str(path.expanduser()), self.settings.max_image_pixels)
        except UnreadableMediaError as exc:
            raise UnreadableMediaError(f"cannot read query image {path}: {exc}") from exc

    # -- maintenance ----------------------------------------------------------------------
    def status(self) -> StatusReport:
        """What is indexed, with which model, where, and how big; loads no model and no FAISS."""
        active = self.store.active_model()
        paths = {}
        if active is not None:
            for collection in COLLECTIONS:
                paths[collection] = index_path(
                    self.settings.index_dir, self.settings.database_url, active[1], collection
                )
        if active is None or not self.settings.vector_url:
            return build_status(self.settings, self.store, active[1] if active else None, paths)
        from mmsearch.index.milvus_index import MilvusIndexCache

        report = build_status(self.settings, self.store, active[1], {})  # vectors in Milvus: no index files
        for collection in COLLECTIONS:
            cache = self._index_cache(active[0], active[1], collection)
            if isinstance(cache, MilvusIndexCache):
                report.indexes[collection] = cache.facts()
        return dataclasses.replace(report, index=report.indexes[IMAGE])

    def reindex(self) -> dict[str, Any]:
        """Rebuild every vector index (image, caption, transcript) from the vectors in the database."""
        model_id, identity = self._active()
        started = time.perf_counter()
        rebuilt = {}
        for collection in COLLECTIONS:
            cache = self._index_cache(model_id, identity, collection)
            rebuilt[collection] = {"vectors": len(cache.rebuild()), "path": str(cache.path)}
        keywords = self._tantivy()
        if keywords is not None:
            keywords.rebuild(self.store.generations(COLLECTIONS))
        return {
            "model": identity.spec,
            "vectors": sum(entry["vectors"] for entry in rebuilt.values()),
            "indexes": rebuilt,
            "path": rebuilt[IMAGE]["path"],
            "elapsed_s": round(time.perf_counter() - started, 3),
        }


def _terms(text: str | None, image: str | os.PathLike[str] | None) -> list[Term]:
    """The query's terms: the parsed text (query arithmetic), with the query image first."""
    terms = parse_query(text) if text is not None else []
    if image is not None:
        terms.insert(0, Term(1.0, image=str(image)))
    return terms


def _keywords(terms: list[Term]) -> str | None:
    """The words for keyword search: those of the text terms with a positive weight."""
    return " ".join(term.text for term in terms if term.text is not None and term.weight > 0) or None


def _search_options(k: int, kind: str, options: dict[str, Any]) -> SearchOptions:
    """Check the arguments before any work; ``options`` are :class:`SearchOptions` fields (None: default)."""
    if k < 1:
        raise ValueError("k must be at least 1")
    if kind not in SEARCH_KINDS:
        raise ValueError(f"kind must be one of {', '.join(SEARCH_KINDS)}, not {kind!r}")
    given = {name: value for name, value in options.items() if value is not None}
    unknown = set(given) - {f.name for f in fields(SearchOptions)}
    if unknown:
        raise TypeError(f"unknown search option(s): {', '.join(sorted(unknown))}")
    search_options = SearchOptions(**given)
    if search_options.mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {search_options.mode!r}")
    if search_options.fusion not in FUSION_METHODS:
        raise ValueError(f"fusion must be one of {', '.join(FUSION_METHODS)}, not {search_options.fusion!r}")
    if search_options.cutoff is not None and search_options.cutoff not in CUTOFF_METHODS:
        raise ValueError(f"cutoff must be one of {', '.join(CUTOFF_METHODS)}, not {search_options.cutoff!r}")
    return search_options
