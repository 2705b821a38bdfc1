"""The model side, shared by ingest and search: the active model, the encoder, the torch-free query text
encoder, the speech-to-text model and the vector index caches, each loaded on first need.

The engine makes one :class:`Models` per open database and hands it to ingest and search alike.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from mmsearch.config import DEFAULT_MODEL, Settings
from mmsearch.encoders import Encoder, EncoderFactory, canonical_model_name, create_encoder
from mmsearch.errors import ModelMismatchError, NoIndexError
from mmsearch.identity import ModelIdentity
from mmsearch.index.base import VectorIndex
from mmsearch.index.cache import IndexCache, index_path
from mmsearch.kinds import COLLECTIONS, IMAGE
from mmsearch.store.sql_reads import QueryStore

if TYPE_CHECKING:
    from mmsearch.audio.transcribe import Transcriber, TranscriberFactory
    from mmsearch.textaside import TextAside


class TextEncoder(Protocol):
    """What encodes query texts: the encoder itself, or the torch-free export of its text tower."""

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...


def default_transcriber(spec: str, device: str) -> Transcriber:
    """The registry's speech-to-text model (imported on first need)."""
    from mmsearch.audio.transcribe import create_transcriber

    return create_transcriber(spec, device)


class Models:
    """The models and indexes of one database; nothing is loaded before something needs it."""

    def __init__(
        self,
        settings: Settings,
        store: QueryStore,
        encoder_factory: EncoderFactory | None = None,
        transcriber_factory: TranscriberFactory = default_transcriber,
        text_aside: TextAside | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self._encoder_factory = encoder_factory or functools.partial(
            create_encoder, precision=settings.precision, engine=settings.engine
        )
        self._transcriber_factory = transcriber_factory
        self._encoder: Encoder | None = None
        self._transcriber: Transcriber | None = None
        self._indexes: dict[str, IndexCache] = {}
        self._text_encoders: dict[str, TextEncoder | None] = {}  # fingerprint -> torch-free export, or None
        self._text_aside = text_aside  # a query's text encoded speculatively (mmsearch.textaside), until taken
        self._aside_vectors: dict[str, np.ndarray] = {}  # what it encoded, by text, until asked for

    # -- which model ----------------------------------------------------------------------
    @property
    def encoder_recipe(self) -> EncoderFactory:
        """How an encoder is made (``(model name, device) -> Encoder``): what Ray's encoder actors run."""
        return self._encoder_factory

    def model_name(self) -> str:
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

    def active(self) -> tuple[int, ModelIdentity]:
        """The id and identity of the model the index was built with; raises NoIndexError before any ingest."""
        active = self.store.active_model()
        if active is None:
            raise NoIndexError(f"nothing is indexed in {self.settings.home} yet; run `mmsearch ingest FOLDER` first")
        self.model_name()  # refuses a mismatching --model before anything is loaded
        return active

    def active_id(self) -> int | None:
        """The active model's id, or None before the first ingest (nothing loaded, nothing checked)."""
        active = self.store.active_model()
        return active[0] if active else None

    # -- encoders -------------------------------------------------------------------------
    @property
    def loaded_encoder(self) -> Encoder | None:
        """The encoder if it was loaded, else None (loads nothing)."""
        return self._encoder

    @property
    def encoder(self) -> Encoder:
        """The encoder, loaded on first use (and its text tower exported for torch-free queries)."""
        if self._encoder is None:
            self._encoder = self._encoder_factory(self.model_name(), self.settings.device)
            from mmsearch.encoders.onnx_export import ensure_text_export

            ensure_text_export(self._encoder, self.settings.index_dir)  # once per model; never raises
        return self._encoder

    def adopt_encoder(self) -> tuple[int, Encoder]:
        """The encoder, its model recorded as the index's (ingest: before the first vector is written)."""
        encoder = self.encoder
        return self.store.full.adopt_model(encoder.identity), encoder

    def checked_encoder(self, identity: ModelIdentity) -> Encoder:
        """The encoder, refused when it does not produce ``identity``'s vectors."""
        encoder = self.encoder
        if encoder.identity.fingerprint != identity.fingerprint:
            raise ModelMismatchError(
                f"the index was built with {identity.spec} {identity.preprocess} (dim {identity.dim}), but the "
                f"loaded model reports {encoder.identity.spec} {encoder.identity.preprocess} "
                f"(dim {encoder.identity.dim}); its vectors would not compare. Re-ingest into a new --home."
            )
        return encoder

    def text_encoder(self, identity: ModelIdentity) -> TextEncoder:
        """The verified torch-free export of the index model's text tower (``mmsearch.encoders.onnx_text``) once it
        is loaded (a warm service that loads the image tower after it keeps answering texts with the vectors a
        new process computes); else the loaded encoder if any; else the export when there is one; else the
        encoder, loaded now. Never a second model: the export is not loaded once the encoder is."""
        exported = self._text_encoders.get(identity.fingerprint)
        if exported is not None:
            return exported
        if self._encoder is None:
            if identity.fingerprint not in self._text_encoders:
                self._text_encoders[identity.fingerprint] = self._load_text_encoder(identity)
            exported = self._text_encoders[identity.fingerprint]
            if exported is not None:
                return exported
        return self.checked_encoder(identity)

    def _load_text_encoder(self, identity: ModelIdentity) -> TextEncoder | None:
        """The export of ``identity``'s text tower: the one the speculative thread loaded when it is that
        (``mmsearch.textaside``), else loaded now; recorded for the next process's speculation."""
        from mmsearch.encoders.onnx_text import OnnxTextEncoder, load_text_encoder, query_export_folder
        from mmsearch.textaside import write_record

        index_dir = self.settings.index_dir
        folder = query_export_folder(index_dir, identity.fingerprint)
        encoder: OnnxTextEncoder | None = None
        if self._text_aside is not None:
            encoder, self._aside_vectors = self._text_aside.take(identity.fingerprint, folder)
            self._text_aside = None
        if encoder is None:
            encoder = load_text_encoder(index_dir, identity)
        if encoder is not None:
            write_record(index_dir, identity.fingerprint, encoder.folder)
        return encoder

    def encode_texts(self, identity: ModelIdentity, texts: Sequence[str]) -> np.ndarray:
        """``texts`` encoded by :meth:`text_encoder`; the speculative thread's vectors when it encoded exactly
        these texts in this order (one batch, as here: the same vectors) with the encoder taken from it."""
        encoder = self.text_encoder(identity)
        ready, self._aside_vectors = self._aside_vectors, {}
        if ready and list(ready) == list(texts) and encoder is self._text_encoders.get(identity.fingerprint):
            return np.stack([ready[text] for text in texts])
        return encoder.encode_texts(texts)

    def drop_text_aside(self) -> None:
        """Let a speculative thread that was not needed stop at its next step."""
        if self._text_aside is not None:
            self._text_aside.cancel()
            self._text_aside = None

    def text_encoder_loaded(self, identity: ModelIdentity) -> bool:
        """True when :meth:`text_encoder` answers at once (the export or the encoder is loaded already)."""
        return self._text_encoders.get(identity.fingerprint) is not None or self._encoder is not None

    def speech_to_text(self) -> Transcriber:
        """The speech-to-text model, loaded on first need."""
        if self._transcriber is None:
            self._transcriber = self._transcriber_factory(self.settings.speech_model, self.settings.device)
        return self._transcriber

    # -- indexes --------------------------------------------------------------------------
    def index_cache(self, model_id: int, identity: ModelIdentity, collection: str = IMAGE) -> IndexCache:
        """The cache of ``collection``'s vector index for this model (made once per model)."""
        cache = self._indexes.get(collection)
        if cache is None or cache.identity.fingerprint != identity.fingerprint:
            if self.settings.vector_url:  # vectors in Milvus (mmsearch.index.milvus_index)
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

    def repair_indexes(self) -> list[str]:
        """Rebuild the saved index files a killed writer left stale, or that a former version stamped current with
        the wrong number of vectors (:meth:`IndexCache.repair`: headers and row counts only); the collections
        rebuilt. Nothing before the first ingest."""
        active = self.store.active_model()
        if active is None:
            return []
        return [collection for collection in COLLECTIONS if self.index_cache(*active, collection).repair()]

    def active_index_cache(self, model_id: int, collection: str) -> IndexCache:
        """``index_cache`` of the active model (ingest asks right after adopting it)."""
        return self.index_cache(model_id, self.active()[1], collection)

    def indexes_now(self, model_id: int, identity: ModelIdentity) -> Callable[[str], VectorIndex]:
        """Each collection's index as of now (every collection's generation is read in one query)."""
        generations = self.store.generations(COLLECTIONS)

        def index_for(collection: str) -> VectorIndex:
            return self.index_cache(model_id, identity, collection).current(generations[collection])

        return index_for
