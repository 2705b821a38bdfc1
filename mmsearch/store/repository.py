"""The metadata database: the source of truth for files, models, texts and vectors.

:class:`MetadataStore` is one object with two sides, each in its own module: reads
(:mod:`mmsearch.store.lookups`) and writes (:mod:`mmsearch.store.writes`); the values they exchange are in
:mod:`mmsearch.store.records`.
"""

from __future__ import annotations

from mmsearch.store.writes import StoreWrites


class MetadataStore(StoreWrites):
    """The database of files, models and vectors: the source of truth. One short transaction per call.

    A :class:`~mmsearch.store.sql_reads.QueryStore` like the stdlib ``SqliteStore``; for every database and
    every write."""

    @property
    def full(self) -> MetadataStore:
        """This store (it does everything): the ``QueryStore`` way to writes."""
        return self
