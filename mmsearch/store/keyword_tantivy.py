"""Keyword search on a Tantivy index: BM25 with block-max WAND top-k pruning, a rebuildable cache of the database.

SQLite FTS5 and PostgreSQL full text score every row that matches any query word before sorting, so their cost
grows with the number of matching texts (see bench/scale.py). Tantivy keeps, per term, blocks of postings with
their best possible score and skips every block that cannot enter the current top k, so a disjunction of a few
terms costs about the same at 100k and at 1M texts.

The database stays the source of truth (on SQLite and PostgreSQL alike): the index is written into a folder
beside the vector index files, built from the text items and file names in the database, and stamped with the
collections' generations it reflects (``stamp.json``). A stale, missing or foreign (another format or database)
folder is rebuilt whole into a temporary folder and renamed into place, so a reader sees the old index or the new
one, never half of one.

An ingest keeps the index in step incrementally (:meth:`TantivyKeywords.update`): it records which text items and
files it wrote or removed (:class:`KeywordChanges`), and when the index was current as the ingest began, those
documents are deleted by id and read again from the database into a copy of the folder (hard links: Tantivy's
segment files are never changed once written), which is stamped with the generations after the ingest and swapped
in like a rebuild. Anything else (an interrupted ingest, another writer, a damaged stamp) leaves the stamp behind
the database, and the next update or search rebuilds whole. Deleted documents linger in Tantivy's statistics
(document frequencies, average length) until their segments merge, so BM25 scores drift slightly from a rebuild's;
past ``MAX_DEAD_SHARE`` of the documents the update rebuilds whole instead.

Analysis matches the database engines': words are split on non-alphanumerics, lower-cased, diacritics folded
(FTS5's ``remove_diacritics``), stemmed with the English Snowball stemmer (PostgreSQL's ``english``); stop words
are left out of the query (``search_tokens``), as with the database engines. As in FTS5, every text item and file
name is one ``body`` field of one collection, so BM25's statistics (document frequencies, average length) are
those of all of them. A search is a pure disjunction of term queries, which is what lets Tantivy prune (a filter
clause would make it score every match); a search over some kinds only fetches more and filters, fetching more
again while filtered hits are short of the limit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmsearch.config import Settings
from mmsearch.errors import ConfigError, IndexCorruptError
from mmsearch.store.keyword import NAME, KeywordMatch, KeywordSource, search_tokens
from mmsearch.store.keyword_folder import STAMP_FILE, FolderMoved, building_folder, link_copy, swap_in
from mmsearch.store.records import AssetWrite

if TYPE_CHECKING:
    from mmsearch.store.sql_reads import QueryStore

ANALYZER = "mmsearch_en"
KINDS = ("caption", "transcript", NAME)
"""The kinds of document (a fast field, for filtering)."""
_KIND_CODES = {kind: code for code, kind in enumerate(KINDS)}
FORMAT = 3
_OVERFETCH = 4  # a search over some kinds fetches this many times the limit before filtering
WRITER_HEAP = 256_000_000
MAX_DEAD_SHARE = 0.2
"""An update that would leave more deleted documents than this share of the live ones rebuilds whole instead."""
MAX_CHANGES = 200_000
"""An ingest that changed more documents than this rebuilds the index whole (see ``KeywordChanges``)."""
_TEXT_ROWS = "SELECT id, file_id, kind, text FROM text_items"
_NAME_ROWS = "SELECT id, path FROM media_files"
_CHUNK = 500


def keyword_index_path(index_dir: Path, database_url: str) -> Path:
    """The folder of the keyword index of one database (several databases may share an index folder)."""
    db_key = hashlib.sha256(database_url.encode()).hexdigest()[:8]
    return index_dir / f"keyword-{db_key}.tantivy"


def _tantivy() -> Any:
    try:
        import tantivy
    except ImportError as exc:  # pragma: no cover - tantivy is a default dependency
        raise ConfigError("keyword_engine 'tantivy' needs the tantivy package (pip install tantivy)") from exc
    return tantivy


def _analyzer(tantivy: Any) -> Any:
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(40))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )


def _schema(tantivy: Any) -> Any:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("body", stored=False, tokenizer_name=ANALYZER, index_option="freq")
    builder.add_integer_field("row", stored=False, fast=True, indexed=True)  # indexed: deleted by id
    builder.add_integer_field("file", stored=False, fast=True)
    builder.add_integer_field("kind", stored=False, fast=True, indexed=True)  # indexed: counted per kind
    return builder.build()


def open_keywords(settings: Settings, store: QueryStore) -> TantivyKeywords | None:
    """The Tantivy keyword index of the settings' database when ``keyword_engine`` chooses it, else None."""
    if not tantivy_chosen(settings.keyword_engine):
        return None
    return TantivyKeywords(store, keyword_index_path(settings.index_dir, settings.database_url))


def tantivy_chosen(engine_setting: str) -> bool:
    """Whether the ``keyword_engine`` setting means Tantivy (``auto``: when the package is installed)."""
    if engine_setting == "database":
        return False
    if engine_setting == "tantivy":
        _tantivy()
        return True
    try:
        import tantivy  # noqa: F401
    except ImportError:  # pragma: no cover - tantivy is a default dependency
        return False
    return True


def _basename(path: str) -> str:
    return path.rsplit("/", 1)[-1]


@dataclass
class KeywordChanges:
    """The text items and files an ingest wrote or removed (their documents are read again from the database).

    Past ``MAX_CHANGES`` ids it keeps only that it overflowed (a first ingest of a large library): so many documents
    are read faster by a rebuild's one scan than by id, and the ids would cost memory for nothing."""

    rows: set[int] = field(default_factory=set)
    files: set[int] = field(default_factory=set)
    overflow: bool = False

    def record(self, written: AssetWrite) -> None:
        """Note what one write (``write_assets`` or ``delete_files``) touched."""
        if self.overflow:
            return
        self.files.update(written.file_ids)
        for items in written.added_texts.values():
            self.rows.update(item_id for item_id, _ in items)
        for removed in written.removed_texts.values():
            self.rows.update(removed)
        if len(self) > MAX_CHANGES:
            self.rows, self.files, self.overflow = set(), set(), True

    def __len__(self) -> int:
        return len(self.rows) + len(self.files)

    def __bool__(self) -> bool:
        return self.overflow or len(self) > 0


class TantivyKeywords:
    """Keyword search of one database through its Tantivy index folder, kept in step by generation stamps."""

    def __init__(self, store: QueryStore, path: Path) -> None:
        self._store = store  # its SQLAlchemy side reads the documents of a rebuild or an update
        self.path = path
        self._database = hashlib.sha256(store.database_name.encode()).hexdigest()[:16]
        """Which database the folder reflects (a stamp of another one is foreign: the folder is rebuilt)."""
        self._tantivy = _tantivy()
        self._analyzer = _analyzer(self._tantivy)
        self._index: Any = None
        self._searcher: Any = None
        self.stamp: dict[str, int] | None = None
        self._present: set[int] | None = None  # kind codes the index holds (None: unknown, filter always)
        self._lock = threading.Lock()

    def source(self, generations: Callable[[], Mapping[str, int]]) -> KeywordSource:
        """A keyword engine for ``HybridSearcher`` that brings the index up to the database's ``generations()``
        (read only when a search asks for keywords)."""

        def search(query: str, limit: int, kinds: Collection[str]) -> list[KeywordMatch]:
            self.ensure(generations())
            return self.search(query, limit, kinds)

        return search

    # -- freshness --------------------------------------------------------------------------
    def ensure(self, generations: Mapping[str, int]) -> None:
        """Open the index as of ``generations`` (the database's, read by the caller); rebuild it when stale."""
        wanted = _ints(generations)
        with self._lock:
            if self._searcher is not None and self.stamp == wanted:
                return
            if self._stamp_file().get("generations") != wanted:
                self.rebuild(wanted)
            self._open()

    def update(self, before: Mapping[str, int], after: Mapping[str, int], changes: KeywordChanges) -> str:
        """After an ingest (under the writer lock): bring the index from the database's ``before`` generations (as
        the ingest began) to ``after`` by re-reading only ``changes``; rebuild whole when the index was not at
        ``before`` or would hold too many deleted documents. Returns ``"current"``, ``"updated"`` or ``"rebuilt"``."""
        before, after = _ints(before), _ints(after)
        with self._lock:
            stamp = self._stamp_file()
            if stamp.get("generations") == after and not changes:
                return "current"
            if stamp.get("generations") == before and not changes.overflow:
                with contextlib.suppress(FolderMoved, _TooManyDead):
                    self._apply(changes, after)
                    return "updated"
            self.rebuild(after)
            return "rebuilt"

    def _stamp_file(self) -> dict[str, Any]:
        """The folder's stamp; empty when missing, damaged, of another format or of another database."""
        return _read_stamp(self.path / STAMP_FILE, self._database)

    def _open(self) -> None:
        try:
            index = self._tantivy.Index.open(str(self.path))
        except ValueError as exc:
            raise IndexCorruptError(f"cannot open keyword index {self.path}: {exc}") from exc
        index.register_tokenizer(ANALYZER, self._analyzer)
        self._index, self._searcher = index, index.searcher()
        stamp = self._stamp_file()
        self.stamp = stamp.get("generations")
        counts = stamp.get("kinds")
        self._present = {_KIND_CODES[k] for k, n in counts.items() if n and k in _KIND_CODES} if counts else None

    # -- building ---------------------------------------------------------------------------
    def rebuild(self, generations: Mapping[str, int]) -> int:
        """Write the index of every text item and file name into a new folder, then swap it in; returns docs.

        ``generations`` must have been read before the rows are (a change in between leaves the index stamped
        older than what it holds, so it is rebuilt again next time, never missed)."""
        with building_folder(self.path) as building:
            tantivy = self._tantivy
            index = tantivy.Index(_schema(tantivy), path=str(building), reuse=False)
            index.register_tokenizer(ANALYZER, self._analyzer)
            kinds = dict.fromkeys(KINDS, 0)
            self._write(index, (), self._documents(), kinds)
            return self._finish(building, generations, kinds, sum(kinds.values()))

    def _apply(self, changes: KeywordChanges, generations: Mapping[str, int]) -> int:
        """Delete the documents of ``changes`` and add them again as the database has them, in a linked copy of
        the folder, and swap it in; raises FolderMoved when the folder changed under the copy, _TooManyDead when
        the copy would hold more than ``MAX_DEAD_SHARE`` deleted documents (and is dropped)."""
        with building_folder(self.path) as building:
            base = link_copy(self.path, building)
            if _read_stamp(building / STAMP_FILE, self._database) != base or not base:
                raise FolderMoved
            index = self._tantivy.Index.open(str(building))
            index.register_tokenizer(ANALYZER, self._analyzer)
            deleted = [*changes.rows, *(-file_id for file_id in changes.files)]
            added = dict.fromkeys(KINDS, 0)
            self._write(index, deleted, self._documents_of(changes), added)
            index.reload()
            searcher = index.searcher()
            written = int(base.get("written", 0)) + sum(added.values())  # every document added since the build
            if written - searcher.num_docs > MAX_DEAD_SHARE * searcher.num_docs:
                raise _TooManyDead
            kinds = {kind: self._count(searcher, index.schema, kind) for kind in KINDS}
            return self._finish(building, generations, kinds, written)

    def _count(self, searcher: Any, schema: Any, kind: str) -> int:
        query = self._tantivy.Query.term_query(schema, "kind", _KIND_CODES[kind])
        return int(searcher.search(query, 1, count=True).count)

    def _finish(self, building: Path, generations: Mapping[str, int], kinds: dict[str, int], written: int) -> int:
        """Stamp the folder and swap it in; returns its (live) documents. ``written``: the documents added since
        the last rebuild, deleted ones included (what its statistics still count)."""
        count = sum(kinds.values())
        stamp = {
            "format": FORMAT,
            "database": self._database,
            "generations": dict(generations),
            "documents": count,
            "written": written,
            "kinds": kinds,
        }
        (building / STAMP_FILE).write_text(json.dumps(stamp, sort_keys=True))
        swap_in(building, self.path)
        self._index = self._searcher = None
        return count

    def _write(
        self, index: Any, deleted: Iterable[int], documents: Iterable[tuple[int, int, str, str]], kinds: dict[str, int]
    ) -> None:
        """Delete the documents of ``deleted`` rows, then add ``documents``, counting them into ``kinds``."""
        tantivy = self._tantivy
        # One indexing thread: one segment, documents in database order, so equal scores come back in the same
        # order from every build of the same data (several threads would split documents between segments by race).
        writer = index.writer(heap_size=WRITER_HEAP, num_threads=1)
        for row in deleted:
            writer.delete_documents_by_term("row", row)
        for row, file_id, kind, body in documents:
            writer.add_document(tantivy.Document(row=row, file=file_id, kind=_KIND_CODES[kind], body=body))
            kinds[kind] += 1
        writer.commit()
        writer.wait_merging_threads()

    def _documents(self) -> Iterator[tuple[int, int, str, str]]:
        """(row, file id, kind, text): text items by id, file names as row = -file id (as in FTS5)."""
        from sqlalchemy import text

        with self._store.full.engine.connect() as connection:
            streamed = connection.execution_options(stream_results=True, yield_per=10_000)
            yield from _text_documents(streamed.execute(text(_TEXT_ROWS)))
            yield from _name_documents(streamed.execute(text(_NAME_ROWS)))

    def _documents_of(self, changes: KeywordChanges) -> Iterator[tuple[int, int, str, str]]:
        """The documents of ``changes`` that the database holds now."""
        from sqlalchemy import bindparam, text

        some_texts = text(_TEXT_ROWS + " WHERE id IN :ids ORDER BY id").bindparams(bindparam("ids", expanding=True))
        some_names = text(_NAME_ROWS + " WHERE id IN :ids ORDER BY id").bindparams(bindparam("ids", expanding=True))
        with self._store.full.engine.connect() as connection:
            for chunk in _chunks(sorted(changes.rows)):
                yield from _text_documents(connection.execute(some_texts, {"ids": chunk}))
            for chunk in _chunks(sorted(changes.files)):
                yield from _name_documents(connection.execute(some_names, {"ids": chunk}))

    # -- searching --------------------------------------------------------------------------
    def search(self, query: str, limit: int, kinds: Collection[str] = KINDS) -> list[KeywordMatch]:
        """Items and file names matching ANY word of ``query`` (BM25), best first, at most ``limit``."""
        if self._searcher is None:
            raise IndexCorruptError("the keyword index is not open: call ensure() first")
        wanted = {_KIND_CODES[kind] for kind in kinds if kind in _KIND_CODES}
        terms = list(dict.fromkeys(term for token in search_tokens(query) for term in self._analyzer.analyze(token)))
        if not terms or not wanted or limit < 1:
            return []
        tantivy = self._tantivy
        schema = self._index.schema
        disjunction = tantivy.Query.boolean_query(
            [(tantivy.Occur.Should, tantivy.Query.term_query(schema, "body", term)) for term in terms]
        )
        present = self._present if self._present is not None else set(_KIND_CODES.values())
        if not present & wanted:
            return []
        unwanted = present - wanted
        fetch = limit * _OVERFETCH if unwanted else limit  # nothing to filter out: a plain top-k
        while True:
            hits = self._searcher.search(disjunction, fetch, count=False).hits
            found = [hit for hit in self._described(hits) if hit[3] in wanted]
            if len(found) >= limit or len(hits) < fetch:
                break
            fetch *= _OVERFETCH  # too few of the wanted kinds among the best: look further down
        found.sort(key=lambda hit: (-hit[0], hit[1]))
        return [
            KeywordMatch(file_id, row if row > 0 else None, KINDS[code], score)
            for score, row, file_id, code in found[:limit]
        ]

    def _described(self, hits: list[tuple[float, Any]]) -> list[tuple[float, int, int, int]]:
        """(score, row, file id, kind code) of each hit, read from the fast fields."""
        if not hits:
            return []
        addresses = [address for _, address in hits]
        rows = self._searcher.fast_field_values("row", addresses)
        files = self._searcher.fast_field_values("file", addresses)
        codes = self._searcher.fast_field_values("kind", addresses)
        return [
            (float(score), int(row), int(file_id), int(code))
            for (score, _), row, file_id, code in zip(hits, rows, files, codes, strict=True)
        ]


class _TooManyDead(Exception):
    """An update would leave too many deleted documents in the index's statistics."""


def _ints(generations: Mapping[str, int]) -> dict[str, int]:
    return {key: int(value) for key, value in generations.items()}


def _read_stamp(path: Path, database: str) -> dict[str, Any]:
    try:
        stamp = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(stamp, dict) or stamp.get("format") != FORMAT or stamp.get("database") != database:
        return {}
    return stamp if isinstance(stamp.get("generations"), dict) else {}


def _text_documents(rows: Iterable[Any]) -> Iterator[tuple[int, int, str, str]]:
    for item_id, file_id, kind, body in rows:
        if kind in _KIND_CODES and kind != NAME:
            yield int(item_id), int(file_id), kind, str(body)


def _name_documents(rows: Iterable[Any]) -> Iterator[tuple[int, int, str, str]]:
    for file_id, path in rows:
        yield -int(file_id), int(file_id), NAME, _basename(str(path))


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]
