"""Hybrid search: dense and keyword evidence gathered per asset, re-scored exactly, fused, cut and diversified.

Retrievers: ``image`` (image vectors), ``caption`` and ``transcript`` (text item vectors, the best item of an
asset counts), ``keyword`` (BM25 / PostgreSQL full text over captions, transcripts and file names). Each
retriever is asked for a window of candidates; every candidate asset that passes the filters then gets its
exact cosine for every dense retriever from the vectors stored in the database, so an approximate index
never changes the final order of what it found, and an asset found by one retriever is not penalised for
falling outside another's window. The window grows until ``k`` assets pass the filters or nothing is left.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from mmsearch.index.base import VectorIndex
from mmsearch.kinds import ANY, AUDIO, CAPTION, DENSE, FRAME, IMAGE, KEYWORD, TRANSCRIPT, VIDEO
from mmsearch.search.evidence import (
    Evidence,
    best_items,
    best_matches,
    best_text_item,
    evidence_dict,
    main_evidence,
    make_hit,
    rescored,
)
from mmsearch.search.filters import Filters
from mmsearch.search.fusion import Ranked, adaptive_cutoff, collapse_near_duplicates, explain, fuse, mmr
from mmsearch.search.hits import Hit
from mmsearch.search.moments import best_moment, scored_moment, with_moment
from mmsearch.search.options import SearchError, SearchOptions
from mmsearch.search.query import QuerySpec
from mmsearch.store.keyword import NAME, KeywordMatch, KeywordSource, keyword_search, query_tokens
from mmsearch.store.records import StoredFile, StoredText
from mmsearch.store.sql_reads import QueryStore

MISSING: dict[str, str | float] = {IMAGE: "mean", CAPTION: "mean", TRANSCRIPT: "mean", FRAME: "mean", KEYWORD: 0.0}
"""Weighted fusion's value for evidence an asset lacks. Every candidate gets its exact dense scores, so a
missing dense score means the asset has no such modality at all (a photo without captions, a recording
without pixels): that is no evidence either way, so it counts as the retriever's average. A missing keyword
score means no word matched, which is evidence against: it counts as the lowest."""
MIN_WINDOW = 100
"""Candidates asked of each retriever at first (at least 4 k); multiplied by 4 while filters leave too few."""
DUPLICATE_COSINE = 0.95

ITEM_SEARCHES = (CAPTION, TRANSCRIPT, FRAME)
"""Kinds searched item by item (one hit per caption, segment or keyframe)."""
ASSET_KINDS = {IMAGE: {IMAGE}, AUDIO: {AUDIO}, VIDEO: {VIDEO}, ANY: {IMAGE, AUDIO, VIDEO}}
DENSE_RETRIEVERS = {
    IMAGE: (IMAGE, CAPTION),
    AUDIO: (TRANSCRIPT,),
    VIDEO: (FRAME, TRANSCRIPT),
    ANY: (IMAGE, CAPTION, TRANSCRIPT, FRAME),
}
KEYWORD_KINDS = {
    IMAGE: (CAPTION, NAME),
    AUDIO: (TRANSCRIPT, NAME),
    VIDEO: (TRANSCRIPT, NAME),
    ANY: (CAPTION, TRANSCRIPT, NAME),
}
COLLECTION_ASSETS = {IMAGE: {IMAGE}, CAPTION: {IMAGE}, TRANSCRIPT: {AUDIO, VIDEO}, FRAME: {VIDEO}}
"""The kinds of asset each dense collection holds items of."""


class HybridSearcher:
    """Searches one model's collections of one store; see the module docstring."""

    def __init__(
        self,
        store: QueryStore,
        model_id: int,
        index_for: Callable[[str], VectorIndex],
        keywords: KeywordSource | None = None,
    ) -> None:
        self.store = store
        self.model_id = model_id
        self._index_source = index_for
        self._keyword_source = keywords
        self._indexes: dict[str, VectorIndex] = {}
        self._prefetched: dict[tuple[str, tuple[str, ...], int], list[KeywordMatch]] = {}

    def index_for(self, collection: str) -> VectorIndex:
        """The collection's index as of the start of this search (asked once: each ask checks the database)."""
        if collection not in self._indexes:
            self._indexes[collection] = self._index_source(collection)
        return self._indexes[collection]

    def prefetch(
        self, keywords: str | None, k: int, kind: str, options: SearchOptions, image_only: bool = False
    ) -> None:
        """Run the keyword retrieval of the coming :meth:`search` now, which needs the words alone, and open the
        vector indexes it will search (the engine calls this before, or while, it encodes the query); that
        search reuses both."""
        if _keyword_used(keywords, options) and keywords is not None and kind != FRAME:
            kinds = (kind,) if kind in (CAPTION, TRANSCRIPT) else KEYWORD_KINDS[kind]
            self._keyword_matches(keywords, kinds, max(MIN_WINDOW, 4 * k))
        if options.mode == KEYWORD:
            return
        if kind in ITEM_SEARCHES:
            collections = [kind] if options.weight(kind) > 0 else []
        else:
            collections = _retrievers(kind, image_only, options)
        for collection in collections:
            self.index_for(collection)

    def search(self, query: QuerySpec, k: int, kind: str, options: SearchOptions) -> list[Hit]:
        """The top ``k`` hits of ``kind`` (``image``, ``audio``, ``any``: per asset; ``caption``,
        ``transcript``: per text item)."""
        self._indexes.clear()  # a searcher may serve several searches: each sees the indexes as they are now
        try:
            return self._search(query, k, kind, options)
        finally:
            self._prefetched.clear()

    def _search(self, query: QuerySpec, k: int, kind: str, options: SearchOptions) -> list[Hit]:
        if kind in ITEM_SEARCHES:
            return self._search_items(query, k, kind, options)
        dense = dense_retrievers(kind, query, options) if self._dense(query, options) else []
        keyword = _keyword_used(query.keywords, options)
        if not dense and not keyword:
            raise SearchError(_nothing_to_search(query, options))
        dense = [retriever for retriever in dense if len(self.index_for(retriever))]
        window = max(MIN_WINDOW, 4 * k)
        while True:
            evidence, exhausted = self._gather(query, kind, dense, keyword, window)
            if self._one_dense_source(evidence, options, kind):
                return self._rank_one_source(query, evidence, k, options)
            files = self.store.get_files(a for entries in evidence.scores.values() for a in entries)
            accepted = {a: f for a, f in files.items() if f.kind in ASSET_KINDS[kind] and options.filters.accepts(f)}
            if len(accepted) >= k or exhausted:
                break
            window *= 4
        evidence = self._exact(query, dense, evidence, accepted)
        return self._rank(evidence, accepted, k, options)

    @staticmethod
    def _one_dense_source(evidence: Evidence, options: SearchOptions, kind: str) -> bool:
        """Only one dense retriever found anything, and nothing filters: its own top k is the answer.

        When that index holds only assets of the kinds searched, there is nothing to fuse or filter: what it found
        is re-scored exactly and cut to k (``diverse`` still takes the general path: it needs a wider pool).
        """
        sources = [name for name, entries in evidence.scores.items() if entries]
        return (
            len(sources) == 1
            and sources[0] != KEYWORD
            and COLLECTION_ASSETS[sources[0]] <= ASSET_KINDS[kind]
            and options.filters == Filters()
            and not options.diverse
        )

    def _rank_one_source(self, query: QuerySpec, evidence: Evidence, k: int, options: SearchOptions) -> list[Hit]:
        """Keep the top ``k`` of what the one retriever found, by exact cosine: the index's own scores where they
        are exact (flat and HNSWFlat store full vectors), else re-scored with the vectors it holds."""
        name, entries = next((n, e) for n, e in evidence.scores.items() if e)
        index = self.index_for(name)
        exact = entries if index.exact_scores else rescored(index, name, entries, query)
        top = Evidence({name: exact}).ranked()[name][:k]
        files = self.store.get_files(asset for asset, _ in top)
        kept = Evidence({name: {asset: exact[asset] for asset, _ in top if asset in files}})
        return self._rank(kept, files, k, options)

    # -- retrieval ------------------------------------------------------------------------
    @staticmethod
    def _dense(query: QuerySpec, options: SearchOptions) -> bool:
        return options.mode != KEYWORD

    def _keyword_matches(self, keywords: str, kinds: tuple[str, ...], window: int) -> list[KeywordMatch]:
        key = (keywords, kinds, window)
        if key not in self._prefetched:
            self._prefetched[key] = keyword_search(self.store.reads, keywords, window, kinds, self._keyword_source)
        return self._prefetched[key]

    def _gather(
        self, query: QuerySpec, kind: str, dense: list[str], keyword: bool, window: int
    ) -> tuple[Evidence, bool]:
        evidence = Evidence()
        exhausted = True
        for retriever in dense:
            index = self.index_for(retriever)
            evidence.scores[retriever] = {}
            if len(index) == 0:
                continue
            scores, ids = index.search(query.vector[None, :], window)
            found = [(int(i), float(s)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]
            exhausted &= window >= len(index)
            if retriever == IMAGE:
                evidence.scores[IMAGE] = {file_id: (score, None) for file_id, score in found}
            else:
                evidence.scores[retriever] = best_items(found, self.store.get_texts(i for i, _ in found))
        if keyword:
            matches = self._keyword_matches(query.keywords or "", KEYWORD_KINDS[kind], window)
            exhausted &= len(matches) < window
            evidence.scores[KEYWORD] = best_matches(matches)
        return evidence, exhausted

    def _exact(
        self, query: QuerySpec, dense: list[str], evidence: Evidence, accepted: Mapping[int, StoredFile]
    ) -> Evidence:
        """Every accepted candidate's exact cosine for every dense retriever, from the stored vectors."""
        exact = Evidence()
        ids = list(accepted)
        for retriever in dense:
            index = self.index_for(retriever)
            if retriever == IMAGE:
                vectors = index.vectors(ids)
                exact.scores[IMAGE] = {a: (float(v @ query.vector), None) for a, v in vectors.items()}
                continue
            exact.scores[retriever] = {}
            items_of = self.store.text_item_ids_of(ids, retriever)
            vectors = index.vectors(item for items in items_of.values() for item in items)
            for asset, items in items_of.items():
                present = [item for item in items if item in vectors]
                if present:
                    scores = np.stack([vectors[item] for item in present]) @ query.vector
                    best = int(np.argmax(scores))
                    exact.scores[retriever][asset] = (float(scores[best]), present[best])
                    if accepted[asset].kind == VIDEO:  # every item's score: the moment is chosen among them
                        scored = list(zip(present, scores.tolist(), strict=True))
                        exact.moments.setdefault(asset, {})[retriever] = scored
        if KEYWORD in evidence.scores:
            exact.scores[KEYWORD] = {a: e for a, e in evidence.scores[KEYWORD].items() if a in accepted}
        return exact

    # -- ranking --------------------------------------------------------------------------
    def _rank(
        self, evidence: Evidence, accepted: Mapping[int, StoredFile], k: int, options: SearchOptions
    ) -> list[Hit]:
        results = {name: ranked for name, ranked in evidence.ranked().items() if ranked}
        weights = {name: options.weight(name) for name in results}
        candidates = {a for ranked in results.values() for a, _ in ranked}
        if not candidates:
            return []
        if len(results) == 1:  # one retriever: its own scores (cosine, BM25), nothing to calibrate
            fused = next(iter(results.values()))
        else:
            fused = fuse(results, weights, k=len(candidates), method=options.fusion, missing=MISSING)
        if options.min_score is not None:
            fused = [(a, s) for a, s in fused if s >= options.min_score]
        if options.cutoff and fused:  # on the scores in order, before diversity re-orders them
            fused = fused[: adaptive_cutoff([s for _, s in fused], options.cutoff)]
        if options.diverse and fused:
            vectors = self._asset_vectors(evidence, [a for a, _ in fused])
            fused = collapse_near_duplicates(fused, vectors, DUPLICATE_COSINE)
            fused = mmr(fused, vectors, k=min(len(fused), 4 * k))
        fused = fused[:k]
        reasons = explain(results, fused, weights, options.fusion, missing=MISSING) if len(results) > 1 else {}
        return self._asset_hits(fused, evidence, accepted, reasons, results, options)

    def _asset_vectors(self, evidence: Evidence, assets: list[int]) -> dict[int, np.ndarray]:
        """Each asset's vector for diversity: its image vector, else its best text item's."""
        vectors = self.index_for(IMAGE).vectors(assets)
        missing = {a: item for a in assets if a not in vectors for item in [best_text_item(evidence, a)] if item}
        texts = self.store.vectors_of_texts(self.model_id, missing.values())
        vectors.update({a: texts[item] for a, item in missing.items() if item in texts})
        return vectors

    def _asset_hits(
        self,
        fused: Ranked,
        evidence: Evidence,
        accepted: Mapping[int, StoredFile],
        reasons: Mapping[int, Any],
        results: Mapping[str, Ranked],
        options: SearchOptions,
    ) -> list[Hit]:
        items = {a: best_text_item(evidence, a) for a, _ in fused}
        frames = {a: evidence.scores.get(FRAME, {}).get(a, (0.0, None))[1] for a, _ in fused}
        every = [i for a, _ in fused for scored in evidence.moments.get(a, {}).values() for i, _ in scored]
        texts = self.store.get_texts(i for i in (*items.values(), *frames.values(), *every) if i is not None)
        hits = []
        for rank, (asset, score) in enumerate(fused, 1):
            file = accepted[asset]
            item = items[asset]
            text = texts.get(item) if item is not None else None
            match = main_evidence(asset, evidence, reasons.get(asset), results)
            details = evidence_dict(asset, evidence, reasons) if options.explain else None
            hit = make_hit(rank, score, file, match, text, details)
            if file.kind == VIDEO:
                hit = with_moment(hit, self._moment(asset, evidence, match, texts, text, frames[asset], options))
            hits.append(hit)
        return hits

    @staticmethod
    def _moment(
        asset: int,
        evidence: Evidence,
        match: str,
        texts: Mapping[int, StoredText],
        text: StoredText | None,
        frame: int | None,
        options: SearchOptions,
    ) -> Any:
        """A video hit's best moment: from every keyframe and segment scored, else from its best of each."""
        if asset in evidence.moments:
            return scored_moment(evidence.moments[asset], texts, options.weight(FRAME), options.weight(TRANSCRIPT))
        segment = text if text is not None and text.kind == TRANSCRIPT else None
        return best_moment(match, texts.get(frame) if frame is not None else None, segment)

    # -- item-level search (captions, transcript segments) ----------------------------------
    def _search_items(self, query: QuerySpec, k: int, kind: str, options: SearchOptions) -> list[Hit]:
        dense = self._dense(query, options) and options.weight(kind) > 0
        keyword = kind != FRAME and _keyword_used(query.keywords, options)
        if not dense and not keyword:
            raise SearchError(_nothing_to_search(query, options))
        index = self.index_for(kind)
        window = max(MIN_WINDOW, 4 * k)
        while True:
            results: dict[str, Ranked] = {}
            exhausted = True
            if dense and len(index):
                scores, ids = index.search(query.vector[None, :], window)
                results[kind] = [(int(i), float(s)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]
                exhausted &= window >= len(index)
            if keyword:
                matches = self._keyword_matches(query.keywords or "", (kind,), window)
                results[KEYWORD] = [(m.item_id, m.score) for m in matches if m.item_id is not None]
                exhausted &= len(matches) < window
            texts = self.store.get_texts(i for ranked in results.values() for i, _ in ranked)
            files = self.store.get_files({t.file_id for t in texts.values()})
            accepted = {
                i: t for i, t in texts.items() if t.file_id in files and options.filters.accepts(files[t.file_id])
            }
            if len(accepted) >= k or exhausted:
                break
            window *= 4
        if dense and accepted:
            vectors = index.vectors(accepted)
            results[kind] = sorted(
                ((i, float(v @ query.vector)) for i, v in vectors.items()), key=lambda e: (-e[1], e[0])
            )
        return self._rank_items(results, accepted, files, k, kind, options)

    @staticmethod
    def _rank_items(
        results: dict[str, Ranked],
        accepted: Mapping[int, StoredText],
        files: Mapping[int, StoredFile],
        k: int,
        kind: str,
        options: SearchOptions,
    ) -> list[Hit]:
        """Fuse, cut and explain the item-level results (only accepted items count)."""
        results = {name: [(i, s) for i, s in ranked if i in accepted] for name, ranked in results.items()}
        results = {name: ranked for name, ranked in results.items() if ranked}
        weights = {name: options.weight(name) for name in results}
        if len(results) == 1:
            fused = next(iter(results.values()))
        else:
            fused = fuse(results, weights, k=len(accepted), method=options.fusion, missing=MISSING) if accepted else []
        if options.min_score is not None:
            fused = [(i, s) for i, s in fused if s >= options.min_score]
        if options.cutoff and fused:
            fused = fused[: adaptive_cutoff([s for _, s in fused], options.cutoff)]
        fused = fused[:k]
        explained = options.explain and len(results) > 1
        reasons = explain(results, fused, weights, options.fusion, missing=MISSING) if explained else {}
        hits = []
        for rank, (item_id, score) in enumerate(fused, 1):
            text = accepted[item_id]
            details = reasons[item_id].to_dict() if item_id in reasons else None
            hits.append(make_hit(rank, score, files[text.file_id], kind, text, details))
        return hits


def _keyword_used(keywords: str | None, options: SearchOptions) -> bool:
    """Whether a search with these words and options asks the keyword retriever."""
    return options.mode != DENSE and bool(keywords and query_tokens(keywords)) and options.weight(KEYWORD) > 0


def dense_retrievers(kind: str, query: QuerySpec, options: SearchOptions) -> list[str]:
    """The dense retrievers a search of ``kind`` uses: those with a weight above 0.

    An image-only query looking for images is answered by image similarity alone unless a caption or
    transcript weight is given explicitly: "more like this photo" means pixels, and an image-to-caption
    cosine is much weaker evidence than an image-to-image one. Where no image vectors can answer (audio),
    the text retrievers are used as usual (image to transcript).
    """
    return _retrievers(kind, query.image_only, options)


def _retrievers(kind: str, image_only: bool, options: SearchOptions) -> list[str]:
    retrievers = [r for r in DENSE_RETRIEVERS[kind] if options.weight(r) > 0]
    if image_only and (IMAGE in retrievers or FRAME in retrievers):  # pixels answer pixels
        retrievers = [r for r in retrievers if r in (IMAGE, FRAME) or r in options.weights]
    return retrievers


def _nothing_to_search(query: QuerySpec, options: SearchOptions) -> str:
    if options.mode == KEYWORD:
        return "keyword mode needs query text with at least one word"
    return "every retriever this search could use has weight 0, or the query has nothing to search with"
