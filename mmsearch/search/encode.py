"""Turn a parsed :class:`~mmsearch.search.query.Query` into the vector the searcher searches with.

Text vectors come from the query vector cache (``query_cache`` table) where a text was asked before, else
from the model side's text encoder, in one batch; query images are read with :mod:`mmsearch.imageio`.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmsearch.errors import UnreadableMediaError
from mmsearch.identity import ModelIdentity
from mmsearch.models import Models
from mmsearch.search.query import Query, QuerySpec
from mmsearch.search.query_cache import QueryVectorCache, one_connection
from mmsearch.search.querylang import combine

if TYPE_CHECKING:
    from PIL import Image


class QueryEncoder:
    """Encodes queries for one database, remembering text vectors across processes (the query cache)."""

    def __init__(self, models: Models) -> None:
        self.models = models
        self._cache: QueryVectorCache | None = None

    @property
    def cache(self) -> QueryVectorCache | None:
        """The query vector cache, once a query was encoded."""
        return self._cache

    def close(self) -> None:
        """Persist the cached query vectors."""
        if self._cache is not None:
            self._cache.close()

    def encode(self, query: Query, model_id: int, identity: ModelIdentity) -> QuerySpec:
        """The query's vector (its terms combined) with its keywords, ready for the searcher."""
        texts = query.texts
        text_vectors = dict(zip(texts, self.text_vectors(model_id, identity, texts), strict=True))
        vectors = []
        for term in query.terms:
            if term.text is not None:
                vectors.append(text_vectors[term.text])
            else:
                picture = self._load_image(Path(str(term.image)))
                vectors.append(self.models.checked_encoder(identity).encode_images([picture])[0])
        terms = query.terms
        vector = vectors[0] if len(terms) == 1 and terms[0].weight == 1 else combine(vectors, [t.weight for t in terms])
        return query.encoded(vector)

    def encode_aside(self, query: Query, model_id: int, identity: ModelIdentity) -> Future[QuerySpec] | None:
        """:meth:`encode` started in a worker thread, for a text query that must first load the text encoder (a
        cold process): loading it (the ONNX session) and running it release the GIL, so the caller opens the
        keyword and vector indexes meanwhile (2 cores: about the encoder's whole cost saved on a cold query).
        None when there is no such gain (not this encoder's first query, the text encoder is loaded, an image
        term needs the image tower, or the database is one connection shared by all threads): then the caller
        encodes in its own thread. Errors are raised by the future's ``result()``."""
        if query.image_only or any(term.image is not None for term in query.terms):
            return None
        if self._cache is not None or self.models.text_encoder_loaded(identity):  # warm: no thread hand-over
            return None
        if one_connection(self.models.store):
            return None
        import threading

        future: Future[QuerySpec] = Future()

        def run() -> None:
            try:
                future.set_result(self.encode(query, model_id, identity))
            except BaseException as exc:  # handed to the caller, which raises it from result()
                future.set_exception(exc)

        threading.Thread(target=run, name="mmsearch-encode").start()
        return future

    def text_vectors(self, model_id: int, identity: ModelIdentity, texts: Sequence[str]) -> np.ndarray:
        """One vector per text: cached ones read back, the others encoded in one batch and cached."""
        if self._cache is None or self._cache.model_id != model_id:
            self.close()
            self._cache = QueryVectorCache(self.models.store, model_id)
        known = self._cache.get(texts)
        missing = list(dict.fromkeys(text for text in texts if text not in known))
        if missing:
            fresh = dict(zip(missing, self.models.encode_texts(identity, missing), strict=True))
            self._cache.put(fresh)
            known.update(fresh)
        if not texts:
            return np.zeros((0, identity.dim), dtype=np.float32)
        return np.stack([known[text] for text in texts])

    def _load_image(self, path: Path) -> Image.Image:
        from mmsearch.imageio import load_image  # Pillow: only for image queries

        try:
            return load_image(str(path.expanduser()), self.models.settings.max_image_pixels)
        except UnreadableMediaError as exc:
            raise UnreadableMediaError(f"cannot read query image {path}: {exc}", exc.reason) from exc
